"""What hired adds to vLLM's LLaVA models, shared by LLaVA-Next and LLaVA-1.5 (HiredVision).

- Vision: vLLM's CLIP runs its own fused attention up to the feature layer (CLS dropped).
  Forward hooks take the query and key projections of layer 0 and of the feature layer from
  those layers' qkv_proj outputs; torch.ops.hired.select_qk keeps each partition's tokens, only
  the kept pre-projector features are projected, and torch.ops.hired.pack_rows lays out the
  newline rows. Each image's row count is checked against its placeholder count.
- Tensor parallelism: each rank holds a slice of the heads. Each rank computes its heads' CLS
  attention rows by hired's arithmetic (torch.ops.hired.qk_attention), the rows are gathered in
  head order, and every rank selects from all heads: the same tokens as one rank holding every
  head, bit for bit, so the replicated projector and LLM see the same rows on every rank.
"""

from __future__ import annotations

import torch
from vllm.distributed import tensor_model_parallel_all_gather
from vllm.model_executor.models.clip import CLIPVisionModel

from ..config import DropConfig, check_llava_features
from ..selection import gather, pack_rows, qk_attention, select, select_qk

_KEPT_ONLY = DropConfig(budget_rate=1.0, newline="none")  # gather's packing: kept tokens, no newline rows


def _query_keys(attention, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The q and k of this rank's heads in a CLIP layer's qkv_proj output [B, L, 3 * h * d]:
    strided views, read in place by hired."""
    width = attention.num_heads_per_partition * attention.head_dim
    return qkv[..., :width], qkv[..., width : 2 * width]


class HiredVision:
    """Mixed into a vLLM LLaVA model (before it in the bases): hired_setup() after the model's
    __init__, then hired_rows() in place of its projector step. The model class says how many
    rows an image promises (promised_rows)."""

    def hired_setup(self, config: DropConfig, grid_pinpoints: list) -> None:
        check_llava_features(self.config)
        if not isinstance(self.vision_tower, CLIPVisionModel):
            raise ValueError(f"vision_config: {type(self.vision_tower).__name__}; hired supports CLIP vision towers")
        self.hired_config, self._grid_pinpoints = config, grid_pinpoints
        layers = self.vision_tower.vision_model.encoder.layers  # built up to the feature layer
        self._attention = layers[0].self_attn
        self._captured: dict[str, torch.Tensor] = {}
        self.last_selection = None  # the most recent batch's hired.Selection, for inspection
        for name, layer in (("init", layers[0]), ("final", layers[-1])):
            layer.self_attn.qkv_proj.register_forward_hook(self._capture(name))

    def promised_rows(self, image_size: list[int] | None) -> int:
        raise NotImplementedError

    def _capture(self, name: str):
        def hook(_module, _inputs, output):
            self._captured[name] = output[0] if isinstance(output, tuple) else output

        return hook

    def _select(self, partitions: list[int], image_sizes: list[list[int]] | None):
        """hired's selection of the batch from the captured q/k (see the module comment)."""
        attention, captured = self._attention, self._captured
        layout = {
            "num_partitions": partitions, "image_sizes": image_sizes, "config": self.hired_config,
            "grid_pinpoints": self._grid_pinpoints, "tile_px": self.config.vision_config.image_size,
        }
        init = _query_keys(attention, captured.pop("init"))
        final = _query_keys(attention, captured.pop("final"))
        heads = attention.num_heads_per_partition
        if attention.tp_size == 1:
            return select_qk(*init, *final, heads, **layout)
        rows = [tensor_model_parallel_all_gather(qk_attention(q, k, heads), dim=1) for q, k in (init, final)]
        return select(*rows, **layout)

    def hired_rows(self, pixel_values: torch.Tensor, partitions: list[int],
                   image_sizes: list[list[int]] | None) -> list[torch.Tensor]:
        """Each image's rows for the LLM from its partitions' pixels ([sum P, 3, 336, 336]):
        vision tower, selection, the kept features projected, newline rows laid out."""
        self._captured.clear()
        features = self._image_pixels_to_features(self.vision_tower, pixel_values)
        selection = self.last_selection = self._select(partitions, image_sizes)
        kept = gather(selection, features, config=_KEPT_ONLY)
        rows = pack_rows(selection, self.multi_modal_projector(kept.features), getattr(self, "image_newline", None))
        lengths = rows.lengths.tolist()
        for i, count in enumerate(lengths):
            size = None if image_sizes is None else image_sizes[i]
            promised = self.promised_rows(size)
            if count != promised:
                raise RuntimeError(
                    f"hired: image {i} (size {size}) became {count} rows, but its placeholders are {promised}: "
                    "a bug in hired (please report it)"
                )
        return list(torch.split(rows.features, lengths))
