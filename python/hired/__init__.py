"""hired: HiRED (High-Resolution Early Dropping) for LLaVA-Next in PyTorch.

The visual tokens of a high-resolution image are dropped before the projector and the
language model, inside a fixed budget, guided by the vision transformer's CLS attention. The
selection, budgets, packing and token counts run in hired's C++ (CPU path and CUDA kernels),
exposed as torch.ops.hired; this package is typed glue over them.

    import hired
    config = hired.DropConfig(budget_rate=0.2)
    handle = hired.transformers.apply(model, processor, config)   # a LlavaNext model, in place

or, at the level of tensors: hired.select / hired.select_qk, hired.gather, hired.pack_rows,
hired.cls_attention, hired.qk_attention, hired.num_image_tokens; hired.draw_selection
draws what was kept.
"""

from ._ops import cuda_kernels, ops
from . import _fake  # noqa: F401  (registers the fake implementations)
from .config import DropConfig
from .overlay import draw_selection
from .selection import (
    Packed, Selection, cls_attention, gather, num_image_tokens, pack_rows, qk_attention, select, select_qk,
)

__all__ = [
    "DropConfig", "Packed", "Selection", "cls_attention", "cuda_kernels", "draw_selection", "gather", "num_image_tokens", "ops",
    "pack_rows", "qk_attention", "select", "select_qk",
]
__version__ = "0.1.0"
