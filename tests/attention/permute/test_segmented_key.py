"""PBS-Attn's segmented key permutation against a brute-force L x L reading of the paper (Eq. 7-8)."""
from __future__ import annotations

import pytest
import torch

from experiments.timing import capture_cuda_graph
from src.attention.components import PERMUTERS
from src.attention.kernels.pbs_estimate import last_query_attention
from src.attention.key_order import KeyOrder
from src.attention.permute.identity import IdentityPermuter
from src.attention.permute.segmented_key import SegmentedKeyPermuter
from src.registry import ConfigError

LENGTH, SEGMENT, LAST, Q_HEADS, KV_HEADS, DIM = 300, 64, 32, 4, 2, 16
SCALE = DIM**-0.5


def random_qk(length: int = LENGTH, dtype: torch.dtype = torch.float64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(2, Q_HEADS, length, DIM, generator=generator, dtype=dtype) * 2
    k = torch.randn(2, KV_HEADS, length, DIM, generator=generator, dtype=dtype) * 2
    return q, k


def brute_scores(q: torch.Tensor, k: torch.Tensor, last: int) -> torch.Tensor:
    """Mean over the last `last` queries of their causal softmax attention rows, from the full L x L map."""
    length = q.shape[2]
    k_full = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    logits = q @ k_full.transpose(-1, -2) * SCALE
    future = torch.ones(length, length, dtype=torch.bool).triu(1)
    attention = logits.masked_fill(future, float("-inf")).softmax(-1)
    return attention[:, :, length - min(last, length) :].mean(2)


def brute_segment_sort(scores: torch.Tensor, segment: int) -> torch.Tensor:
    """Per (batch, head), each full segment's original positions by descending score; tail in place."""
    length = scores.shape[-1]
    perm = torch.empty(scores.shape, dtype=torch.int64)
    for b in range(scores.shape[0]):
        for h in range(scores.shape[1]):
            order: list[int] = []
            for start in range(0, length, segment):
                positions = list(range(start, min(start + segment, length)))
                if start + segment <= length:
                    positions.sort(key=lambda j: -scores[b, h, j].item())
                order += positions
            perm[b, h] = torch.tensor(order)
    return perm


def test_scores_match_brute_force_attention() -> None:
    q, k = random_qk()
    ours = last_query_attention(q, k, num_last_queries=LAST, scale=SCALE)
    torch.testing.assert_close(ours, brute_scores(q, k, LAST), rtol=1e-10, atol=1e-12)
    # every last query's causal row sums to one, so the mean row does too
    torch.testing.assert_close(ours.sum(-1), torch.ones(2, Q_HEADS, dtype=torch.float64))


def test_scores_mask_future_keys_of_the_last_queries() -> None:
    q, k = random_qk()
    ours = last_query_attention(q, k, num_last_queries=LAST, scale=SCALE)
    # key L-1 is seen only by query L-1, so its score is that query's weight on it / LAST
    last_row = (q[:, :, -1:] @ k.repeat_interleave(2, 1).transpose(-1, -2) * SCALE).softmax(-1)[:, :, 0]
    torch.testing.assert_close(ours[..., -1], last_row[..., -1] / LAST)


@pytest.mark.parametrize("length", [300, 256, 40, 64])
def test_permutation_is_valid_inside_each_segment_and_tail_stays(length: int) -> None:
    q, k = random_qk(length)
    order = SegmentedKeyPermuter(segment_size=SEGMENT, num_last_queries=LAST)(q, k, scale=SCALE)
    perm = order.key_perm
    assert order.segment_size == SEGMENT and perm.dtype == torch.int64 and perm.shape == (2, Q_HEADS, length)
    full = (length // SEGMENT) * SEGMENT
    segments = perm[..., :full].view(2, Q_HEADS, -1, SEGMENT)
    starts = torch.arange(0, full, SEGMENT).view(1, 1, -1, 1)
    expected = (torch.arange(SEGMENT) + starts).expand_as(segments)
    assert torch.equal(segments.sort(-1).values, expected)
    assert torch.equal(perm[..., full:], torch.arange(full, length).expand(2, Q_HEADS, -1))


def test_head_permutation_sorts_each_segment_by_descending_brute_force_score() -> None:
    q, k = random_qk()
    perm = SegmentedKeyPermuter(segment_size=SEGMENT, num_last_queries=LAST)(q, k, scale=SCALE).key_perm
    scores = brute_scores(q, k, LAST)
    assert torch.equal(perm, brute_segment_sort(scores, SEGMENT))
    full = (LENGTH // SEGMENT) * SEGMENT
    ordered = scores.gather(-1, perm)[..., :full].view(2, Q_HEADS, -1, SEGMENT)
    assert bool((ordered[..., :-1] >= ordered[..., 1:]).all())
    # different heads of one kv group get different orders
    assert not torch.equal(perm[:, 0], perm[:, 1])


def test_group_permutation_is_shared_by_a_kv_group_and_uses_its_mean_score() -> None:
    q, k = random_qk()
    permuter = SegmentedKeyPermuter(segment_size=SEGMENT, num_last_queries=LAST, gqa_permutation="group")
    perm = permuter(q, k, scale=SCALE).key_perm
    assert perm.shape == (2, KV_HEADS, LENGTH)
    group_scores = brute_scores(q, k, LAST).view(2, KV_HEADS, Q_HEADS // KV_HEADS, LENGTH).mean(2)
    assert torch.equal(perm, brute_segment_sort(group_scores, SEGMENT))


def test_chunking_over_kv_heads_does_not_change_scores() -> None:
    q, k = random_qk()
    whole = last_query_attention(q, k, num_last_queries=LAST, scale=SCALE)
    one_head_at_a_time = last_query_attention(q, k, num_last_queries=LAST, scale=SCALE, chunk_elements=1)
    assert torch.equal(whole, one_head_at_a_time)


def test_more_last_queries_than_tokens_uses_every_query() -> None:
    q, k = random_qk(length=50)
    ours = last_query_attention(q, k, num_last_queries=128, scale=SCALE)
    torch.testing.assert_close(ours, brute_scores(q, k, 50))


def test_half_precision_inputs_give_a_float32_valid_permutation() -> None:
    q, k = random_qk(dtype=torch.bfloat16)
    scores = last_query_attention(q, k, num_last_queries=LAST, scale=SCALE)
    assert scores.dtype == torch.float32
    torch.testing.assert_close(scores, brute_scores(q.double(), k.double(), LAST).float(), atol=2e-3, rtol=0.05)


def test_identity_permuter_and_registry() -> None:
    q, k = random_qk(length=20)
    identity = PERMUTERS.build("identity", {})
    assert isinstance(identity, IdentityPermuter)
    assert identity.segment_size is None and identity(q, k, scale=SCALE) == KeyOrder()
    built = PERMUTERS.build("segmented_key", {"segment_size": 128, "num_last_queries": 64, "gqa_permutation": "group"})
    assert (built.segment_size, built.num_last_queries, built.gqa_permutation) == (128, 64, "group")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"segment_size": 0}, "segment_size must be a positive int, got 0"),
        ({"segment_size": 25.5}, "segment_size must be a positive int, got 25.5"),
        ({"num_last_queries": -1}, "num_last_queries must be a positive int, got -1"),
        ({"gqa_permutation": "kv"}, "unknown gqa_permutation 'kv'; allowed: head, group"),
        ({"target": "query"}, "permutation target 'query' is not implemented; allowed: key"),
        ({"target": "key+query"}, "permutation target 'key\\+query' is not implemented; allowed: key"),
    ],
)
def test_config_errors_are_one_clear_line(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}$"):
        PERMUTERS.build("segmented_key", params)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_permuter_captures_in_a_cuda_graph(backend: str) -> None:
    q, k = (t.cuda().half() for t in random_qk(length=1000, dtype=torch.float32))
    permuter = SegmentedKeyPermuter(segment_size=256, num_last_queries=128, backend=backend)
    eager = permuter(q, k, scale=SCALE).key_perm
    graph, captured = capture_cuda_graph(lambda: permuter(q, k, scale=SCALE).key_perm)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(captured, eager)
