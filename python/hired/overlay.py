"""What HiRED kept, as a picture: hired's C++ overlay (the one hired_select --overlay and
hired_generate --overlay write), drawn through torch.ops.hired.draw_selection."""

from __future__ import annotations

import torch

from ._ops import ops
from .selection import Selection


def draw_selection(selection: Selection, tiles: torch.Tensor) -> torch.Tensor:
    """The overlay of `selection` on its images: uint8 RGB [height, width, 3].

    Each image's partitions side by side (the full image, then its anyres tiles as the grid
    lays them out), kept patches at full brightness and dropped ones at a quarter, each labelled
    with its budget ("288 / 576"); the images one below the other. `tiles` are the batch's
    partitions as the image processor cuts them before rescale and normalisation, uint8
    [sum P, 3, tile_px, tile_px] (e.g. LlavaNextImageProcessor with do_rescale=False,
    do_normalize=False, then .to(torch.uint8)). Drawn on the host; the result is on the CPU.
    Bad arguments raise ValueError naming them.
    """
    if not isinstance(selection, Selection):
        raise TypeError(f"selection: expected hired.Selection, got {type(selection).__name__}")
    if not isinstance(tiles, torch.Tensor):
        raise TypeError(f"tiles: expected a uint8 tensor, got {type(tiles).__name__}")
    return ops.draw_selection(
        tiles.cpu(), selection.kept.cpu(), selection.kept_offsets.cpu(), **selection._layout(),
        mode=selection.config.mode, **selection._grid(), tokens=selection.tokens,
    )
