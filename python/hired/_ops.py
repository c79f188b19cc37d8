"""Loads hired's op library (torch.ops.hired) into this process, once.

The library is C++ built against one torch: loading it into another would crash or misbehave,
so the torch it was built with is checked first and a mismatch is refused with what to do.
"""

from __future__ import annotations

import pathlib

import torch

from . import _build_info

_HERE = pathlib.Path(__file__).resolve().parent


def _load() -> None:
    if torch.__version__ != _build_info.torch_version:
        raise ImportError(
            f"hired was built against torch {_build_info.torch_version}, but this environment has "
            f"torch {torch.__version__}: its C++ op library cannot load into another torch. "
            "Rebuild it here: pip install --no-build-isolation <hired source directory>"
        )
    library = _HERE / "libhired_ops.so"
    if not library.is_file():
        raise ImportError(f"hired: {library} is missing; reinstall the package")
    torch.ops.load_library(str(library))


_load()
ops = torch.ops.hired
cuda_kernels: bool = _build_info.cuda_kernels
