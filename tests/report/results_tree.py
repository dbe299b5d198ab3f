"""A synthetic results tree as the pipeline and the benchmarks write it, for the report tests."""
from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

from src.report.keys import method_defaults

FIXTURES = Path(__file__).parent / "fixtures"
SMOL = "smollm2-135m-instruct"
DEVICE = "cpu (x86_64, 2 threads)"
TASKS = ("niah_single_1", "vt")


def recorded_defaults(method: str) -> dict[str, Any]:
    """Today's `conf/method/<method>.yaml` as a run records it (its resolved config has no defaults list)."""
    return {key: value for key, value in method_defaults(method).items() if key != "defaults"}


def causal_blocks(tokens: int, block: int) -> int:
    """Blocks on or below the diagonal, counted one by one (the paper's 'total causal blocks')."""
    n = -(-tokens // block)
    return sum(1 for i in range(n) for j in range(n) if j <= i)


def write_run(
    results: Path, model: str, method: str, length: int, *, seed: int, overrides: str = "default",
    mtime: float = 1_700_000_000.0, method_cfg: dict[str, Any] | None = None, benchmark: str = "ruler",
    tasks: tuple[str, ...] = TASKS, meta: list[dict[str, Any]] | None = None, per_task: int = 3,
    root: str = "", scores: list[float] | None = None, dataset_cfg: dict[str, Any] | None = None,
    recorded: dict[str, Any] | None = None, prefill_s: float = 0.1, device: str = DEVICE,
    config: dict[str, Any] | None = None, commit: str | None = None,
) -> list[dict[str, Any]]:
    """One run directory as src.eval.pipeline writes it, with random non-zero scores and densities
    (or `scores`, cycled over the rows), `per_task` samples per task, under results/runs/`root`;
    `recorded` is the run.json `comparison` record (None: a run older than the record); `config`
    adds top-level config nodes (e.g. eval)."""
    rng = random.Random(seed)
    label = f"{benchmark}-{length}" if benchmark == "ruler" else benchmark
    sized = {"length": length} if benchmark == "ruler" else {}
    run_dir = results / "runs" / root / model / label / method / overrides
    run_dir.mkdir(parents=True)
    rows = []
    for task in tasks:
        for i in range(per_task):
            density = 1.0 if method == "dense" else rng.uniform(0.1, 0.6)
            rows.append({
                "id": f"{task}-{i}", "task": task, "prediction": "x", "references": ["y"],
                "score": scores[len(rows) % len(scores)] if scores else rng.uniform(0.05, 1.0),
                "input_tokens": length - rng.randint(1, 300), "prefill_s": prefill_s, "decode_s": 0.2,
                "method_stats": {"density": density, "density_per_layer_head": [[density]]}, "meta": {"length": length, **(meta[len(rows) % len(meta)] if meta else {})},
            })
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    info = {
        "run": str(run_dir), "model": model, "method": method, "dataset": label, "device": device,
        "commit": commit or f"c0ffee{seed:02d}deadbeef", "samples": len(rows),
        "mean_density": sum(r["method_stats"]["density"] for r in rows) / len(rows), "mean_prefill_s": prefill_s,
        "config": {"dataset": {"name": benchmark, "label": label, **sized, "seed": 42, **(dataset_cfg or {})},
                   "method": {**recorded_defaults(method), "name": method, **({} if method == "dense" else {"block_size": 128, "threshold": 0.9}), **(method_cfg or {})},
                   **(config or {})},
        **({"comparison": recorded} if recorded is not None else {}),
    }
    (run_dir / "run.json").write_text(json.dumps(info))
    os.utime(run_dir / "run.json", (mtime, mtime))
    return rows


def ruler_score(rows: list[dict[str, Any]]) -> float:
    """RULER's number for a run: mean over tasks of the task's mean score, x100."""
    tasks = sorted({r["task"] for r in rows})
    per_task = [sum(r["score"] for r in rows if r["task"] == t) / sum(r["task"] == t for r in rows) for t in tasks]
    return 100 * sum(per_task) / len(per_task)


def value_of(cell: str) -> str:
    """The number of a table cell '35.00 [19.1, 52.3] n=11' ('35.00*' keeps its mark)."""
    return cell.split(" ")[0]


def make_tree(tmp_path: Path) -> dict[str, Any]:
    """A results tree: seven RULER runs (two for one cell, one threshold variant) and the bench fixtures."""
    results = tmp_path / "results"
    runs = {
        ("smol", "dense", 4096): write_run(results, SMOL, "dense", 4096, seed=1, mtime=1_700_000_100.0),
        ("smol-old", "dense", 4096): write_run(results, SMOL, "dense", 4096, seed=2, overrides="dataset.num_samples=3"),
        ("smol", "dense", 8192): write_run(results, SMOL, "dense", 8192, seed=3),
        ("smol", "pbs", 4096): write_run(results, SMOL, "pbs", 4096, seed=4),
        ("smol", "pbs-0.5", 4096): write_run(results, SMOL, "pbs", 4096, seed=5, overrides="method.threshold=0.5",
                                             method_cfg={"threshold": 0.5}),
        ("smol", "meanpooling", 4096): write_run(results, SMOL, "meanpooling", 4096, seed=6),
        ("llama", "dense", 4096): write_run(results, "llama3.1-8b", "dense", 4096, seed=7),
    }
    shutil.copytree(FIXTURES / "bench", results / "bench")
    return {"results": results, "runs": runs, "out": tmp_path / "tables"}
