"""The one table of backend names and the one way every kernel op picks its backend.

Attention ops take `backend` from `method.backend` ("triton", "flex", "torch": whichever the op
has); estimation ops take it from their component's config ("auto", "triton", "torch"), where
"auto" runs Triton on the CUDA inputs it supports and torch otherwise, so CPU runs and unusual
shapes keep working. Asking for "triton" where it cannot run fails loudly instead of silently
falling back.
"""
from __future__ import annotations

import torch

from src.checks import check_choice

ESTIMATE_BACKENDS = ("auto", "triton", "torch")

# op -> the backends it has ("torch" is always its plain-torch reference, naive.py).
OP_BACKENDS: dict[str, tuple[str, ...]] = {
    "block-sparse attention": ("triton", "flex", "torch"),
    # No FlexAttention path: a vertical-slash mask is not aligned to blocks.
    "vertical-slash attention": ("triton", "torch"),
    "key permutation": ESTIMATE_BACKENDS,
    "block selection": ESTIMATE_BACKENDS,
    "antidiagonal estimate": ESTIMATE_BACKENDS,
}
# What `method.backend` may name: every attention backend some plan's op has.
ATTENTION_BACKENDS = OP_BACKENDS["block-sparse attention"]


def resolve_backend(op: str, backend: str, x: torch.Tensor, unsupported: str | None) -> str:
    """The backend `op` runs on inputs like `x`; `unsupported` is why Triton cannot (None: it can).

    Raises ConfigError for a name the op does not have, ValueError when "triton" cannot run.
    """
    allowed = OP_BACKENDS[op]
    check_choice(f"{op} backend", backend, allowed)
    if backend == "auto":
        return "triton" if x.is_cuda and unsupported is None else "torch"
    if backend == "triton" and unsupported is not None:
        others = " or ".join(repr(name) for name in allowed if name != "triton")
        raise ValueError(f"the triton {op} cannot run: {unsupported}; use backend {others}")
    return backend
