"""Attention-map figures (src/analysis/attention_maps.py): the selection outline and the PNG."""

from __future__ import annotations

import torch

from src.analysis.attention_maps import MapPanel, save_attention_maps, selection_outline
from src.analysis.coverage import oracle_mask_at_coverage
from tests.analysis.brute import BLOCK, LENGTH, brute_masses


def test_selection_outline_traces_the_selected_region() -> None:
    single = torch.zeros(3, 3, dtype=torch.bool)
    single[1, 1] = True
    assert len(selection_outline(single.numpy())) == 4
    bar = torch.zeros(3, 3, dtype=torch.bool)
    bar[1, :2] = True
    segments = selection_outline(bar.numpy())
    assert len(segments) == 6
    assert {tuple(map(tuple, s)) for s in segments} >= {((-0.5, 0.5), (0.5, 0.5)), ((1.5, 0.5), (1.5, 1.5))}


def test_attention_map_png_is_written(tmp_path, attention) -> None:
    masses = brute_masses(attention, None, BLOCK)[0, 0]
    mask = oracle_mask_at_coverage(masses[None, None], 0.9, length=LENGTH, block_size=BLOCK, segment_size=None)[
        0, 0
    ]
    path = save_attention_maps(
        tmp_path / "map.png", [MapPanel(masses, mask, "before"), MapPanel(masses, mask, "after")], "head 0"
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000
