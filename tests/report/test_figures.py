"""`make figures` on a synthetic results tree: a PNG per figure with inputs, skipped ones said so,
the accuracy-vs-cost figure per comparable set with its speed source named, stale PNGs removed."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from src.report import collect, figures, tradeoff
from src.report.tradeoff_figures import sweep_curves, tradeoff_figures
from tests.report.results_tree import SMOL, write_run


def test_figures_are_written_and_absent_inputs_are_skipped(tree: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "figures"
    written = figures.write_figures(tree["results"], out)
    names = {f.path.name for f in written}
    assert {"speedup_vs_length_bench_attention_h100.png", "kernel_time_vs_density_bench_attention_h100.png",
            "ttft_speedup_ttft_h100.png"} <= names
    assert any(name.startswith(f"tradeoff_{SMOL}_cpu") and "ruler-4096" in name for name in names)
    assert any(name.startswith(f"ruler_vs_length_{SMOL}_") for name in names)
    for figure in written:
        assert figure.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.path.stat().st_size > 1000
    index = (out / "index.md").read_text()
    assert all(name in index for name in names)
    assert "Set: ruler (generated offline): 2 tasks (niah_single_1, vt), 3 samples per task" in index

    empty = tmp_path / "empty"
    empty.mkdir()
    assert figures.write_figures(empty, tmp_path / "none") == []
    printed = capsys.readouterr().out
    assert "skipped kernel speedup" in printed and "skipped RULER score vs length" in printed
    assert not list((tmp_path / "none").glob("*.png"))


def test_threshold_sweeps_are_curves_and_pareto_front(tree: dict[str, Any]) -> None:
    groups = tradeoff.tradeoff_groups(collect.collect_runs(tree["results"]), [])
    group = next(g for g in groups if g.model == SMOL and g.length == 4096)
    pbs = [p for p in group.points if p.run.method == "pbs"]
    assert [(param, len(points)) for param, points in sweep_curves(pbs)] == [("threshold", 2)]
    front = tradeoff.pareto_front(group.points, tradeoff.density_of, larger_x_better=False)
    for point in group.points:  # a point off the front is beaten by one on it on both axes
        if point not in front:
            assert any(q.density <= point.density and q.accuracy.value >= point.accuracy.value for q in front)
    assert not group.has_speed and "dense was timed at another commit" in group.speed_note  # the tree's commits differ


def test_speedup_from_prefill_times_of_one_commit_else_a_ttft_benchmark_else_none(tmp_path: Path) -> None:
    alone, shared = tmp_path / "alone", tmp_path / "shared"
    for results, config in ((alone, {}), (shared, {"eval": {"concurrent_jobs": 4}})):
        for method, seed, seconds in (("dense", 1, 0.1), ("pbs", 2, 0.05)):
            write_run(results, SMOL, method, 8192, seed=seed, device="NVIDIA H100 80GB HBM3", config=config,
                      commit="abc123", prefill_s=seconds)
    point = next(p for p in tradeoff.tradeoff_groups(collect.collect_runs(alone), [])[0].points if p.run.method == "pbs")
    assert point.speed == tradeoff.Speed(2.0, "prefill medians over 6 samples")
    runs = collect.collect_runs(shared)
    group = tradeoff.tradeoff_groups(runs, [])[0]
    assert not group.has_speed and "eval.concurrent_jobs=4" in group.speed_note
    out = tmp_path / "figures"
    out.mkdir()
    drawn, = tradeoff_figures([group], out, figures.PAPER_DIR)
    assert drawn.note == group.speed_note and drawn.note.startswith("no speedup measured")
    bench = collect.read_bench(Path(__file__).parent / "fixtures" / "bench" / "ttft_h100.json")
    bench.record["rows"].append({"model": SMOL, "method": "pbs", "length": 8000, "target_length": 8192, "ttft_ms": 50.0,
                                 "speedup_vs_sdpa": 1.7})
    bench.record["args"]["override"] = ["pbs:threshold=0.9"]
    point = next(p for p in tradeoff.tradeoff_groups(runs, [bench])[0].points if p.run.method == "pbs")
    assert point.speed is not None and point.speed.speedup == 1.7 and point.speed.source.startswith("TTFT benchmark")


def test_figures_of_a_previous_index_are_removed_when_no_longer_drawn(tree: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "figures"
    out.mkdir()
    (out / "score_vs_density_old.png").write_bytes(b"\x89PNG old")
    (out / "kept_by_hand.png").write_bytes(b"\x89PNG mine")
    (out / "index.md").write_text("# Figures\n\n![old](score_vs_density_old.png)\n")
    figures.write_figures(tree["results"], out)
    assert not (out / "score_vs_density_old.png").exists() and (out / "kept_by_hand.png").exists()
