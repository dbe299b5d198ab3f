"""What every Triton kernel here shares: constants, tl.dot's precision, the launch-shape type,
the input dtypes, the device check, and the interpreter fix the CPU tests need.

Importing this module applies the fix when TRITON_INTERPRET=1, so every kernel module imports it
(directly or through these names) before its kernels can run in the interpreter.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

LOG2E = 1.4426950408889634
DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def dot_precision(dtype: torch.dtype) -> str:
    """tl.dot's input precision for every kernel here: exact fp32 products for fp32 inputs (the
    references' precision, so tests compare tightly), tensor cores for 16-bit inputs."""
    return "ieee" if dtype == torch.float32 else "tf32"


@dataclass(frozen=True)
class TileConfig:
    """Launch shape of a Triton kernel: query (or strided-query) rows and key rows per tile, warps,
    pipeline depth; shared by the block-sparse kernel and the XAttention estimation kernels."""

    block_m: int
    block_n: int
    num_warps: int
    num_stages: int


def unsupported_device(x: torch.Tensor) -> str | None:
    """Why Triton cannot run on x's device, or None: it needs CUDA, or the interpreter switched on
    (TRITON_INTERPRET=1) before triton is imported."""
    if x.is_cuda or os.environ.get("TRITON_INTERPRET") == "1":
        return None
    return f"it needs CUDA tensors (got {x.device}) or TRITON_INTERPRET=1 set before import"


def _let_interpreter_index_with_scalars() -> None:
    """Make the Triton interpreter accept loaded scalars as loop bounds under NumPy >= 2.4.

    Triton 3.6's interpreter holds a scalar as a one-element array and converts it with int(),
    which NumPy 2.4 rejects; the kernels' loop bounds are loaded scalars. CPU tests only.
    """
    from triton.runtime import interpreter

    patch_tensor = getattr(interpreter, "_patch_lang_tensor", None)
    if patch_tensor is None:
        return

    def patch_tensor_with_index(tensor: type, scope: object) -> None:
        patch_tensor(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.item()))

    interpreter._patch_lang_tensor = patch_tensor_with_index


if os.environ.get("TRITON_INTERPRET") == "1":
    _let_interpreter_index_with_scalars()
