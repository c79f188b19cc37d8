"""HiredLlavaForConditionalGeneration: vLLM's LLaVA-1.5 with HiRED before the projector.

LLaVA-1.5 sees each image as one centre-cropped 336 px partition and has no image_newline, so
an image's rows are its kept tokens, whatever the newline setting (as hired.transformers.apply
treats LLaVA-1.5): hired.num_image_tokens of a tile with no grid pinpoints, the same for every
image. The vision path and tensor parallelism are HiredVision's (vision.py).
"""

from __future__ import annotations

import torch
from vllm.model_executor.models.llava import (
    LlavaDummyInputsBuilder,
    LlavaForConditionalGeneration,
    LlavaImageEmbeddingInputs,
    LlavaMultiModalProcessor,
    LlavaProcessingInfo,
)
from vllm.multimodal import MULTIMODAL_REGISTRY

from ..config import DropConfig
from ..selection import num_image_tokens
from . import drop_config
from .vision import HiredVision


def llava15_config(hf_config) -> DropConfig:
    """The engine's settings as LLaVA-1.5 applies them: no newline rows."""
    return drop_config(hf_config).for_single_partition()


def image_rows(hf_config) -> int:
    """The rows every image becomes: its kept tokens (hired's count of one tile)."""
    vision = hf_config.vision_config
    return num_image_tokens((vision.image_size, vision.image_size), llava15_config(hf_config), [],
                            patch_px=vision.patch_size, tile_px=vision.image_size)


class HiredLlavaProcessingInfo(LlavaProcessingInfo):
    """LLaVA-1.5's processing with hired's count per image."""

    def get_num_image_tokens(self, *, image_width: int, image_height: int) -> int:
        return image_rows(self.get_hf_config())


@MULTIMODAL_REGISTRY.register_processor(
    LlavaMultiModalProcessor, info=HiredLlavaProcessingInfo, dummy_inputs=LlavaDummyInputsBuilder
)
class HiredLlavaForConditionalGeneration(HiredVision, LlavaForConditionalGeneration):
    def __init__(self, *, vllm_config, prefix: str = "") -> None:
        config = llava15_config(vllm_config.model_config.hf_config)  # a bad setting stops the engine
        super().__init__(vllm_config=vllm_config, prefix=prefix)
        self.hired_setup(config, [])

    def promised_rows(self, image_size) -> int:
        return image_rows(self.config)

    def _process_image_input(self, image_input) -> torch.Tensor | list[torch.Tensor]:
        if isinstance(image_input, LlavaImageEmbeddingInputs):
            return image_input["data"]  # given embeddings: their own counts, nothing to drop
        pixel_values = image_input["pixel_values"]  # [B, 3, 336, 336]: one partition per image
        if not isinstance(pixel_values, torch.Tensor):
            pixel_values = torch.stack(list(pixel_values))
        return self.hired_rows(pixel_values, [1] * pixel_values.shape[0], None)
