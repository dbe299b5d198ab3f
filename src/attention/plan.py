"""Sparse-attention plans: what a selector decides, in a form a kernel backend can execute.

A selector never runs attention itself; it returns a plan. Each plan type knows which kernel
executes it and how to count what it computes, so methods compose without branching on names.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from src.attention.kernels import (
    BlockColumnIndex,
    block_column_attention,
    block_column_index,
    block_sparse_attention,
    vertical_slash_attention,
    vertical_slash_density,
)
from src.attention.key_order import NATURAL_ORDER, KeyOrder
from src.attention.ops import causal_block_count
from src.checks import check_choice


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


KERNEL_SEMANTICS = ("official", "token_union")


@dataclass
class VerticalSlashPlan:
    """MInference's plan: vertical columns plus diagonal slash offsets per head.

    vertical_indices: int64 [B, Hq, NV], original key positions every query may attend (causally).
    slash_offsets: int64 [B, Hq, NS], diagonal offsets (query_pos - key_pos >= 0) to compute.
    kernel_semantics: what the attention computes from them.
        "official" (default): what MInference's own kernel computes, so results match the method
        as published and as the PBS paper ran it: per 64-query block every slash rounded out to
        whole 64-key ranges, plus the columns outside them (kernels/block_column). On the
        benchmark's inputs that is ~0.90 of the causal pairs at 32K.
        "token_union": exactly the union of the columns and diagonals (kernels/vertical_slash),
        ~0.22 at 32K: the pattern itself, not what MInference runs; for studying the pattern.
    index: the official conversion of the indices (block_column_index) when the semantics is
        official, None for token_union; `vertical_slash_plan` builds the plan with it.
    """

    vertical_indices: torch.Tensor
    slash_offsets: torch.Tensor
    kernel_semantics: str = "official"
    index: BlockColumnIndex | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_choice("kernel_semantics", self.kernel_semantics, KERNEL_SEMANTICS)
        official = self.kernel_semantics == "official"
        if (self.index is not None) != official:
            need = "the index built by block_column_index" if official else "index None"
            raise ValueError(f"kernel_semantics {self.kernel_semantics!r} needs {need}; build the plan with vertical_slash_plan()")

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, scale: float, backend: str
    ) -> torch.Tensor:
        """Run the plan's kernel; returns [B, Hq, L, D]."""
        if self.index is None:
            return vertical_slash_attention(
                q, k, v, self.vertical_indices, self.slash_offsets, scale=scale, backend=backend
            )
        return block_column_attention(q, k, v, self.index, scale=scale, backend=backend)

    def density(self, length: int) -> torch.Tensor:
        """Computed (query, key) pairs / causal pairs, float [B, Hq]: what the kernel computes."""
        if self.index is None:
            return vertical_slash_density(self.vertical_indices, self.slash_offsets, length)
        return self.index.density()


def vertical_slash_plan(
    vertical_indices: torch.Tensor, slash_offsets: torch.Tensor, length: int, kernel_semantics: str = "official"
) -> VerticalSlashPlan:
    """A VerticalSlashPlan over `length` tokens, with its official conversion when it needs one
    (one Triton launch on CUDA, plain torch elsewhere; part of the selection's cost)."""
    check_choice("kernel_semantics", kernel_semantics, KERNEL_SEMANTICS)
    index = None if kernel_semantics == "token_union" else block_column_index(vertical_indices, slash_offsets, length)
    return VerticalSlashPlan(vertical_indices, slash_offsets, kernel_semantics, index)


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
