"""The one table of backend names and the one way every kernel op picks its backend.

Attention ops take `backend` from `method.backend` ("auto", "triton", "flex", "torch": whichever
the op has); estimation ops take it from their component's config ("auto", "triton", "torch").
"auto" runs Triton on the CUDA inputs it supports and otherwise the op's fastest other backend on
that device (`FALLBACK`), so CPU runs and unusual shapes keep working. Asking for "triton" where
it cannot run fails loudly instead of silently falling back; `check_triton_device` refuses it
from the config alone, before any model is loaded.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from src.attention.kernels.triton_utils import unsupported_device
from src.checks import check_choice
from src.registry import ConfigError

ESTIMATE_BACKENDS = ("auto", "triton", "torch")

# op -> the backends it has ("torch" is always its plain-torch reference, naive.py).
OP_BACKENDS: dict[str, tuple[str, ...]] = {
    "block-sparse attention": ("auto", "triton", "flex", "torch"),
    # No FlexAttention path: a vertical-slash mask is not aligned to blocks, nor are its ranges.
    "vertical-slash attention": ("auto", "triton", "torch"),
    "block-column attention": ("auto", "triton", "torch"),
    "block-column index": ESTIMATE_BACKENDS,
    "key permutation": ESTIMATE_BACKENDS,
    "block selection": ESTIMATE_BACKENDS,
    "antidiagonal estimate": ESTIMATE_BACKENDS,
}
# What `method.backend` may name: every attention backend some plan's op has.
ATTENTION_BACKENDS = OP_BACKENDS["block-sparse attention"]

# (op, device type) -> what "auto" runs where Triton cannot; every other pair runs "torch".
# CUDA: compiled FlexAttention beats the O(L^2) dense-mask reference. CPU: measured at SmolLM2's
# shapes, 2K-4K tokens (experiments/bench_cpu_backends.py, experiments/NOTES.md).
FALLBACK: dict[tuple[str, str], str] = {
    ("block-sparse attention", "cuda"): "flex",
}


def resolve_backend(op: str, backend: str, x: torch.Tensor, unsupported: str | None) -> str:
    """The backend `op` runs on inputs like `x`; `unsupported` is why Triton cannot (None: it can).

    Raises ConfigError for a name the op does not have, ValueError when "triton" cannot run.
    """
    allowed = OP_BACKENDS[op]
    check_choice(f"{op} backend", backend, allowed)
    if backend == "auto":
        if x.is_cuda and unsupported is None:
            return "triton"
        return FALLBACK.get((op, x.device.type), "torch")
    if backend == "triton" and unsupported is not None:
        others = " or ".join(repr(name) for name in allowed if name != "triton")
        raise ValueError(f"the triton {op} cannot run: {unsupported}; use backend {others}")
    return backend


def check_triton_device(backends: Mapping[str, str | None], device: torch.device) -> None:
    """ConfigError naming the first config key (e.g. "method.backend") set to "triton" when Triton
    cannot run on `device` (a CPU without TRITON_INTERPRET=1); None values are keys not set."""
    reason = unsupported_device(device)
    if reason is None:
        return
    for key, backend in backends.items():
        if backend == "triton":
            raise ConfigError(
                f"{key} 'triton' cannot run on {device}: {reason}; use {key}=auto (Triton on CUDA, "
                f"{FALLBACK.get(('block-sparse attention', device.type), 'torch')} on {device.type}) or another backend"
            )
