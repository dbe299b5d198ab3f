"""`make figures` on a synthetic results tree: a PNG per figure with inputs, skipped ones said so."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from src.report import collect, figures
from tests.report.results_tree import SMOL


def test_figures_are_written_and_absent_inputs_are_skipped(tree: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "figures"
    written = figures.write_figures(tree["results"], out)
    names = {f.path.name for f in written}
    assert {
        "speedup_vs_length_bench_attention_h100.png", "kernel_time_vs_density_bench_attention_h100.png",
        "ttft_speedup_ttft_h100.png", f"score_vs_density_{SMOL}_ruler-4096.png", f"ruler_vs_length_{SMOL}.png",
        "ruler_vs_length_llama3.1-8b.png",
    } <= names
    for figure in written:
        assert figure.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.path.stat().st_size > 1000
    index = (out / "index.md").read_text()
    assert all(name in index for name in names)
    curves = figures.sweep_curves([r for r in collect.collect_runs(tree["results"]) if r.method == "pbs"])
    assert [(param, len(runs)) for param, runs in curves] == [("threshold", 2)]

    empty = tmp_path / "empty"
    empty.mkdir()
    assert figures.write_figures(empty, tmp_path / "none") == []
    printed = capsys.readouterr().out
    assert "skipped kernel speedup" in printed and "skipped RULER score vs length" in printed
    assert not list((tmp_path / "none").glob("*.png"))
