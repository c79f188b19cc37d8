"""HiredLlavaNextForConditionalGeneration: vLLM's LLaVA-Next with HiRED before the projector.

- Preprocessing: each image's placeholder count is hired.num_image_tokens for its size and the
  engine's settings (hired's C++), so vLLM reserves exactly the rows the model will return.
- Vision: vLLM's CLIP runs its own fused attention up to the feature layer (CLS dropped).
  Forward hooks take the query and key projections of layer 0 and of the feature layer from
  those layers' qkv_proj outputs; torch.ops.hired.select_qk keeps each partition's tokens, only
  the kept pre-projector features are projected, and torch.ops.hired.pack_rows lays out the
  image_newline rows. Each image's row count is checked against its placeholder count.
- Tensor parallelism: each rank holds a slice of the heads. Each rank computes its heads' CLS
  attention rows by hired's arithmetic (torch.ops.hired.qk_attention), the rows are gathered in
  head order, and every rank selects from all heads: the same tokens as one rank holding every
  head, bit for bit, so the replicated projector and LLM see the same rows on every rank.
"""

from __future__ import annotations

import torch
from vllm.distributed import tensor_model_parallel_all_gather
from vllm.model_executor.models.clip import CLIPVisionModel
from vllm.model_executor.models.llava import LlavaDummyInputsBuilder
from vllm.model_executor.models.llava_next import (
    LlavaNextForConditionalGeneration,
    LlavaNextImageEmbeddingInputs,
    LlavaNextMultiModalProcessor,
    LlavaNextProcessingInfo,
)
from vllm.multimodal import MULTIMODAL_REGISTRY

from ..config import DropConfig, check_llava_features
from ..selection import gather, num_image_tokens, pack_rows, qk_attention, select, select_qk
from . import drop_config

_KEPT_ONLY = DropConfig(budget_rate=1.0, newline="none")  # gather's packing: kept tokens, no newline rows


class HiredLlavaNextProcessingInfo(LlavaNextProcessingInfo):
    """LLaVA-Next's processing with hired's count per image (profiling follows: vLLM sizes its
    dummy inputs through get_num_image_tokens)."""

    def get_num_image_tokens(self, *, image_width: int, image_height: int) -> int:
        hf_config = self.get_hf_config()
        vision = self.get_vision_encoder_info()
        return num_image_tokens(
            (image_height, image_width), drop_config(hf_config), hf_config.image_grid_pinpoints,
            patch_px=vision.get_patch_size(), tile_px=vision.get_image_size(),
        )


def _query_keys(attention, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The q and k of this rank's heads in a CLIP layer's qkv_proj output [B, L, 3 * h * d]:
    strided views, read in place by hired."""
    width = attention.num_heads_per_partition * attention.head_dim
    return qkv[..., :width], qkv[..., width : 2 * width]


@MULTIMODAL_REGISTRY.register_processor(
    LlavaNextMultiModalProcessor, info=HiredLlavaNextProcessingInfo, dummy_inputs=LlavaDummyInputsBuilder
)
class HiredLlavaNextForConditionalGeneration(LlavaNextForConditionalGeneration):
    def __init__(self, *, vllm_config, prefix: str = "") -> None:
        hf_config = vllm_config.model_config.hf_config
        self.hired_config = drop_config(hf_config)  # before the weights: a bad setting stops the engine
        check_llava_features(hf_config)
        super().__init__(vllm_config=vllm_config, prefix=prefix)
        if not isinstance(self.vision_tower, CLIPVisionModel):
            raise ValueError(f"vision_config: {type(self.vision_tower).__name__}; hired supports CLIP vision towers")
        layers = self.vision_tower.vision_model.encoder.layers  # built up to the feature layer
        self._attention = layers[0].self_attn
        self._captured: dict[str, torch.Tensor] = {}
        self.last_selection = None  # the most recent batch's hired.Selection, for inspection
        for name, layer in (("init", layers[0]), ("final", layers[-1])):
            layer.self_attn.qkv_proj.register_forward_hook(self._capture(name))

    def _capture(self, name: str):
        def hook(_module, _inputs, output):
            self._captured[name] = output[0] if isinstance(output, tuple) else output

        return hook

    def _select(self, partitions: list[int], image_sizes: list[list[int]]):
        """hired's selection of the batch from the captured q/k (see the module comment)."""
        attention, captured = self._attention, self._captured
        layout = {
            "num_partitions": partitions, "image_sizes": image_sizes, "config": self.hired_config,
            "grid_pinpoints": self.config.image_grid_pinpoints, "tile_px": self.config.vision_config.image_size,
        }
        init = _query_keys(attention, captured.pop("init"))
        final = _query_keys(attention, captured.pop("final"))
        heads = attention.num_heads_per_partition
        if attention.tp_size == 1:
            return select_qk(*init, *final, heads, **layout)
        rows = [tensor_model_parallel_all_gather(qk_attention(q, k, heads), dim=1) for q, k in (init, final)]
        return select(*rows, **layout)

    def _process_image_input(self, image_input) -> torch.Tensor | list[torch.Tensor]:
        if isinstance(image_input, LlavaNextImageEmbeddingInputs):
            return image_input["data"]  # given embeddings: their own counts, nothing to drop
        image_sizes = image_input.get("image_sizes")
        if image_sizes is None:
            raise ValueError("image_sizes: hired needs each image's size")
        pixel_values = list(image_input["pixel_values"])  # per image [P, 3, 336, 336]
        sizes = [[int(v) for v in size] for size in image_sizes.tolist()]
        partitions = [int(pixels.shape[0]) for pixels in pixel_values]
        self._captured.clear()
        features = self._image_pixels_to_features(self.vision_tower, torch.cat(pixel_values))
        selection = self.last_selection = self._select(partitions, sizes)
        # Only the kept tokens reach the projector; hired then lays out the newline rows.
        kept = gather(selection, features, config=_KEPT_ONLY)
        rows = pack_rows(selection, self.multi_modal_projector(kept.features), self.image_newline)
        lengths = rows.lengths.tolist()
        self._check_counts(sizes, lengths)
        return list(torch.split(rows.features, lengths))

    def _check_counts(self, sizes: list[list[int]], lengths: list[int]) -> None:
        vision = self.config.vision_config
        for i, (size, rows) in enumerate(zip(sizes, lengths)):
            promised = num_image_tokens(size, self.hired_config, self.config.image_grid_pinpoints,
                                        patch_px=vision.patch_size, tile_px=vision.image_size)
            if rows != promised:
                raise RuntimeError(
                    f"hired: image {i} ({size[0]}x{size[1]}) became {rows} rows, but its placeholders are "
                    f"{promised}: a bug in hired (please report it)"
                )
