"""Mean-pooling block selection against a per-row loop written from the paper's definition."""
from __future__ import annotations

import math

import pytest
import torch

from experiments.timing import capture_cuda_graph
from src.attention.components import SELECTORS
from src.attention.kernels import block_sparse_attention
from src.attention.permute.segmented_key import SegmentedKeyPermuter
from src.attention.key_order import KeyOrder
from src.attention.ops import pooled_permuted_keys
from src.attention.plan import BlockSparsePlan, DensePlan
from src.attention.select.dense import DenseSelector
from src.attention.select.meanpool import MeanPoolSelector
from src.attention.testing import random_qkv, random_segment_permutation
from src.registry import ConfigError

Q_HEADS, KV_HEADS, DIM, BLOCK = 4, 2, 16, 32
SCALE = DIM**-0.5


def random_qk(length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    q, k, _ = random_qkv(2, Q_HEADS, KV_HEADS, length, DIM, seed=seed, std=3.0)
    return q, k


def make_perm(kind: str, q: torch.Tensor, k: torch.Tensor, segment: int | None) -> torch.Tensor | None:
    """The key permutation of a case: None, identity ("none" with segments), random or PBS's."""
    if kind == "none":
        return None if segment is None else torch.arange(q.shape[2]).expand(2, Q_HEADS, -1)
    if kind == "random":
        assert segment is not None
        return random_segment_permutation(2, Q_HEADS, q.shape[2], segment, seed=1)
    return SegmentedKeyPermuter(segment_size=segment, num_last_queries=BLOCK, gqa_permutation=kind)(q, k, scale=SCALE).key_perm


def key_order_of(perm: torch.Tensor | None, segment: int | None) -> KeyOrder:
    return KeyOrder(perm, segment)


def segment_span(block: int, length: int, segment: int | None) -> tuple[int, int]:
    """Original positions a permuted key block may hold: its segment, or itself past the last full one."""
    start = block * BLOCK
    if segment is None or start >= (length // segment) * segment:
        return start, min(start + BLOCK, length)
    first = start - start % segment
    return first, first + segment


def brute_mask(
    q: torch.Tensor,
    k: torch.Tensor,
    perm: torch.Tensor | None,
    segment: int | None,
    threshold: float,
    *,
    force_sink: bool = True,
    force_diagonal: bool = True,
) -> torch.Tensor:
    """The selection rule, one (batch, head, query block) at a time, in float64."""
    batch, heads, length, _ = q.shape
    group = heads // k.shape[1]
    nb = math.ceil(length / BLOCK)
    spans = [segment_span(j, length, segment) for j in range(nb)]
    mask = torch.zeros(batch, heads, nb, nb, dtype=torch.bool)
    for b in range(batch):
        for h in range(heads):
            if perm is None:
                order = torch.arange(length)
            else:
                order = perm[b, h * perm.shape[1] // heads]
            keys = k[b, h // group].double()[order]
            pooled_k = [keys[j * BLOCK : (j + 1) * BLOCK].mean(0) for j in range(nb)]
            sink = int((order == 0).nonzero()) // BLOCK
            for i in range(nb):
                last_query = min((i + 1) * BLOCK, length) - 1
                own = spans[i]
                allowed = [j for j in range(nb) if spans[j][0] <= last_query]
                diagonal = [j for j in allowed if spans[j] == own]
                scored = [j for j in allowed if j not in diagonal] if force_diagonal else allowed
                chosen = set(diagonal) if force_diagonal else set()
                if force_sink and sink in allowed:
                    chosen.add(sink)
                if not scored:
                    mask[b, h, i, sorted(chosen)] = True
                    continue
                pooled_q = q[b, h, i * BLOCK : last_query + 1].double().mean(0)
                logits = torch.stack([pooled_q @ pooled_k[j] for j in scored]) * SCALE
                probs = logits.softmax(0)
                mass = 0.0
                for index in probs.argsort(descending=True).tolist():
                    if threshold < 1.0 and mass >= threshold:
                        break
                    chosen.add(scored[index])
                    mass += probs[index].item()
                mask[b, h, i, sorted(chosen)] = True
    return mask


def allowed_blocks(length: int, segment: int | None) -> torch.Tensor:
    nb = math.ceil(length / BLOCK)
    spans = [segment_span(j, length, segment) for j in range(nb)]
    return torch.tensor(
        [[spans[j][0] <= min((i + 1) * BLOCK, length) - 1 for j in range(nb)] for i in range(nb)]
    )


CASES = [
    (300, 64, "head"),
    (300, 64, "group"),
    (300, 64, "random"),
    (300, None, "none"),
    (300, 64, "none"),
    (256, 128, "head"),
    (200, 96, "group"),
    (40, 64, "head"),
]


@pytest.mark.parametrize(("length", "segment", "kind"), CASES)
@pytest.mark.parametrize("threshold", [0.3, 0.8])
def test_selection_matches_brute_force(length: int, segment: int | None, kind: str, threshold: float) -> None:
    q, k = random_qk(length)
    perm = make_perm(kind, q, k, segment)
    plan = MeanPoolSelector(block_size=BLOCK, threshold=threshold)(q, k, key_order=key_order_of(perm, segment), scale=SCALE)
    assert isinstance(plan, BlockSparsePlan)
    assert plan.key_order == key_order_of(perm, segment) and plan.block_size == BLOCK
    expected = brute_mask(q, k, perm, segment, threshold)
    assert torch.equal(plan.block_mask, expected)
    assert bool((plan.block_mask <= allowed_blocks(length, segment)).all())


@pytest.mark.parametrize(("force_sink", "force_diagonal"), [(False, True), (True, False), (False, False)])
def test_switching_off_forced_blocks_matches_brute_force(force_sink: bool, force_diagonal: bool) -> None:
    q, k = random_qk(300, seed=3)
    perm = make_perm("head", q, k, 64)
    selector = MeanPoolSelector(block_size=BLOCK, threshold=0.7, force_sink=force_sink, force_diagonal=force_diagonal)
    plan = selector(q, k, key_order=key_order_of(perm, 64), scale=SCALE)
    expected = brute_mask(q, k, perm, 64, 0.7, force_sink=force_sink, force_diagonal=force_diagonal)
    assert torch.equal(plan.block_mask, expected)


def test_sink_and_diagonal_segments_are_always_selected() -> None:
    length, segment = 300, 64
    q, k = random_qk(length, seed=5)
    perm = make_perm("head", q, k, segment)
    mask = MeanPoolSelector(block_size=BLOCK, threshold=0.1)(q, k, key_order=key_order_of(perm, segment), scale=SCALE).block_mask
    nb = mask.shape[-1]
    spans = [segment_span(j, length, segment) for j in range(nb)]
    for i in range(nb):
        for j in range(nb):
            if spans[i] == spans[j]:
                assert bool(mask[..., i, j].all())
    sink_block = (perm == 0).int().argmax(-1) // BLOCK
    assert bool(mask.gather(-1, sink_block[:, :, None, None].expand(-1, -1, nb, 1)).all())
    # the sink moved out of block 0 in some head, and a low threshold is sparse
    assert bool((sink_block > 0).any())
    assert mask.sum() < allowed_blocks(length, segment).sum() * 2 * Q_HEADS


def test_without_permutation_the_forced_blocks_are_first_and_current() -> None:
    q, k = random_qk(300, seed=6)
    mask = MeanPoolSelector(block_size=BLOCK, threshold=0.05)(q, k, key_order=key_order_of(None, None), scale=SCALE).block_mask
    assert bool(mask[..., 0].all()) and bool(mask.diagonal(dim1=-2, dim2=-1).all())
    assert not bool(mask.triu(1).any())


@pytest.mark.parametrize(("length", "segment", "kind"), CASES)
def test_threshold_one_selects_every_allowed_block(length: int, segment: int | None, kind: str) -> None:
    q, k = random_qk(length, seed=7)
    perm = make_perm(kind, q, k, segment)
    plan = MeanPoolSelector(block_size=BLOCK, threshold=1.0)(q, k, key_order=key_order_of(perm, segment), scale=SCALE)
    assert torch.equal(plan.block_mask, allowed_blocks(length, segment).expand(2, Q_HEADS, -1, -1))


def test_threshold_one_gives_dense_attention_through_the_kernel() -> None:
    q, k = random_qk(150, seed=8)
    v = torch.randn_like(k)
    perm = make_perm("head", q, k, 64)
    plan = MeanPoolSelector(block_size=BLOCK, threshold=1.0)(q, k, key_order=key_order_of(perm, 64), scale=SCALE)
    dense = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, scale=SCALE, enable_gqa=True)
    torch.testing.assert_close(plan.attend(q, k, v, scale=SCALE, backend="torch"), dense, rtol=1e-5, atol=1e-5)
    sparse = MeanPoolSelector(block_size=BLOCK, threshold=0.5)(q, k, key_order=key_order_of(perm, 64), scale=SCALE)
    out = block_sparse_attention(
        q, k, v, sparse.block_mask, block_size=BLOCK, key_perm=perm, segment_size=64, scale=SCALE, backend="torch"
    )
    assert torch.isfinite(out).all() and not torch.allclose(out, dense, atol=1e-3)


def test_density_is_selected_over_causal_blocks() -> None:
    length = 600
    q, k = random_qk(length, seed=9)
    perm = make_perm("group", q, k, 64)
    plan = MeanPoolSelector(block_size=BLOCK, threshold=0.3)(q, k, key_order=key_order_of(perm, 64), scale=SCALE)
    nb = math.ceil(length / BLOCK)
    expected = plan.block_mask.sum((-1, -2)).double() / (nb * (nb + 1) / 2)
    torch.testing.assert_close(plan.density(length).double(), expected)
    assert bool((plan.density(length) < 1).all())


@pytest.mark.parametrize("kind", ["head", "group", "random"])
def test_pooled_permuted_keys_equal_the_mean_of_gathered_rows(kind: str) -> None:
    length, segment = 300, 64
    q, k = random_qk(length, seed=10)
    perm = make_perm(kind, q, k, segment)
    pooled = pooled_permuted_keys(k, perm, block_size=BLOCK, segment_size=segment)
    nb = math.ceil(length / BLOCK)
    assert pooled.shape == (2, perm.shape[1], nb, DIM)
    k_heads = k.repeat_interleave(perm.shape[1] // KV_HEADS, dim=1)
    gathered = k_heads.gather(2, perm[..., None].expand(-1, -1, -1, DIM))
    expected = torch.stack([gathered[:, :, j * BLOCK : (j + 1) * BLOCK].mean(2) for j in range(nb)], dim=2)
    torch.testing.assert_close(pooled, expected, rtol=1e-5, atol=1e-6)


def test_dense_selector_plans_full_attention() -> None:
    q, k = random_qk(40)
    selector = SELECTORS.build("dense", {})
    assert isinstance(selector, DenseSelector)
    plan = selector(q, k, key_order=key_order_of(None, None), scale=SCALE)
    assert isinstance(plan, DensePlan) and plan.density(40) == 1.0


def test_registry_builds_meanpool_with_its_parameters() -> None:
    selector = SELECTORS.build("meanpool", {"block_size": 64, "threshold": 1, "force_sink": False})
    assert isinstance(selector, MeanPoolSelector)
    assert (selector.block_size, selector.threshold, selector.force_sink, selector.force_diagonal) == (64, 1.0, False, True)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"block_size": 0}, "block_size must be a positive int, got 0"),
        ({"block_size": 12.0}, "block_size must be a positive int, got 12.0"),
        ({"threshold": 0.0}, "threshold must be a number in \\(0, 1\\], got 0.0"),
        ({"threshold": 1.5}, "threshold must be a number in \\(0, 1\\], got 1.5"),
        ({"threshold": True}, "threshold must be a number in \\(0, 1\\], got True"),
        ({"force_sink": "yes"}, "force_sink must be true or false, got 'yes'"),
        ({"force_diagonal": 1}, "force_diagonal must be true or false, got 1"),
    ],
)
def test_config_errors_are_one_clear_line(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}$"):
        SELECTORS.build("meanpool", params)


