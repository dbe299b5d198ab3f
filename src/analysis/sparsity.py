"""Sparsity gained by permutation: per layer and head at fixed coverage, and as block counts.

The paper (arXiv 2510.21270, App. B.2-B.4) reports the absolute sparsity improvement
Delta_s(C) = Density_baseline(C) - Density_permuted(C) in percentage points, where Density(C) is
the block density needed to reach attention coverage C (Eq. 14, Fig. 7-8); heads are helped when
Delta_s > 1 point, harmed when Delta_s < -1 and unchanged otherwise (Table 6). Table 5 turns the
mean density of the threshold selector into selected-block counts, T(T+1)/2 x density.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from src.attention.ops import causal_block_count


def sparsity_gain(density_baseline: torch.Tensor, density_permuted: torch.Tensor) -> torch.Tensor:
    """Delta_s in percentage points: 100 x (baseline density - permuted density), same shape."""
    return 100.0 * (density_baseline.double() - density_permuted.double())


@dataclass
class HeadGainCounts:
    """Heads helped (gain > tolerance), unchanged (|gain| <= tolerance), harmed (gain < -tolerance)."""

    helped: int
    unchanged: int
    harmed: int
    tolerance_pp: float

    @property
    def total(self) -> int:
        return self.helped + self.unchanged + self.harmed

    def fractions(self) -> dict[str, float]:
        """Each category's share of all heads."""
        total = max(self.total, 1)
        return {"helped": self.helped / total, "unchanged": self.unchanged / total, "harmed": self.harmed / total}

    def as_dict(self) -> dict[str, object]:
        """Counts, tolerance and fractions, ready for JSON."""
        return {**asdict(self), "total": self.total, "fractions": self.fractions()}


def classify_gains(gains_pp: torch.Tensor, tolerance_pp: float = 1.0) -> HeadGainCounts:
    """Count heads by the paper's +-1 point criterion on their sparsity gains (any shape)."""
    if tolerance_pp < 0:
        raise ValueError(f"tolerance_pp must be >= 0, got {tolerance_pp}")
    gains = gains_pp.flatten()
    helped = int((gains > tolerance_pp).sum())
    harmed = int((gains < -tolerance_pp).sum())
    return HeadGainCounts(helped, gains.numel() - helped - harmed, harmed, tolerance_pp)


@dataclass
class BlockCounts:
    """Selected causal blocks without and with permutation at one context length (Table 5)."""

    length: int
    block_size: int
    total_causal_blocks: int
    selected_without: float
    selected_with: float

    @property
    def reduction(self) -> float:
        return self.selected_without - self.selected_with

    @property
    def relative_reduction(self) -> float:
        return self.reduction / self.selected_without if self.selected_without else 0.0

    def as_dict(self) -> dict[str, object]:
        """All fields plus the reductions, ready for JSON."""
        return {**asdict(self), "reduction": self.reduction, "relative_reduction": self.relative_reduction}


def selected_block_counts(
    length: int, block_size: int, density_without: float, density_with: float
) -> BlockCounts:
    """Table 5's row: mean block density (over layers and heads) times the T(T+1)/2 causal blocks."""
    if length <= 0 or block_size <= 0:
        raise ValueError(f"length {length} and block_size {block_size} must be positive")
    total = causal_block_count(length, block_size)
    return BlockCounts(length, block_size, total, density_without * total, density_with * total)
