"""Mean-pooling block selection: PBS-Attn's selector and the MeanPooling baseline's (arXiv 2510.21270).

Each query block (original order) is summarised by its mean query, each key block (permuted
order) by its mean key; the softmax of their scaled dot products over the causal key blocks of
earlier segments estimates where a query block's attention mass lies, and the fewest blocks
reaching `threshold` of it are kept. Blocks of the query block's own segment are always computed
(without permutation that is just the current block), as is the block holding the first token.

Two rules differ between the authors' two code paths (github xinghaow99/pbs-attn), so both are
switches: PBS (src/pbs.py) leaves the own segment out of the estimate and forces it afterwards;
the MeanPooling baseline (baselines/MeanPooling.py) lets the current block take part in the
softmax and the cumulative threshold like any other block and also forces it, so the threshold
is reached earlier (score_diagonal). Both zero-pad the short last block and pool it over
block_size tokens (last_block_pooling "zero_padded"); the method configs set these to the
official values. A tail past the last full segment is pooled block by block in place in both
codes and here alike. Not reproduced: when that tail spans several blocks, the authors' PBS
code groups them as one more (short) segment (left out of each other's estimate and forced,
the block above the diagonal included, which its kernel masks token by token), while here each
tail block is a segment of its own (ops.causal_block_layout, shared by every kernel), so a
tail query block scores the earlier tail blocks; this touches only the last segment's rows.
"""
from __future__ import annotations

import torch

from src.attention.components import SELECTORS
from src.attention.key_order import NATURAL_ORDER, KeyOrder
from src.attention.kernels import ESTIMATE_BACKENDS, mean_pool_selection
from src.attention.plan import BlockSparsePlan
from src.attention.select.common import check_inputs
from src.checks import check_choice, check_flag, check_int, check_number
from src.registry import ConfigError

LAST_BLOCK_POOLINGS = ("mean", "zero_padded")


@SELECTORS.register("meanpool")
class MeanPoolSelector:
    """Mean-pooled block attention + cumulative threshold (PBS-Attn's selector; MeanPooling's).

    block_size: tokens per block (queries and keys).
    threshold: fraction in (0, 1] of each query block's estimated off-diagonal attention mass to
        keep; 1.0 keeps every causal block.
    force_sink: always compute the key block holding the first token (attention sink).
    force_diagonal: always compute every block of the query block's own segment.
    score_diagonal: whether the own segment's blocks take part in the softmax and the threshold
        like the rest; None (the class default, today's rule) scores them exactly when they are
        not forced. True with force_diagonal is the MeanPooling baseline's official rule
        (conf/method/meanpooling.yaml), False with it PBS's (the paper). False without
        force_diagonal is refused: a query block could compute no key at all.
    last_block_pooling: "mean" averages a short last block over the tokens it has (the class
        default); "zero_padded" over block_size, as the authors' code pads with zeros (the
        meanpooling and pbs configs' default).
    backend: how the estimate runs (kernels/pbs_estimate): "triton" (pooling and selection
        fused), "torch" (the reference) or "auto" (Triton for the CUDA inputs it supports).
    """

    def __init__(
        self,
        block_size: int = 128,
        threshold: float = 0.9,
        force_sink: bool = True,
        force_diagonal: bool = True,
        score_diagonal: bool | None = None,
        last_block_pooling: str = "mean",
        backend: str = "auto",
    ) -> None:
        self.block_size = check_int("block_size", block_size)
        self.threshold = check_number("threshold", threshold, 0.0, 1.0)
        self.force_sink = check_flag("force_sink", force_sink)
        self.force_diagonal = check_flag("force_diagonal", force_diagonal)
        self.score_diagonal = not self.force_diagonal if score_diagonal is None else check_flag("score_diagonal", score_diagonal)
        if not (self.score_diagonal or self.force_diagonal):
            raise ConfigError("score_diagonal false needs force_diagonal true (else a query block may keep no key)")
        self.last_block_pooling = check_choice("last_block_pooling", last_block_pooling, LAST_BLOCK_POOLINGS)
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
            threshold=self.threshold, force_sink=self.force_sink, force_diagonal=self.force_diagonal,
            score_diagonal=self.score_diagonal, zero_padded=self.last_block_pooling == "zero_padded", backend=self.backend,
        )
        return BlockSparsePlan(block_mask=selected, block_size=self.block_size, key_order=key_order)
