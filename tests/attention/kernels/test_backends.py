"""The one backend table and resolve function every kernel op uses, and its one error style."""
from __future__ import annotations

import pytest
import torch

from src.attention.kernels.backends import ATTENTION_BACKENDS, ESTIMATE_BACKENDS, OP_BACKENDS, resolve_backend
from src.attention.kernels.triton_utils import unsupported_device
from src.registry import ConfigError


def test_every_op_names_its_backends_and_torch_is_always_one() -> None:
    assert ATTENTION_BACKENDS == ("triton", "flex", "torch") and ESTIMATE_BACKENDS == ("auto", "triton", "torch")
    assert all("torch" in backends and "triton" in backends for backends in OP_BACKENDS.values())
    assert "flex" not in OP_BACKENDS["vertical-slash attention"]


def test_auto_runs_triton_only_on_supported_cuda_inputs() -> None:
    cpu = torch.zeros(1)
    assert resolve_backend("key permutation", "auto", cpu, None) == "torch"
    assert resolve_backend("key permutation", "torch", cpu, None) == "torch"
    assert resolve_backend("block-sparse attention", "flex", cpu, "whatever") == "flex"
    if torch.cuda.is_available():
        assert resolve_backend("key permutation", "auto", cpu.cuda(), None) == "triton"
        assert resolve_backend("key permutation", "auto", cpu.cuda(), "too long") == "torch"


def test_errors_are_one_line_naming_the_op_and_what_is_allowed() -> None:
    x = torch.zeros(1)
    with pytest.raises(ConfigError, match="^unknown vertical-slash attention backend 'flex'; allowed: triton, torch$"):
        resolve_backend("vertical-slash attention", "flex", x, None)
    with pytest.raises(ValueError, match="^the triton block selection cannot run: too long; use backend 'auto' or 'torch'$"):
        resolve_backend("block selection", "triton", x, "too long")
    with pytest.raises(ValueError, match="use backend 'flex' or 'torch'$"):
        resolve_backend("block-sparse attention", "triton", x, "no")


def test_device_check() -> None:
    import os

    reason = unsupported_device(torch.zeros(1))
    if os.environ.get("TRITON_INTERPRET") == "1":
        assert reason is None
    else:
        assert reason == "it needs CUDA tensors (got cpu) or TRITON_INTERPRET=1 set before import"
