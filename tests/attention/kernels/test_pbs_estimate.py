"""PBS-Attn's Triton estimation (permutation, pooling, selection) against the torch references.

On CPU the kernels run in the Triton interpreter (tests/conftest.py), so shapes are small.
"""
from __future__ import annotations

import pytest
import torch

from src.attention.kernels.pbs_estimate import (
    last_query_attention,
    pool_blocks_triton,
    segment_permutation_triton,
    threshold_select_triton,
)
from src.attention.key_order import KeyOrder
from src.attention.ops import mean_pool_blocks, pooled_permuted_keys, sort_within_segments
from src.attention.permute.segmented_key import SegmentedKeyPermuter
from src.attention.select.meanpool import MeanPoolSelector
from src.attention.testing import assert_close, random_qkv
from src.registry import ConfigError

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")

# batch, q heads, kv heads, length, head dim, segment, last queries, per kv group
PERMUTATION_CASES = [
    (2, 4, 2, 300, 16, 64, 32, False),
    (1, 4, 2, 257, 32, 128, 32, True),
    (2, 2, 2, 100, 16, 64, 128, False),
    (1, 4, 1, 129, 16, 32, 16, True),
    (1, 4, 4, 50, 64, 64, 16, False),
]


def random_qk(batch: int, q_heads: int, kv_heads: int, length: int, dim: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    q, k, _ = random_qkv(batch, q_heads, kv_heads, length, dim, seed=seed, device=DEVICE, std=2.0)
    return q, k


@pytest.mark.parametrize("batch,q_heads,kv_heads,length,dim,segment,last,per_group", PERMUTATION_CASES)
def test_permutation_kernel_matches_the_torch_scores_and_order(
    batch: int, q_heads: int, kv_heads: int, length: int, dim: int, segment: int, last: int, per_group: bool
) -> None:
    q, k = random_qk(batch, q_heads, kv_heads, length, dim)
    scale = dim**-0.5
    key_perm, scores = segment_permutation_triton(
        q, k, segment_size=segment, num_last_queries=last, scale=scale, per_group=per_group
    )
    expected = last_query_attention(q, k, num_last_queries=last, scale=scale)
    if per_group:
        expected = expected.view(batch, kv_heads, -1, length).mean(2)
    assert_close(scores, expected, rtol=1e-4, atol=1e-6)
    assert key_perm.dtype == torch.int64 and key_perm.shape == expected.shape
    assert torch.equal(key_perm, sort_within_segments(scores, segment))
    assert torch.equal(key_perm, sort_within_segments(expected, segment))


def test_permuter_backends_agree_and_tail_stays_in_place() -> None:
    q, k = random_qk(2, 4, 2, 333, 16, seed=3)
    for gqa in ("head", "group"):
        permuters = [SegmentedKeyPermuter(segment_size=64, num_last_queries=32, gqa_permutation=gqa, backend=b) for b in ("triton", "torch")]
        triton_perm, torch_perm = (p(q, k, scale=0.25).key_perm for p in permuters)
        assert torch.equal(triton_perm, torch_perm)
        assert torch.equal(triton_perm[..., 320:], torch.arange(320, 333, device=DEVICE).expand(2, triton_perm.shape[1], -1))


# The Triton interpreter mis-evaluates bf16 dots (as for the other kernels' tests): bf16 on GPU only.
@pytest.mark.parametrize("dtype", [torch.float16, pytest.param(torch.bfloat16, marks=pytest.mark.gpu)])
def test_half_precision_permutation_is_valid_and_close_to_float32_scores(dtype: torch.dtype) -> None:
    q, k = (t.to(dtype) for t in random_qk(1, 4, 2, 200, 32, seed=5))
    key_perm, scores = segment_permutation_triton(q, k, segment_size=64, num_last_queries=32, scale=32**-0.5, per_group=False)
    expected = last_query_attention(q.float(), k.float(), num_last_queries=32, scale=32**-0.5)
    assert scores.dtype == torch.float32
    assert_close(scores, expected, baseline=last_query_attention(q, k, num_last_queries=32, scale=32**-0.5))
    segments = key_perm[..., :192].view(1, 4, 3, 64)
    starts = torch.arange(0, 192, 64, device=DEVICE)[:, None]
    assert torch.equal(segments.sort(-1).values, (torch.arange(64, device=DEVICE) + starts).expand_as(segments))


@pytest.mark.parametrize("perm_heads", [None, "q", "kv"])
def test_pooled_blocks_equal_the_torch_pooling(perm_heads: str | None) -> None:
    q, k = random_qk(2, 4, 2, 150, 16, seed=7)
    if perm_heads is None:
        assert_close(pool_blocks_triton(k, None, block_size=32), mean_pool_blocks(k, 32))
        assert_close(pool_blocks_triton(q, None, block_size=32, scale=0.5), mean_pool_blocks(q, 32) * 0.5)
        return
    permuter = SegmentedKeyPermuter(
        segment_size=64, num_last_queries=32, gqa_permutation="head" if perm_heads == "q" else "group", backend="torch"
    )
    key_perm = permuter(q, k, scale=0.25).key_perm
    expected = pooled_permuted_keys(k, key_perm, block_size=32, segment_size=64)
    assert_close(pool_blocks_triton(k, key_perm, block_size=32), expected)


# length, segment (None: no permutation), block, permutation per, threshold, force sink, force diagonal
SELECTION_CASES = [
    (300, 64, 32, "head", 0.9, True, True),
    (257, 128, 32, "group", 0.5, True, True),
    (100, 64, 16, "head", 0.95, False, True),
    (129, 32, 16, "group", 0.8, True, False),
    (200, None, 32, None, 0.9, True, True),
    (40, 64, 16, "head", 0.9, True, True),
]


@pytest.mark.parametrize("length,segment,block,gqa,threshold,force_sink,force_diagonal", SELECTION_CASES)
def test_selection_kernel_matches_the_torch_selection(
    length: int, segment: int | None, block: int, gqa: str | None, threshold: float, force_sink: bool, force_diagonal: bool
) -> None:
    q, k = (t * 1.5 for t in random_qk(2, 4, 2, length, 16, seed=length))
    scale = 0.25
    key_order = KeyOrder()
    if segment is not None:
        permuter = SegmentedKeyPermuter(segment_size=segment, num_last_queries=block, gqa_permutation=gqa, backend="torch")
        key_order = permuter(q, k, scale=scale)
    masks = [
        MeanPoolSelector(
            block_size=block, threshold=threshold, force_sink=force_sink, force_diagonal=force_diagonal, backend=backend
        )(q, k, key_order=key_order, scale=scale).block_mask
        for backend in ("triton", "torch")
    ]
    assert masks[0].dtype == torch.bool
    assert torch.equal(masks[0], masks[1])
    assert 0 < masks[0].float().mean() < 1 or length < 2 * block


def test_equal_probabilities_keep_the_lowest_blocks_first() -> None:
    nb = 9
    logits = torch.zeros(1, 1, nb, nb, device=DEVICE)
    mask = threshold_select_triton(
        logits, None, block_size=16, segment_size=None, length=nb * 16, threshold=0.5,
        force_sink=False, force_diagonal=True,
    )
    expected = torch.zeros(nb, nb, dtype=torch.bool)
    for row in range(nb):
        expected[row, : (row + 1) // 2] = True
        expected[row, row] = True
    assert torch.equal(mask[0, 0].cpu(), expected)


def test_auto_backend_runs_torch_on_cpu_and_triton_refuses_what_it_cannot_run() -> None:
    q, k = random_qk(1, 2, 2, 64, 16)
    permuter = SegmentedKeyPermuter(segment_size=32, num_last_queries=256, backend="triton")
    if not q.is_cuda:
        auto = SegmentedKeyPermuter(segment_size=32, num_last_queries=16, backend="auto")
        reference = SegmentedKeyPermuter(segment_size=32, num_last_queries=16, backend="torch")
        assert torch.equal(auto(q, k, scale=0.25).key_perm, reference(q, k, scale=0.25).key_perm)
    with pytest.raises(ValueError, match=r"the triton key permutation cannot run: num_last_queries 256 \(at most 128\)"):
        permuter(q, k, scale=0.25)
    with pytest.raises(ConfigError, match="unknown permuter backend 'cuda'; allowed: auto, triton, torch"):
        SegmentedKeyPermuter(backend="cuda")
    with pytest.raises(ConfigError, match="unknown selector backend 'fast'; allowed: auto, triton, torch"):
        MeanPoolSelector(backend="fast")


@pytest.mark.gpu
def test_auto_backend_on_cuda_equals_the_torch_reference_at_realistic_size() -> None:
    q, k = random_qk(1, 8, 2, 4000, 128, seed=11)
    scale = 128**-0.5
    key_perm, scores = segment_permutation_triton(q, k, segment_size=256, num_last_queries=128, scale=scale, per_group=False)
    # Keys with near-zero attention may swap places between implementations; the scores may not.
    assert_close(scores, last_query_attention(q, k, num_last_queries=128, scale=scale), rtol=1e-3, atol=1e-7)
    assert torch.equal(key_perm, sort_within_segments(scores, 256))
    assert torch.equal(SegmentedKeyPermuter(backend="auto")(q, k, scale=scale).key_perm, key_perm)
    masks = [
        MeanPoolSelector(backend=b)(q, k, key_order=KeyOrder(key_perm, 256), scale=scale).block_mask
        for b in ("auto", "torch")
    ]
    assert torch.equal(masks[0], masks[1])


@pytest.mark.parametrize(("segment", "score_diagonal", "pooling"), [(None, True, "zero_padded"), (64, False, "zero_padded")])
def test_selection_kernel_follows_the_diagonal_and_pooling_switches(segment: int | None, score_diagonal: bool, pooling: str) -> None:
    """MeanPooling's official rule (diagonal scored and forced) and the zero-padded last block run
    the same on the Triton estimate as on the torch one."""
    q, k = random_qk(2, 4, 2, 150, 16, seed=9)
    key_order = KeyOrder()
    if segment is not None:
        key_order = SegmentedKeyPermuter(segment_size=segment, num_last_queries=32, backend="torch")(q, k, scale=0.25)
    masks = [
        MeanPoolSelector(block_size=32, threshold=0.8, score_diagonal=score_diagonal, last_block_pooling=pooling, backend=backend)(
            q, k, key_order=key_order, scale=0.25
        ).block_mask
        for backend in ("triton", "torch")
    ]
    assert torch.equal(masks[0], masks[1])
    if pooling == "zero_padded":
        assert_close(pool_blocks_triton(k, None, block_size=32, zero_padded=True), mean_pool_blocks(k, 32, zero_padded=True))
        assert not torch.allclose(mean_pool_blocks(k, 32, zero_padded=True)[..., -1, :], mean_pool_blocks(k, 32)[..., -1, :])
