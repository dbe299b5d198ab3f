"""Results files of one run: per-sample JSONL (append-only, the resume point) and summaries.

    results/<run>/samples.jsonl   one row per sample
    results/<run>/summary.csv     the benchmark's summary table
    results/<run>/summary.md      the same, as markdown, with the run's provenance
    results/<run>/run.json        config, commit, model, device, method statistics, and the
                                  `comparison` record: what a number needs to be compared with another
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a malformed line raises ValueError naming the file and line."""
    rows = []
    with path.open() as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from None
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Replace `path` with `rows` atomically (write then rename)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    tmp.replace(path)


class SampleLog:
    """The append-only per-sample JSONL of one shard of a run.

    Rows in any samples*.jsonl of the run directory count as done, so a rerun (with the same or
    another number of processes) skips them.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def all_rows(self) -> list[dict[str, Any]]:
        """Rows of every shard file in the run directory, the merged file first."""
        files = sorted(self.path.parent.glob("samples*.jsonl"), key=lambda p: p.name != "samples.jsonl")
        return [row for file in files for row in read_jsonl(file)]

    def done_ids(self) -> set[str]:
        return {row["id"] for row in self.all_rows()}

    def append(self, row: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def comparison_record(config: Mapping[str, Any], rows: list[dict[str, Any]], source: str) -> dict[str, Any]:
    """What makes this run's numbers comparable with another's, beyond its config (src.report.keys):
    the benchmark and harness, where the samples came from (`source`: generated, hub, local or
    fixture, as resolved on the machine that ran it), how many samples each task has, and the seed
    that drew them (None for benchmarks whose samples are fixed data)."""
    dataset = config["dataset"]
    return {
        "benchmark": dataset["name"],
        "harness": dataset.get("harness"),
        "source": source,
        "samples_per_task": dict(sorted(Counter(str(row["task"]) for row in rows).items())),
        "seed": dataset.get("seed"),
    }


def rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Sample rows as a DataFrame, with `meta` fields flattened to `meta_<key>` columns."""
    flat = []
    for row in rows:
        item = {k: v for k, v in row.items() if k not in ("meta", "method_stats")}
        item.update({f"meta_{k}": v for k, v in (row.get("meta") or {}).items()})
        item["density"] = (row.get("method_stats") or {}).get("density")
        flat.append(item)
    return pd.DataFrame(flat)


def write_summary(run_dir: Path, summary: pd.DataFrame, provenance: dict[str, Any]) -> str:
    """Write summary.csv, summary.md and run.json; return the markdown table."""
    summary.to_csv(run_dir / "summary.csv", index=False)
    table = summary.to_markdown(index=False, floatfmt=".2f")
    header = "\n".join(f"- {k}: {v}" for k, v in provenance.items() if not isinstance(v, dict))
    (run_dir / "summary.md").write_text(f"{header}\n\n{table}\n")
    (run_dir / "run.json").write_text(json.dumps(provenance, indent=2, default=str) + "\n")
    return table
