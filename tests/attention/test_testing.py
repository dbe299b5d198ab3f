"""The shared toolbox itself: structured inputs have the structure they promise, the masks their
shape, and assert_close applies FlashAttention's rule."""
from __future__ import annotations

import pytest
import torch

from src.attention.ops import causal_block_layout, causal_softmax
from src.attention.testing import assert_close, random_block_mask, random_qkv, structured_qkv


def test_structured_inputs_have_a_sink_and_a_local_band() -> None:
    length, queries = 256, torch.arange(64, 256)
    offsets = queries[:, None] - torch.arange(length)[None, :]
    in_band = (offsets >= 0) & (offsets < 16)

    def shares(q: torch.Tensor, k: torch.Tensor) -> tuple[float, float]:
        """(mean attention on the sink key, mean attention within 16 tokens back)."""
        probs = causal_softmax(q, k, queries, scale=64**-0.5)[0]
        return float(probs[..., 0].mean()), float(probs.masked_fill(~in_band, 0.0).sum(-1).mean())

    plain = shares(*random_qkv(1, 2, 1, length, 64, seed=1)[:2])
    sink_only = shares(*structured_qkv(1, 2, 1, length, 64, seed=1)[:2])
    banded = shares(*structured_qkv(1, 2, 1, length, 64, seed=1, band=16)[:2])
    assert plain[0] < 0.05 < 0.5 < sink_only[0] and banded[0] > 0.5
    assert banded[1] > max(0.15, 5 * sink_only[1])


def test_causal_masks_hold_sink_and_diagonal_at_about_the_asked_density() -> None:
    mask = random_block_mask(4, 2, 1000, 50, density=0.3, seed=2, segment_size=100)
    allowed, diagonal = causal_block_layout(1000, 50, 100, torch.device("cpu"))
    assert (mask <= allowed).all() and mask[..., diagonal].all() and mask[..., 0].all()
    assert abs(float(mask.sum()) / (8 * int(allowed.sum())) - 0.3) < 0.05
    anything = random_block_mask(4, 2, 1000, 50, density=0.3, seed=2, causal=False)
    assert (anything & ~allowed).any()


def test_sixteen_bit_results_are_held_to_twice_the_same_precision_torch_error() -> None:
    expected = torch.zeros(10)
    baseline = torch.full((10,), 0.01)
    assert_close(torch.full((10,), 0.019, dtype=torch.float16), expected, baseline=baseline)
    with pytest.raises(AssertionError, match="max error"):
        assert_close(torch.full((10,), 0.03, dtype=torch.float16), expected, baseline=baseline)
    with pytest.raises(ValueError, match="needs the same-precision torch baseline"):
        assert_close(torch.zeros(10, dtype=torch.bfloat16), expected)
    assert_close(torch.full((10,), 5e-6), expected)
