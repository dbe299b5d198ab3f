"""Under TRITON_INTERPRET=1 bf16 is refused in one line (its matmuls come out wrong there), never computed."""
from __future__ import annotations

import os

import pytest
import torch

from src.attention.kernels import block_sparse_attention
from src.attention.ops import num_blocks

pytestmark = pytest.mark.skipif(
    torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") != "1", reason="CPU interpreter behaviour"
)


def _inputs(dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    q, k, v = torch.randn(3, 1, 2, 64, 64, generator=torch.Generator().manual_seed(0)).to(dtype).unbind(0)
    n = num_blocks(64, 16)
    return q, k, v, torch.ones(1, 2, n, n, dtype=torch.bool).tril()


def test_bf16_is_refused_by_the_interpreter() -> None:
    with pytest.raises(ValueError, match=r"the Triton interpreter \(TRITON_INTERPRET=1\) computes bf16 matmuls wrongly; "
                                         r"use float16 or float32 inputs there; use backend 'auto' or 'flex' or 'torch'"):
        block_sparse_attention(*_inputs(torch.bfloat16), block_size=16, scale=0.125, backend="triton")


def test_bf16_runs_on_torch_and_fp16_still_runs_triton() -> None:
    q, k, v, mask = _inputs(torch.bfloat16)
    on_torch = block_sparse_attention(q, k, v, mask, block_size=16, scale=0.125, backend="torch")
    reference = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True, scale=0.125)
    torch.testing.assert_close(on_torch.float(), reference, atol=2e-2, rtol=2e-2)
    half = block_sparse_attention(*_inputs(torch.float16), block_size=16, scale=0.125, backend="triton")
    torch.testing.assert_close(half.float(), reference, atol=2e-2, rtol=2e-2)
