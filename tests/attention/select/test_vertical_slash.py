"""MInference's selector (vertical columns and slash bands from the last queries) against a
reading of its estimate with explicit loops; per-head pattern files: test_minference_patterns.py."""
from __future__ import annotations

import pytest
import torch

from src.attention.components import SELECTORS
from src.attention.key_order import KeyOrder
from src.attention.plan import DensePlan, VerticalSlashPlan
from src.attention.select.vertical_slash import VerticalSlashSelector
from src.attention.testing import assert_close, masked_attention, random_qkv, vertical_slash_token_masks
from src.registry import ConfigError


def _minference_reference(q, k, *, last_q, vertical_size, slash_size, scale):
    """MInference's vertical_and_slash_kernel estimate per head, with explicit diagonal loops."""
    batch, q_heads, length, _ = q.shape
    group = q_heads // k.shape[1]
    n = min(last_q, length)
    columns, offsets = {}, {}
    for b in range(batch):
        for h in range(q_heads):
            logits = (q[b, h, -n:] * scale) @ k[b, h // group].T
            for r in range(n):
                logits[r, length - n + r + 1 :] = float("-inf")
            probs = torch.softmax(logits, -1)
            vertical = probs.sum(0)
            vertical[:30] = float("inf")
            slash = torch.zeros(length)
            for r in range(n):
                for key in range(length - n + r + 1):
                    slash[length - n + r - key] += probs[r, key]
            slash[:100] = float("inf")
            v_count = min(length, max(vertical_size, 30))
            s_count = min(length, max(slash_size, 50))
            columns[b, h] = set(vertical.topk(v_count).indices.tolist())
            offsets[b, h] = set(slash.topk(s_count).indices.tolist())
    return columns, offsets


def test_selector_matches_minference_estimate():
    q, k, _ = random_qkv(2, 4, 2, 260, 16, seed=7)
    plan = VerticalSlashSelector(last_q=64, vertical_size=40, slash_size=120)(q, k, scale=0.25)
    columns, offsets = _minference_reference(q, k, last_q=64, vertical_size=40, slash_size=120, scale=0.25)
    assert isinstance(plan, VerticalSlashPlan)
    assert plan.vertical_indices.shape == (2, 4, 40) and plan.slash_offsets.shape == (2, 4, 120)
    for (b, h), expected in columns.items():
        assert set(plan.vertical_indices[b, h].tolist()) == expected
        assert set(plan.slash_offsets[b, h].tolist()) == offsets[b, h]
    assert set(range(30)) <= columns[0, 0] and set(range(100)) <= offsets[0, 0]


def test_selector_with_full_budgets_is_dense_attention():
    q, k, v = random_qkv(1, 2, 1, 150, 64, seed=8)
    plan = SELECTORS.build("vertical_slash", {"vertical_size": 200, "slash_size": 200})(
        q, k, scale=0.125
    )
    dense = DensePlan().attend(q, k, v, scale=0.125, backend="torch")
    torch.testing.assert_close(plan.attend(q, k, v, scale=0.125, backend="torch"), dense, atol=1e-5, rtol=1e-5)


def test_selector_config_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="vertical_size must be an int >= 0"):
        VerticalSlashSelector(vertical_size=-1)
    with pytest.raises(ConfigError, match="does not exist"):
        VerticalSlashSelector(pattern_config=str(tmp_path / "missing.json"))
    q, k, _ = random_qkv(1, 2, 1, 40, 16)
    with pytest.raises(ConfigError, match="use permuter 'identity'"):
        VerticalSlashSelector()(q, k, key_order=KeyOrder(torch.arange(40).expand(1, 2, -1), 32), scale=0.25)


def test_minference_method_refuses_the_flex_backend():
    """Its plans run on the vertical-slash op, which has no FlexAttention path: refused at build time."""
    from omegaconf import OmegaConf

    from src.attention import build_method

    cfg = OmegaConf.create({"name": "minference", "backend": "flex", "min_seq_len": 0, "permuter": {"name": "identity"},
                            "selector": {"name": "vertical_slash"}})
    with pytest.raises(ConfigError, match="method.backend 'flex' cannot run the vertical-slash attention"):
        build_method(cfg)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_selected_plan_runs_on_cuda(dtype):
    q, k, v = (t.cuda() for t in random_qkv(1, 8, 2, 2047, 128, dtype=dtype, seed=11))
    plan = VerticalSlashSelector(vertical_size=100, slash_size=300)(q, k, scale=128**-0.5)
    got = plan.attend(q, k, v, scale=128**-0.5, backend="triton")
    allowed = vertical_slash_token_masks(plan.vertical_indices, plan.slash_offsets, 2047)
    expected = masked_attention(q.float(), k.float(), v.float(), allowed, scale=128**-0.5)
    assert_close(got, expected, baseline=masked_attention(q, k, v, allowed, scale=128**-0.5))
    assert 0.0 < plan.density(2047).max().item() < 0.5
