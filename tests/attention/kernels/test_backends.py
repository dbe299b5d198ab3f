"""The one backend table and resolve function every kernel op uses, and its one error style."""
from __future__ import annotations

import pytest
import torch

from src.attention.kernels.backends import (
    ATTENTION_BACKENDS,
    ESTIMATE_BACKENDS,
    OP_BACKENDS,
    check_triton_device,
    resolve_backend,
)
from src.attention.kernels.triton_utils import unsupported_device
from src.registry import ConfigError


def test_every_op_names_its_backends_and_torch_is_always_one() -> None:
    assert ATTENTION_BACKENDS == ("auto", "triton", "flex", "torch") and ESTIMATE_BACKENDS == ("auto", "triton", "torch")
    assert all("torch" in backends and "triton" in backends for backends in OP_BACKENDS.values())
    assert "flex" not in OP_BACKENDS["vertical-slash attention"]


def test_auto_runs_triton_only_on_supported_cuda_inputs() -> None:
    cpu = torch.zeros(1)
    assert resolve_backend("key permutation", "auto", cpu, None) == "torch"
    assert resolve_backend("key permutation", "torch", cpu, None) == "torch"
    assert resolve_backend("block-sparse attention", "flex", cpu, "whatever") == "flex"
    for op in ("block-sparse attention", "vertical-slash attention", "block-column attention"):
        assert resolve_backend(op, "auto", cpu, None) == "torch"  # CPU: the measured faster one
    if torch.cuda.is_available():
        assert resolve_backend("key permutation", "auto", cpu.cuda(), None) == "triton"
        assert resolve_backend("key permutation", "auto", cpu.cuda(), "too long") == "torch"
        assert resolve_backend("block-sparse attention", "auto", cpu.cuda(), "head dim 96") == "flex"


def test_errors_are_one_line_naming_the_op_and_what_is_allowed() -> None:
    x = torch.zeros(1)
    with pytest.raises(ConfigError, match="^unknown vertical-slash attention backend 'flex'; allowed: auto, triton, torch$"):
        resolve_backend("vertical-slash attention", "flex", x, None)
    with pytest.raises(ValueError, match="^the triton block selection cannot run: too long; use backend 'auto' or 'torch'$"):
        resolve_backend("block selection", "triton", x, "too long")
    with pytest.raises(ValueError, match="use backend 'auto' or 'flex' or 'torch'$"):
        resolve_backend("block-sparse attention", "triton", x, "no")


def test_device_check() -> None:
    import os

    reason = unsupported_device(torch.zeros(1))
    if os.environ.get("TRITON_INTERPRET") == "1":
        assert reason is None
    else:
        assert reason == "it needs CUDA tensors (got cpu) or TRITON_INTERPRET=1 set before import"


def test_an_explicit_triton_is_refused_from_the_config_where_it_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    backends = {"method.backend": "auto", "method.estimate_backend": "triton", "method.selector.backend": None}
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ConfigError, match=r"^method.estimate_backend 'triton' cannot run on cpu: it needs CUDA .*use method.estimate_backend=auto"):
        check_triton_device(backends, torch.device("cpu"))
    check_triton_device({"method.backend": "auto", "method.estimate_backend": "torch"}, torch.device("cpu"))
    check_triton_device(backends, torch.device("cuda"))  # a device type is enough: no GPU needed
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    check_triton_device(backends, torch.device("cpu"))