def test_bad_call_inputs_fail_clearly() -> None:
    q, k = random_qk(100)
    selector = MeanPoolSelector(block_size=BLOCK)
    perm = random_segment_permutation(2, Q_HEADS, 100, 48, seed=1)
    with pytest.raises(ValueError, match="segment_size 48 must be a multiple of block_size 32"):
        selector(q, k, key_order=KeyOrder(perm, 48), scale=SCALE)
    with pytest.raises(ValueError, match=r"key_perm shape \(2, 3, 100\) must be \[2, 4 or 2, 100\]"):
        selector(q, k, key_order=KeyOrder(perm[:, :3], 48), scale=SCALE)
    with pytest.raises(ValueError, match="a key order needs both key_perm and segment_size or neither"):
        KeyOrder(perm, None)
    with pytest.raises(ValueError, match="does not fit q"):
        selector(q, k[:, :, :50], scale=SCALE)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_permute_and_select_capture_in_a_cuda_graph(backend: str) -> None:
    q, k = (t.cuda().half() for t in random_qk(1000))
    permuter = SegmentedKeyPermuter(segment_size=256, num_last_queries=128, backend=backend)
    selector = MeanPoolSelector(block_size=128, threshold=0.9, backend=backend)

    def step() -> torch.Tensor:
        return selector(q, k, key_order=permuter(q, k, scale=SCALE), scale=SCALE).block_mask

    eager = step()
    graph, captured = capture_cuda_graph(step)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(captured, eager)
