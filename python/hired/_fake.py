"""Fake (meta) implementations of torch.ops.hired, for FakeTensor and torch.compile.

Output sizes come from hired's own count (torch.ops.hired.selection_counts, C++) where the
layout alone decides them (exact mode; packed rows with newline policy none or every_row), and
are dynamic sizes otherwise (reference mode, kept_rows).
"""

from __future__ import annotations

import torch

from ._ops import ops


def _counts(num_partitions, image_sizes, grid_shapes, tokens, grid_pinpoints, tile_px, **config):
    return ops.selection_counts(
        num_partitions, image_sizes, grid_shapes, **config, grid_pinpoints=grid_pinpoints, tile_px=tile_px,
        tokens=tokens,
    )


def _size(known: int) -> int:
    return known if known >= 0 else torch.library.get_ctx().new_dynamic_size()


def _selection(device, num_partitions, kept):
    long = {"dtype": torch.int64, "device": device}
    rows, images = sum(num_partitions), len(num_partitions)
    return (
        torch.empty(rows, **long),
        torch.empty(_size(kept), **long),
        torch.empty(rows + 1, **long),
        torch.empty(images + 1, **long),
        torch.empty(images, **long),
    )


@torch.library.register_fake("hired::select")
def _select(init_attn, final_attn, num_partitions, image_sizes=None, grid_shapes=None, *, mode="exact",
            budget_rate=0.2, budget_tokens=None, alpha=0.5, newline="every_row", grid_pinpoints=None, tile_px=336):
    kept, *_ = _counts(num_partitions, image_sizes, grid_shapes, init_attn.size(2) - 1, grid_pinpoints, tile_px,
                      mode=mode, budget_rate=budget_rate, budget_tokens=budget_tokens, alpha=alpha,
                      newline=newline)
    return _selection(init_attn.device, num_partitions, kept)


@torch.library.register_fake("hired::select_qk")
def _select_qk(init_q, init_k, final_q, final_k, heads, num_partitions, image_sizes=None, grid_shapes=None, *,
               mode="exact", budget_rate=0.2, budget_tokens=None, alpha=0.5, newline="every_row", grid_pinpoints=None,
               tile_px=336):
    kept, *_ = _counts(num_partitions, image_sizes, grid_shapes, init_q.size(1) - 1, grid_pinpoints, tile_px,
                      mode=mode, budget_rate=budget_rate, budget_tokens=budget_tokens, alpha=alpha,
                      newline=newline)
    return _selection(init_q.device, num_partitions, kept)


def _packed(table, kept, num_partitions, image_sizes, grid_shapes, tokens, mode, newline, grid_pinpoints,
            tile_px):
    """Exact mode keeps no token that unpad removes (the op checks), so the packed rows are the
    kept tokens plus the layout's newline rows; otherwise they depend on the values."""
    newlines = -1
    if mode == "exact":
        *_, newlines = _counts(num_partitions, image_sizes, grid_shapes, tokens, grid_pinpoints, tile_px,
                               mode="exact", budget_rate=1.0, budget_tokens=None, alpha=0.5, newline=newline)
    rows = kept.size(0) + newlines if newlines >= 0 else torch.library.get_ctx().new_dynamic_size()
    long = {"dtype": torch.int64, "device": table.device}
    return (
        table.new_empty(rows, table.size(-1)),
        torch.empty(len(num_partitions), **long),
        torch.empty(rows, **long),
    )


@torch.library.register_fake("hired::gather")
def _gather(features, kept, kept_offsets, num_partitions, image_sizes=None, grid_shapes=None, image_newline=None,
            *, mode="exact", newline="every_row", grid_pinpoints=None, tile_px=336):
    return _packed(features, kept, num_partitions, image_sizes, grid_shapes, features.size(1), mode, newline,
                   grid_pinpoints, tile_px)


@torch.library.register_fake("hired::pack_rows")
def _pack_rows(rows, kept, kept_offsets, num_partitions, image_sizes=None, grid_shapes=None, image_newline=None,
               *, mode="exact", newline="every_row", grid_pinpoints=None, tile_px=336, tokens=576):
    return _packed(rows, kept, num_partitions, image_sizes, grid_shapes, tokens, mode, newline, grid_pinpoints,
                   tile_px)


@torch.library.register_fake("hired::cls_attention")
def _cls_attention(q, k, heads):
    return q.new_empty(q.size(0), heads, q.size(1), dtype=torch.float32)


@torch.library.register_fake("hired::qk_attention")
def _qk_attention(q, k, heads):
    return q.new_empty(q.size(0), heads, q.size(1), dtype=torch.float32)


@torch.library.register_fake("hired::draw_selection")
def _draw_selection(tiles, kept, kept_offsets, num_partitions, image_sizes=None, grid_shapes=None, *,
                    mode="exact", grid_pinpoints=None, tile_px=336, tokens=576):
    """The picture's size is the C++ overlay's layout; left dynamic rather than restated."""
    ctx = torch.library.get_ctx()
    return tiles.new_empty(ctx.new_dynamic_size(), ctx.new_dynamic_size(), 3)
