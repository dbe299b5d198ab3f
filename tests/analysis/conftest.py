"""The inputs every analysis test shares: one batch of structured q/k and its true attention."""
from __future__ import annotations

import pytest
import torch

from tests.analysis.brute import SCALE, full_attention, make_qk


@pytest.fixture(scope="module")
def qk() -> tuple[torch.Tensor, torch.Tensor]:
    return make_qk(batch=2)


@pytest.fixture(scope="module")
def attention(qk: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return full_attention(*qk, SCALE)
