"""Thin typed wrappers over torch.ops.hired: HiRED's selection, packing and token counts.

Everything here converts arguments and calls hired's C++ (CPU path or CUDA kernels); the
budgets, the top-k, the packing order and the counts are computed there, not restated here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import torch

from ._ops import ops
from .config import DropConfig

IntsLike = Sequence[int] | torch.Tensor
PairsLike = Sequence[Sequence[int]] | torch.Tensor


def _ints(value: IntsLike, name: str) -> list[int]:
    """A 1-D integer tensor or sequence as Python ints."""
    if isinstance(value, torch.Tensor):
        if value.dim() != 1 or value.dtype.is_floating_point or value.dtype == torch.bool:
            raise TypeError(f"{name}: expected a 1-D integer tensor, got {value.dtype} {list(value.shape)}")
        return [int(v) for v in value.tolist()]
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name}: expected a sequence of ints or a 1-D integer tensor, got {type(value).__name__}")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise TypeError(f"{name}: expected ints, got {[type(v).__name__ for v in value]}")
    return list(value)


def _pairs(value: PairsLike | None, name: str) -> list[int] | None:
    """(height, width) or (rows, cols) pairs, [B, 2], flattened as the ops take them."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        if value.dim() != 2 or value.size(1) != 2 or value.dtype.is_floating_point:
            raise TypeError(f"{name}: expected an integer tensor of shape [B, 2], got {value.dtype} {list(value.shape)}")
        return [int(v) for v in value.flatten().tolist()]
    flat: list[int] = []
    for i, pair in enumerate(value):
        if len(pair) != 2:
            raise TypeError(f"{name}[{i}]: expected a pair, got {pair!r}")
        flat += _ints(list(pair), f"{name}[{i}]")
    return flat


def _config(config: DropConfig | None) -> DropConfig:
    if config is None:
        return DropConfig()
    if not isinstance(config, DropConfig):
        raise TypeError(f"config: expected hired.DropConfig, got {type(config).__name__}")
    return config


@dataclasses.dataclass(frozen=True)
class Selection:
    """The kept tokens of a batch, as hired's C++ TokenSelection holds them (int64 tensors on
    the scores' device, CSR): partition p keeps patch indices kept[kept_offsets[p]:
    kept_offsets[p + 1]] (0..N-1, ascending); image b's partitions are partition_offsets[b]..
    partition_offsets[b + 1] - 1; requested[b] is the budget T asked for image b. Also the
    batch layout and configuration, which gather() and pack_rows() need."""

    budgets: torch.Tensor
    kept: torch.Tensor
    kept_offsets: torch.Tensor
    partition_offsets: torch.Tensor
    requested: torch.Tensor
    num_partitions: tuple[int, ...]
    image_sizes: tuple[int, ...] | None
    grid_shapes: tuple[int, ...] | None
    grid_pinpoints: tuple[int, ...] | None
    tile_px: int
    tokens: int
    config: DropConfig

    def kept_in(self, partition: int) -> torch.Tensor:
        """The kept patch indices of one partition (row of the [sum P, ...] inputs)."""
        begin, end = (int(v) for v in self.kept_offsets[partition : partition + 2].tolist())
        return self.kept[begin:end]

    def _layout(self) -> dict:
        return {
            "num_partitions": list(self.num_partitions),
            "image_sizes": None if self.image_sizes is None else list(self.image_sizes),
            "grid_shapes": None if self.grid_shapes is None else list(self.grid_shapes),
        }

    def _grid(self) -> dict:
        pins = None if self.grid_pinpoints is None else list(self.grid_pinpoints)
        return {"grid_pinpoints": pins, "tile_px": self.tile_px}


class Packed(NamedTuple):
    """Rows in LLaVA-Next's packing order: features [rows, D], lengths [B] (rows of each image,
    newline rows included), source_rows [rows] (partition * N + token, -1 for image_newline)."""

    features: torch.Tensor
    lengths: torch.Tensor
    source_rows: torch.Tensor


def _layout_args(num_partitions, image_sizes, grid_shapes, grid_pinpoints):
    return (
        _ints(num_partitions, "num_partitions"),
        _pairs(image_sizes, "image_sizes"),
        _pairs(grid_shapes, "grid_shapes"),
        _pairs(grid_pinpoints, "grid_pinpoints"),
    )


def _selection(result, layout, pins, tile_px, tokens, config) -> Selection:
    partitions, sizes, grids = layout
    return Selection(
        *result,
        num_partitions=tuple(partitions),
        image_sizes=None if sizes is None else tuple(sizes),
        grid_shapes=None if grids is None else tuple(grids),
        grid_pinpoints=None if pins is None else tuple(pins),
        tile_px=tile_px,
        tokens=tokens,
        config=config,
    )


def select(
    init_attn: torch.Tensor,
    final_attn: torch.Tensor,
    num_partitions: IntsLike,
    image_sizes: PairsLike | None = None,
    grid_shapes: PairsLike | None = None,
    config: DropConfig | None = None,
    grid_pinpoints: PairsLike | None = None,
    tile_px: int = 336,
) -> Selection:
    """HiRED's selection from the CLS query's attention rows of the two ViT layers.

    init_attn, final_attn: [sum P, H, N + 1] (layer 0 and the feature layer; key 0 is CLS),
    any floating dtype, CPU or CUDA. num_partitions: [B] (1 + tiles of each image);
    image_sizes: [B, 2] (height, width) as transformers' `image_sizes`, needed in exact mode;
    or grid_shapes [B, 2] (tile rows, cols). grid_pinpoints: (height, width) pairs; None means
    LLaVA-v1.6's, [] none (one partition per image). Bad arguments raise ValueError naming them.
    """
    config = _config(config)
    *layout, pins = _layout_args(num_partitions, image_sizes, grid_shapes, grid_pinpoints)
    result = ops.select(init_attn, final_attn, *layout, **config.kwargs(), grid_pinpoints=pins, tile_px=tile_px)
    return _selection(result, layout, pins, tile_px, init_attn.size(-1) - 1, config)


