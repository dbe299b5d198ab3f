"""Results files of one run: per-sample JSONL (append-only, the resume point) and summaries.

    results/<run>/samples.jsonl   one row per sample
    results/<run>/summary.csv     the benchmark's summary table
    results/<run>/summary.md      the same, as markdown, with the run's provenance
    results/<run>/run.json        config, commit, model, device, method statistics, and the
                                  `comparison` record: what a number needs to be compared with another
"""
from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)
TORN_WARNING = "%s: dropped a torn last line (a write cut short by a kill); its sample is recomputed"


def read_jsonl(path: Path, *, torn_tail_ok: bool = False) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a malformed line raises ValueError naming the file and line.

    torn_tail_ok: a last line that is neither terminated nor valid JSON (a write cut short by a
    kill) is dropped with a warning instead, so its sample is recomputed.
    """
    rows = []
    lines = path.read_text().split("\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if torn_tail_ok and number == len(lines):  # the text after the last newline
                log.warning(TORN_WARNING, path)
                continue
            raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from None
    return rows


def drop_torn_tail(path: Path) -> None:
    """End `path` at its last complete row: cut an unterminated last line that is not valid JSON
    (see read_jsonl), terminate one that is, so the next append starts on a line of its own."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    tail_start = data.rfind(b"\n") + 1
    try:
        json.loads(data[tail_start:])
    except ValueError:
        log.warning(TORN_WARNING, path)
        with path.open("r+b") as f:
            f.truncate(tail_start)
    else:
        append_bytes(path, b"\n")


def append_bytes(path: Path, data: bytes) -> None:
    """Append `data` with one write system call on an O_APPEND descriptor (repeated only if the
    kernel writes part of it), so a kill between rows never leaves half a row."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
        while written < len(data):
            written += os.write(fd, data[written:])
    finally:
        os.close(fd)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Replace `path` with `rows` atomically (write then rename)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    tmp.replace(path)


class SampleLog:
    """The append-only per-sample JSONL of one shard of a run.

    Rows in any samples*.jsonl of the run directory count as done, so a rerun (with the same or
    another number of processes) skips them. A torn last line (a kill during a write) is dropped
    when read, and cut from this shard's own file before its next append.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        drop_torn_tail(path)

    def all_rows(self) -> list[dict[str, Any]]:
        """Rows of every shard file in the run directory, the merged file first."""
        return saved_rows(self.path.parent)

    def done_ids(self) -> set[str]:
        return {row["id"] for row in self.all_rows()}

    def append(self, row: dict[str, Any]) -> None:
        """Add one row: one write of the whole line (see append_bytes)."""
        append_bytes(self.path, (json.dumps(row, ensure_ascii=False) + "\n").encode())


def saved_rows(run_dir: Path) -> list[dict[str, Any]]:
    """Rows of every samples*.jsonl in `run_dir` (none when it does not exist), the merged file first."""
    files = sorted(run_dir.glob("samples*.jsonl"), key=lambda p: p.name != "samples.jsonl")
    return [row for file in files for row in read_jsonl(file, torn_tail_ok=True)]


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
