"""Choosing between a Triton estimation kernel and its torch reference.

Every estimation step with a Triton version (PBS's permutation and selection, XAttention's
antidiagonal scores) takes `backend` "auto", "triton" or "torch" from its config: "auto" runs
Triton on the CUDA inputs it supports and torch otherwise, so CPU runs and unusual shapes keep
working, while "triton" fails loudly when the kernel cannot run instead of silently falling back.
"""
from __future__ import annotations

import torch

ESTIMATE_BACKENDS = ("auto", "triton", "torch")


def check_estimate_backend(backend: str, what: str = "backend", error: type[Exception] = ValueError) -> str:
    """The backend name, or `error` ("unknown <what> ...") listing the allowed ones; components
    checking their config pass ConfigError, calls checking an argument keep ValueError."""
    if backend not in ESTIMATE_BACKENDS:
        raise error(f"unknown {what} {backend!r}; allowed: {', '.join(ESTIMATE_BACKENDS)}")
    return backend


def resolve_estimate_backend(backend: str, x: torch.Tensor, unsupported: str | None, what: str) -> str:
    """"triton" or "torch" for inputs like `x`; `unsupported` is why Triton cannot run (None: it can)."""
    check_estimate_backend(backend)
    if backend == "auto":
        return "triton" if x.is_cuda and unsupported is None else "torch"
    if backend == "triton" and unsupported is not None:
        raise ValueError(f"the triton {what} cannot run: {unsupported}; use backend 'torch' or 'auto'")
    return backend