def select_qk(
    init_q: torch.Tensor,
    init_k: torch.Tensor,
    final_q: torch.Tensor,
    final_k: torch.Tensor,
    heads: int,
    num_partitions: IntsLike,
    image_sizes: PairsLike | None = None,
    grid_shapes: PairsLike | None = None,
    config: DropConfig | None = None,
    grid_pinpoints: PairsLike | None = None,
    tile_px: int = 336,
) -> Selection:
    """The same from the query and key projections of the two layers ([sum P, N + 1, H * d],
    before the 1/sqrt(d) scale; strided views such as chunks of a fused qkv are read in place),
    scored by hired's specified float arithmetic: the CPU path and the CUDA kernels keep the same
    tokens bit for bit."""
    config = _config(config)
    *layout, pins = _layout_args(num_partitions, image_sizes, grid_shapes, grid_pinpoints)
    result = ops.select_qk(
        init_q, init_k, final_q, final_k, int(heads), *layout, **config.kwargs(), grid_pinpoints=pins, tile_px=tile_px
    )
    return _selection(result, layout, pins, tile_px, init_q.size(1) - 1, config)


def _packing(selection: Selection, config: DropConfig | None) -> dict:
    """The selection's mode (what it was made by) and the newline policy to pack with."""
    if not isinstance(selection, Selection):
        raise TypeError(f"selection: expected hired.Selection, got {type(selection).__name__}")
    newline = (selection.config if config is None else _config(config)).newline
    return {"mode": selection.config.mode, "newline": newline}


def gather(
    selection: Selection,
    features: torch.Tensor,
    image_newline: torch.Tensor | None = None,
    config: DropConfig | None = None,
) -> Packed:
    """The kept tokens' rows of `features` ([sum P, N, D]) in LLaVA-Next's packing order, with
    `image_newline` ([D]) rows by the newline policy (the selection's config unless `config`
    is given). A CUDA selection packs with hired's kernel after one synchronisation."""
    packing = _packing(selection, config)
    return Packed(
        *ops.gather(
            features, selection.kept, selection.kept_offsets, **selection._layout(),
            image_newline=image_newline, **packing, **selection._grid(),
        )
    )


def pack_rows(
    selection: Selection,
    rows: torch.Tensor,
    image_newline: torch.Tensor | None = None,
    config: DropConfig | None = None,
) -> Packed:
    """Rows already in packing order without newline rows ([K, D]: gather() with newline policy
    "none", then e.g. the projector) laid out with `image_newline` rows by the policy. So the
    projector sees only kept tokens: pack_rows(project(gather(none))) = gather(project(all))."""
    packing = _packing(selection, config)
    return Packed(
        *ops.pack_rows(
            rows, selection.kept, selection.kept_offsets, **selection._layout(),
            image_newline=image_newline, **packing, **selection._grid(), tokens=selection.tokens,
        )
    )


def cls_attention(q: torch.Tensor, k: torch.Tensor, heads: int) -> torch.Tensor:
    """The CLS query's attention row of one layer from its q and k ([sum P, N + 1, H * d]):
    softmax(q_CLS . k_j / sqrt(d)) per head in float32 -> [sum P, H, N + 1], without forming the
    N x N map (ATen's arithmetic; select_qk's is the bit-exact one)."""
    return ops.cls_attention(q, k, int(heads))


def qk_attention(q: torch.Tensor, k: torch.Tensor, heads: int) -> torch.Tensor:
    """The same rows [sum P, H, N + 1] by hired's specified arithmetic, the terms select_qk adds:
    select() on them keeps exactly select_qk's tokens. For heads split across ranks (tensor
    parallelism): each rank passes its heads' q and k, the rows are gathered in head order, and
    every rank selects what one rank with every head would. Runs on the host (CUDA inputs are
    copied there once); the result is on the inputs' device."""
    return ops.qk_attention(q, k, int(heads))


def num_image_tokens(
    image_size: Sequence[int],
    config: DropConfig | None = None,
    grid_pinpoints: PairsLike | None = None,
    patch_px: int = 14,
    tile_px: int = 336,
) -> int:
    """The rows an image of `image_size` = (height, width) becomes in the LLM, newline rows
    included: what a processor must expand its <image> placeholder to. Exact mode with newline
    policy every_row or none only (ValueError naming the mode or policy otherwise); at rate 1.0
    with every_row it is stock LLaVA-Next's count."""
    config = _config(config)
    size = _ints(list(image_size), "image_size")
    if len(size) != 2:
        raise TypeError(f"image_size: expected (height, width), got {tuple(image_size)!r}")
    height, width = size
    return ops.num_image_tokens(
        height, width, **config.kwargs(), grid_pinpoints=_pairs(grid_pinpoints, "grid_pinpoints"),
        patch_px=patch_px, tile_px=tile_px,
    )
