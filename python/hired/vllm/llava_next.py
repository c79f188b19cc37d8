"""HiredLlavaNextForConditionalGeneration: vLLM's LLaVA-Next with HiRED before the projector.

Each image's placeholder count is hired.num_image_tokens for its size and the engine's
settings (hired's C++), so vLLM reserves exactly the rows the model returns; the vision path
and tensor parallelism are HiredVision's (vision.py).
"""

from __future__ import annotations

import torch
from vllm.model_executor.models.llava import LlavaDummyInputsBuilder
from vllm.model_executor.models.llava_next import (
    LlavaNextForConditionalGeneration,
    LlavaNextImageEmbeddingInputs,
    LlavaNextMultiModalProcessor,
    LlavaNextProcessingInfo,
)
from vllm.multimodal import MULTIMODAL_REGISTRY

from ..selection import num_image_tokens
from . import drop_config
from .vision import HiredVision


def image_rows(hf_config, image_size) -> int:
    """The rows an image of (height, width) becomes, newline rows included (hired's count)."""
    vision = hf_config.vision_config
    return num_image_tokens(image_size, drop_config(hf_config), hf_config.image_grid_pinpoints,
                            patch_px=vision.patch_size, tile_px=vision.image_size)


class HiredLlavaNextProcessingInfo(LlavaNextProcessingInfo):
    """LLaVA-Next's processing with hired's count per image (profiling follows: vLLM sizes its
    dummy inputs through get_num_image_tokens)."""

    def get_num_image_tokens(self, *, image_width: int, image_height: int) -> int:
        return image_rows(self.get_hf_config(), (image_height, image_width))


@MULTIMODAL_REGISTRY.register_processor(
    LlavaNextMultiModalProcessor, info=HiredLlavaNextProcessingInfo, dummy_inputs=LlavaDummyInputsBuilder
)
class HiredLlavaNextForConditionalGeneration(HiredVision, LlavaNextForConditionalGeneration):
    def __init__(self, *, vllm_config, prefix: str = "") -> None:
        hf_config = vllm_config.model_config.hf_config
        config = drop_config(hf_config)  # before the weights: a bad setting stops the engine
        super().__init__(vllm_config=vllm_config, prefix=prefix)
        self.hired_setup(config, hf_config.image_grid_pinpoints)

    def promised_rows(self, image_size) -> int:
        return image_rows(self.config, image_size)

    def _process_image_input(self, image_input) -> torch.Tensor | list[torch.Tensor]:
        if isinstance(image_input, LlavaNextImageEmbeddingInputs):
            return image_input["data"]  # given embeddings: their own counts, nothing to drop
        image_sizes = image_input.get("image_sizes")
        if image_sizes is None:
            raise ValueError("image_sizes: hired needs each image's size")
        pixel_values = list(image_input["pixel_values"])  # per image [P, 3, 336, 336]
        sizes = [[int(v) for v in size] for size in image_sizes.tolist()]
        return self.hired_rows(torch.cat(pixel_values), [int(p.shape[0]) for p in pixel_values], sizes)
