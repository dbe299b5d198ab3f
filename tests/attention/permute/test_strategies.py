"""The paper's other permutation strategies as registered permuters: valid orders, reproducible
draws, clear config errors, and a whole method running on each from its yaml."""
from __future__ import annotations

import pytest
import torch

from src.attention import PERMUTERS, build_method
from src.attention.permute.greedy import greedy_alignment
from src.attention.testing import structured_qkv
from src.registry import ConfigError
from tests.attention.configs import method_config

LENGTH, SEGMENT, BLOCK = 200, 64, 32


def assert_within_segments(perm: torch.Tensor, segment: int) -> None:
    """perm [B, H, L] moves tokens only inside full segments; the tail stays in place."""
    length = perm.shape[-1]
    full = (length // segment) * segment
    assert torch.equal(perm.sort(-1).values, torch.arange(length).expand_as(perm))
    assert torch.equal(perm[..., :full] // segment, (torch.arange(full) // segment).expand(*perm.shape[:-1], -1))
    assert torch.equal(perm[..., full:], torch.arange(full, length).expand(*perm.shape[:-1], -1))


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("random", {"segment_size": SEGMENT, "seed": 3}),
        ("greedy", {"segment_size": SEGMENT, "block_size": BLOCK}),
        ("random_query", {"segment_size": SEGMENT, "num_queries": BLOCK, "seed": 3}),
        ("average_query", {"segment_size": SEGMENT}),
    ],
)
def test_each_gives_a_per_head_order_inside_segments_the_same_on_every_call(name: str, params: dict) -> None:
    q, k, _ = structured_qkv(2, 4, 2, LENGTH, 16, seed=1)
    permuter = PERMUTERS.build(name, params)
    order = permuter(q, k, scale=0.25)
    assert permuter.segment_size == SEGMENT and order.segment_size == SEGMENT
    assert order.key_perm.shape == (2, 4, LENGTH) and order.key_perm.dtype == torch.int64
    assert_within_segments(order.key_perm, SEGMENT)
    assert not torch.equal(order.key_perm, torch.arange(LENGTH).expand_as(order.key_perm))
    assert torch.equal(permuter(q, k, scale=0.25).key_perm, order.key_perm)


def test_greedy_fills_a_block_with_the_keys_closest_to_its_query_centroid() -> None:
    q, k, _ = structured_qkv(1, 2, 1, 128, 16, seed=2)
    perm = greedy_alignment(q, k, BLOCK, SEGMENT)
    keys = k[0, 0, SEGMENT : 2 * SEGMENT]
    centroid = q[0, 1, SEGMENT : SEGMENT + BLOCK].mean(0)
    closest = torch.nn.functional.cosine_similarity(keys, centroid[None], dim=-1).topk(BLOCK).indices
    assert set((perm[0, 1, SEGMENT : SEGMENT + BLOCK] - SEGMENT).tolist()) == set(closest.tolist())


def test_config_errors_are_one_line() -> None:
    with pytest.raises(ConfigError, match="^segment_size 96 must be a multiple of block_size 64$"):
        PERMUTERS.build("greedy", {"segment_size": 96, "block_size": 64})
    with pytest.raises(ConfigError, match="^seed must be an int >= 0, got -1$"):
        PERMUTERS.build("random", {"seed": -1})
    with pytest.raises(ConfigError, match="got unknown parameter"):
        PERMUTERS.build("average_query", {"num_queries": 4})


@pytest.mark.parametrize("permuter", ["random", "greedy", "random_query", "average_query"])
def test_a_method_runs_on_each_through_its_config_group(permuter: str) -> None:
    """`python -m src.run method=pbs method/permuter=<name>`: PBS's selector on that order."""
    cfg = method_config("pbs", f"method/permuter={permuter}", backend="torch", estimate_backend="torch", block_size=32, segment_size=64)
    method = build_method(cfg)
    q, k, v = structured_qkv(1, 4, 2, LENGTH, 32, seed=4)
    plan = method.plan(q, k, scale=32**-0.5)
    assert plan.key_order.segment_size == 64
    assert_within_segments(plan.key_order.key_perm, 64)
    out = plan.attend(q, k, v, scale=32**-0.5, backend=method.backend)
    assert out.shape == q.shape and torch.isfinite(out).all()


def test_an_unpermuted_method_takes_one_by_name() -> None:
    """`method=meanpooling method.permuter.name=random`: segment size from the permuter's default."""
    method = build_method(method_config("meanpooling", **{"backend": "torch", "permuter.name": "random"}))
    assert method.permuter.segment_size == 256 and method.selector.block_size == 128
