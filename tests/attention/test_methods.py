"""A method as a composition: plan() wires permuter -> selector, the dense fallback, build-time checks."""
from __future__ import annotations

import pytest
import torch

from src.attention import NATURAL_ORDER, BlockSparsePlan, DensePlan, KeyOrder, build_method
from src.attention.testing import structured_qkv
from src.registry import ConfigError
from tests.attention.configs import method_config


def test_plan_is_the_selector_on_the_permuters_order() -> None:
    method = build_method(method_config("pbs", backend="torch", estimate_backend="torch", block_size=32, segment_size=64))
    q, k, v = structured_qkv(1, 4, 2, 300, 32, seed=1)
    plan = method.plan(q, k, scale=0.2, layer_idx=3)
    order = method.permuter(q, k, scale=0.2)
    expected = method.selector(q, k, key_order=order, scale=0.2)
    assert isinstance(plan, BlockSparsePlan) and plan.key_order.segment_size == 64
    assert torch.equal(plan.key_order.key_perm, order.key_perm) and torch.equal(plan.block_mask, expected.block_mask)
    out = method.prefill(q, k, v, scale=0.2, layer_idx=3)
    assert torch.equal(out, plan.attend(q, k, v, scale=0.2, backend="torch"))
    assert method.stats.summary()["density_per_layer_head"][0] == [round(d, 4) for d in plan.density(300)[0].tolist()]


def test_below_min_seq_len_the_plan_is_dense_and_counted() -> None:
    method = build_method(method_config("meanpooling", backend="torch", min_seq_len=512))
    q, k, v = structured_qkv(1, 2, 1, 300, 16, seed=2)
    assert isinstance(method.plan(q, k, scale=0.25), DensePlan)
    method.prefill(q, k, v, scale=0.25, layer_idx=0)
    assert method.stats.dense_fallback_layers == 1


def test_key_order_keeps_permutation_and_segment_size_together() -> None:
    assert NATURAL_ORDER == KeyOrder() and KeyOrder().key_perm is None
    with pytest.raises(ValueError, match="needs both key_perm and segment_size or neither"):
        KeyOrder(segment_size=64)


def test_build_time_checks_name_the_bad_value() -> None:
    with pytest.raises(ConfigError, match="^unknown method.backend 'cuda'; allowed: auto, triton, flex, torch$"):
        build_method(method_config("pbs", backend="cuda"))
    with pytest.raises(ConfigError, match="^method.min_seq_len must be an int >= 0, got -1$"):
        build_method(method_config("pbs", min_seq_len=-1))
