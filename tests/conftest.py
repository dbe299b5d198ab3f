"""Shared test setup: Triton kernels run in the interpreter without a GPU; `gpu` tests skip there."""
from __future__ import annotations

import os

import pytest
import torch

# Shared assertion helpers get pytest's assertion messages, as asserts in test modules do.
pytest.register_assert_rewrite("src.attention.testing")

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked `gpu` when no CUDA device is present."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
