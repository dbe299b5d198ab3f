"""README's "Add a method", followed for a trivial selector: each query block keeps its `top_k`
causal key blocks of highest pooled q . k (plus its own). Adding it touches exactly three files:

    its file   the class below (in a real method: src/attention/select/top_k.py)
    its yaml   SELECTOR_YAML below (conf/method/selector/top_k.yaml; here written to a config
               directory Hydra searches too), picked by `method/selector=top_k` on the command
               line or by a method yaml's defaults list
    its test   this file

No registry, method, kernel or loop code changes: the selector registers itself by name, returns
a Plan, and the method composes it with any permuter and kernel backend.
"""
from __future__ import annotations

from pathlib import Path

import torch

from src.attention import SELECTORS, BlockSparsePlan, build_method
from src.attention.key_order import NATURAL_ORDER, KeyOrder
from src.attention.ops import causal_block_layout, grouped_logits, mean_pool_blocks
from src.attention.select.common import check_inputs
from src.attention.testing import assert_close, block_token_masks, masked_attention, structured_qkv
from src.checks import check_int
from tests.attention.configs import method_config

SELECTOR_YAML = """
name: example_top_k
block_size: ${..block_size}
top_k: 2
"""


@SELECTORS.register("example_top_k")
class TopKSelector:
    """Each query block's own blocks plus its `top_k` other causal key blocks by pooled q . k."""

    def __init__(self, block_size: int = 128, top_k: int = 4) -> None:
        self.block_size = check_int("block_size", block_size)
        self.top_k = check_int("top_k", top_k)

    def __call__(
        self, q: torch.Tensor, k: torch.Tensor, *, key_order: KeyOrder = NATURAL_ORDER, scale: float, layer_idx: int | None = None
    ) -> BlockSparsePlan:
        check_inputs(q, k, key_order, self.block_size)
        if key_order.key_perm is not None:
            raise ValueError("example_top_k scores keys in their natural order only")
        allowed, diagonal = causal_block_layout(q.shape[2], self.block_size, None, q.device)
        scores = grouped_logits(mean_pool_blocks(q, self.block_size), mean_pool_blocks(k, self.block_size))
        scores = scores.masked_fill(~allowed | diagonal, float("-inf"))
        top = scores.topk(min(self.top_k, scores.shape[-1]), dim=-1).indices
        chosen = torch.zeros_like(scores, dtype=torch.bool).scatter(-1, top, True) & allowed & ~diagonal
        return BlockSparsePlan(block_mask=(chosen | diagonal).contiguous(), block_size=self.block_size)


def test_a_new_selector_runs_as_a_method_from_its_yaml(tmp_path: Path) -> None:
    (tmp_path / "method" / "selector").mkdir(parents=True)
    (tmp_path / "method" / "selector" / "example_top_k.yaml").write_text(SELECTOR_YAML)
    overrides = ("method/selector=example_top_k", f"hydra.searchpath=[file://{tmp_path}]")
    method = build_method(method_config("meanpooling", *overrides, backend="torch", block_size=32))
    assert isinstance(method.selector, TopKSelector) and (method.selector.block_size, method.selector.top_k) == (32, 2)

    q, k, v = structured_qkv(1, 4, 2, 300, 32, seed=5)
    plan = method.plan(q, k, scale=32**-0.5)
    rows = plan.block_mask.sum(-1)
    assert torch.equal(rows[0, 0], torch.tensor([1, 2, 3, 3, 3, 3, 3, 3, 3, 3]))  # own block + up to 2 others
    out = plan.attend(q, k, v, scale=32**-0.5, backend=method.backend)
    allowed = block_token_masks(plan.block_mask, None, block_size=32, length=300)
    assert_close(out, masked_attention(q, k, v, allowed, scale=32**-0.5))
