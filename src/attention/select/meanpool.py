"""Mean-pooling block selection: PBS-Attn's selector and the MeanPooling baseline's (arXiv 2510.21270).

Each query block (original order) is summarised by its mean query, each key block (permuted
order) by its mean key; the softmax of their scaled dot products over the causal key blocks of
earlier segments estimates where a query block's attention mass lies, and the fewest blocks
reaching `threshold` of it are kept. Blocks of the query block's own segment are always computed
(without permutation that is just the current block), as is the block holding the first token.
"""
from __future__ import annotations

import torch

from src.attention.components import SELECTORS
from src.attention.key_order import NATURAL_ORDER, KeyOrder
from src.attention.kernels import ESTIMATE_BACKENDS, mean_pool_selection
from src.attention.plan import BlockSparsePlan
from src.attention.select.common import check_inputs
from src.checks import check_choice, check_flag, check_int, check_number


@SELECTORS.register("meanpool")
class MeanPoolSelector:
    """Mean-pooled block attention + cumulative threshold (PBS-Attn's selector; MeanPooling's).

    block_size: tokens per block (queries and keys).
    threshold: fraction in (0, 1] of each query block's estimated off-diagonal attention mass to
        keep; 1.0 keeps every causal block.
    force_sink: always compute the key block holding the first token (attention sink).
    force_diagonal: always compute every block of the query block's own segment and leave them
        out of the estimate (the paper); False lets them compete in the estimate like the rest.
    backend: how the estimate runs (kernels/pbs_estimate): "triton" (pooling and selection
        fused), "torch" (the reference) or "auto" (Triton for the CUDA inputs it supports).
    """

    def __init__(
        self,
        block_size: int = 128,
        threshold: float = 0.9,
        force_sink: bool = True,
        force_diagonal: bool = True,
        backend: str = "auto",
    ) -> None:
        self.block_size = check_int("block_size", block_size)
        self.threshold = check_number("threshold", threshold, 0.0, 1.0)
        self.force_sink = check_flag("force_sink", force_sink)
        self.force_diagonal = check_flag("force_diagonal", force_diagonal)
        self.backend = check_choice("selector backend", backend, ESTIMATE_BACKENDS)

    def __call__(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        *,
        key_order: KeyOrder = NATURAL_ORDER,
        scale: float,
        layer_idx: int | None = None,
    ) -> BlockSparsePlan:
        """The block plan for q [B, Hq, L, D] and k [B, Hkv, L, D] (original order)."""
        check_inputs(q, k, key_order, self.block_size)
        selected = mean_pool_selection(
            q, k, key_order.key_perm, block_size=self.block_size, segment_size=key_order.segment_size, scale=scale,
            threshold=self.threshold, force_sink=self.force_sink, force_diagonal=self.force_diagonal, backend=self.backend,
        )
        return BlockSparsePlan(block_mask=selected, block_size=self.block_size, key_order=key_order)
