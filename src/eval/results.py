"""Results files of one run: per-sample JSONL (append-only, the resume point) and summaries.

    results/<run>/samples.jsonl   one row per sample
    results/<run>/summary.csv     the benchmark's summary table
    results/<run>/summary.md      the same, as markdown, with the run's provenance
    results/<run>/run.json        config, commit, model, device, method statistics
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd


def git_commit() -> str:
    """The checkout's commit (with '-dirty' if it has uncommitted changes), or 'unknown'."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


class SampleLog:
    """The append-only per-sample JSONL of a run; rows already there are skipped on rerun."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def done_ids(self) -> set[str]:
        return {row["id"] for row in self.rows()}

    def rows(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        with self.path.open() as f:
            return [json.loads(line) for line in f if line.strip()]

    def append(self, row: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


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
