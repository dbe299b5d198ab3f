"""Sparse-attention plans: what a selector decides, in a form a kernel backend can execute.

A selector never runs attention itself; it returns a plan. Each plan type knows which kernel
executes it and how to count what it computes, so methods compose without branching on names.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from src.attention.kernels import block_sparse_attention, vertical_slash_attention, vertical_slash_density
from src.attention.key_order import NATURAL_ORDER, KeyOrder
from src.attention.ops import causal_block_count


@dataclass
class BlockSparsePlan:
    """Key blocks to compute per query block, in the (possibly permuted) key order.

    block_mask: bool [B, Hq, nq, nk]; entry (i, j) means query block i (original order) attends
        key block j of the key sequence in `key_order`.
    key_order: the natural order, or a permutation whose keys move only inside their segment, so
        token-level causal masking is needed only on a query block's own segment (its own block
        without a permutation).
    """

    block_mask: torch.Tensor
    block_size: int
    key_order: KeyOrder = NATURAL_ORDER

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, scale: float, backend: str
    ) -> torch.Tensor:
        """Run the block-sparse kernel on this plan; returns [B, Hq, L, D] in original order."""
        return block_sparse_attention(
            q,
            k,
            v,
            self.block_mask,
            block_size=self.block_size,
            key_perm=self.key_order.key_perm,
            segment_size=self.key_order.segment_size,
            scale=scale,
            backend=backend,
        )

    def density(self, length: int) -> torch.Tensor:
        """Computed blocks / causal blocks, float [B, Hq]."""
        computed = self.block_mask.sum(dim=(-1, -2)).float()
        return computed / causal_block_count(length, self.block_size)


@dataclass
class VerticalSlashPlan:
    """MInference-style plan: token-level vertical columns plus diagonal slash bands.

    vertical_indices: int64 [B, Hq, NV], original key positions every query may attend (causally).
    slash_offsets: int64 [B, Hq, NS], diagonal offsets (query_pos - key_pos >= 0) to compute.
    """

    vertical_indices: torch.Tensor
    slash_offsets: torch.Tensor

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, scale: float, backend: str
    ) -> torch.Tensor:
        """Run the vertical-slash kernel on this plan; returns [B, Hq, L, D]."""
        return vertical_slash_attention(
            q, k, v, self.vertical_indices, self.slash_offsets, scale=scale, backend=backend
        )

    def density(self, length: int) -> torch.Tensor:
        """Computed (query, key) pairs / causal pairs, float [B, Hq] (union of columns and bands)."""
        return vertical_slash_density(self.vertical_indices, self.slash_offsets, length)


@dataclass
class DensePlan:
    """Full causal attention, executed by torch SDPA (the fastest dense path available)."""

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, scale: float, backend: str
    ) -> torch.Tensor:
        """Causal SDPA with grouped-query heads; returns [B, Hq, L, D]."""
        return torch.nn.functional.scaled_dot_product_attention(
            q, k, v, is_causal=True, scale=scale, enable_gqa=q.shape[1] != k.shape[1]
        )

    def density(self, length: int) -> float:
        return 1.0


Plan = BlockSparsePlan | VerticalSlashPlan | DensePlan
