"""Sparsity gain per head, the paper's +-1 point classification, and Table 5's block counts."""

from __future__ import annotations

import pytest
import torch

from src.analysis.sparsity import classify_gains, selected_block_counts, sparsity_gain


def test_sparsity_gain_is_in_percentage_points() -> None:
    # the paper's example (Fig. 7 caption): 60% density unpermuted, 40% permuted -> 20 points
    gains = sparsity_gain(
        torch.tensor([0.60, 0.30, 0.25], dtype=torch.float64),
        torch.tensor([0.40, 0.305, 0.35], dtype=torch.float64),
    )
    torch.testing.assert_close(gains, torch.tensor([20.0, -0.5, -10.0], dtype=torch.float64))


def test_plus_minus_one_point_classification_on_hand_made_gains() -> None:
    gains = torch.tensor([[2.5, 1.0, -1.0, 0.3], [-1.01, 1.01, -5.0, 0.0]])
    counts = classify_gains(gains)
    assert (counts.helped, counts.unchanged, counts.harmed, counts.total) == (2, 4, 2, 8)
    assert counts.fractions() == {"helped": 0.25, "unchanged": 0.5, "harmed": 0.25}
    loose = classify_gains(gains, tolerance_pp=2.0)
    assert (loose.helped, loose.unchanged, loose.harmed) == (1, 6, 1)


def test_paper_table6_fractions_round_trip() -> None:
    # Table 6: 725 helped, 246 unchanged, 53 harmed of 1024 heads -> 70.8% / 24.0% / 5.2%
    gains = torch.cat([torch.full((725,), 3.0), torch.zeros(246), torch.full((53,), -2.0)])
    summary = classify_gains(gains).as_dict()
    assert summary["total"] == 1024
    assert round(100 * summary["fractions"]["helped"], 1) == 70.8
    assert round(100 * summary["fractions"]["unchanged"], 1) == 24.0
    assert round(100 * summary["fractions"]["harmed"], 1) == 5.2


def test_selected_block_counts_reproduce_paper_table5_row() -> None:
    # Table 5, 8K: 2,080 causal blocks; 1,350 selected without and 1,205 with permutation
    row = selected_block_counts(8192, 128, 1350 / 2080, 1205 / 2080)
    assert row.total_causal_blocks == 2080
    assert row.selected_without == pytest.approx(1350) and row.selected_with == pytest.approx(1205)
    assert row.reduction == pytest.approx(145)
    assert round(100 * row.relative_reduction, 1) == 10.7
    assert selected_block_counts(131072, 128, 0.5, 0.5).total_causal_blocks == 524_800


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="tolerance_pp must be >= 0, got -1"):
        classify_gains(torch.zeros(3), tolerance_pp=-1)
    with pytest.raises(ValueError, match="length 0 and block_size 128 must be positive"):
        selected_block_counts(0, 128, 0.5, 0.4)
