"""Everything the report reads: one record per run under results/runs, one per benchmark JSON
under results/bench, each checked so that a broken file stops the report with one clear line.

A run directory is results/runs/<root>/<model>/<dataset label>/<method>/<overrides>/ with run.json
(provenance and config) and samples.jsonl (one scored row per sample). The committed roots are
every folder under results/runs except `local` (git-ignored, where runs land by default), so a
table built from a checkout shows what the checkout holds; `extra` roots add others on request.
Each run knows its comparable set and cell (src/report/keys.py): from its run.json's
`comparison` record, or, for runs written before there was one, derived from its config and rows
(an `auto` LongBench source is told apart by its sample ids: the fixture's ids are our own).
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from src.data import DATASETS
from src.data.base import dataset_params
from src.data.hub import GENERATED
from src.eval.results import comparison_record, read_jsonl, rows_frame
from src.registry import ConfigError
from src.report.keys import ComparableSet, MethodConfig, comparable_set, context_length

RUN_KEYS = ("model", "method", "dataset", "device", "commit", "config")
BENCH_KEYS = ("device", "commit", "rows")
OVERALL_NAMES = ("avg", "average", "overall", "all")
UNCOMMITTED_ROOT = "local"


def name_key(name: str) -> str:
    """A row or column name reduced to lower-case letters and digits, so 'Single-Doc QA' finds 'SingleDocQA'."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())

T = TypeVar("T")


class ResultsError(ValueError):
    """A results file the report cannot use; the message names the file and the problem."""


@dataclass(frozen=True)
class Source:
    """Where one of our numbers came from: the file, model, device and commit, and how many
    other results for the same table cell were passed over because they were older."""

    path: str
    model: str
    device: str
    commit: str
    superseded: int = 0

    def describe(self) -> str:
        """One line for a table's footnote list."""
        dirty = "-dirty" if self.commit.endswith("-dirty") else ""
        text = f"{self.path}: {self.model}, {self.device}, commit {self.commit.removesuffix('-dirty')[:12]}{dirty}"
        if self.superseded:
            text += f" (newest of {self.superseded + 1} results for this cell; older ones not shown)"
        return text


Recency = tuple[str, float]


def recency(record: dict[str, Any], path: Path) -> Recency:
    """Sort key of a result file: the UTC time its writer recorded ('written_at', ISO 8601), then
    the file's mtime. A file without one (written before it was recorded) counts as older than
    any with one: a checkout gives every file the same fresh mtime, so mtime alone would let the
    order of a clone decide which result a table shows."""
    return str(record.get("written_at", "")), path.stat().st_mtime


@dataclass
class Run:
    """One finished run: its provenance (run.json), its scored sample rows and how recent it is."""

    path: Path
    info: dict[str, Any]
    rows: list[dict[str, Any]]
    recency: Recency
    label: str = ""

    @property
    def model(self) -> str:
        """The model's name as the run recorded it."""
        return str(self.info["model"])

    @property
    def method(self) -> str:
        """Our method name (dense, pbs, ...)."""
        return str(self.info["method"])

    @property
    def dataset(self) -> str:
        """The dataset label, e.g. 'ruler-4096'; a fixture run's label always ends in '-fixture'."""
        label = str(self.info["dataset"])
        return f"{label}-fixture" if self.comparable_set.is_fixture and not label.endswith("-fixture") else label

    @property
    def benchmark(self) -> str:
        """The registered dataset name, e.g. 'ruler' or 'longbench'."""
        return str(self.info["config"]["dataset"]["name"])

    @property
    def length(self) -> int | None:
        """The configured context length (RULER), or None when the dataset has none."""
        return context_length(self.info["config"]["dataset"])

    @property
    def device(self) -> str:
        """The device the run measured on."""
        return str(self.info["device"])

    @cached_property
    def comparison(self) -> dict[str, Any]:
        """The run's comparison record: as recorded, or derived for runs older than the record."""
        recorded = self.info.get("comparison")
        if isinstance(recorded, dict):
            return recorded
        return comparison_record(self.info["config"], self.rows, self._derived_source())

    def _derived_source(self) -> str:
        dataset = self.info["config"]["dataset"]
        if "source" not in dataset:
            return GENERATED
        if dataset["source"] != "auto":
            return str(dataset["source"])
        if dataset.get("local_dir"):
            return "local"
        try:
            fixture = DATASETS.build(self.benchmark, {**dataset_params(dataset), "source": "fixture"}).load(None)
        except (ConfigError, TypeError, ValueError, OSError):
            return "unknown"
        return "fixture" if {row["id"] for row in self.rows} <= {sample.id for sample in fixture} else "hub"

    @cached_property
    def comparable_set(self) -> ComparableSet:
        """The data this run was measured on (benchmark, source, tasks, samples per task, seed, ...)."""
        return comparable_set(self.comparison, self.info["config"]["dataset"])

    @cached_property
    def method_config(self) -> MethodConfig:
        """The run's method configuration, completed with today's defaults."""
        return MethodConfig.of(self.info["config"].get("method") or {"name": self.method})

    @property
    def variant(self) -> str:
        """The method's parameters that differ from today's defaults ('threshold=0.5'), '' for none."""
        return self.method_config.variant

    @property
    def method_label(self) -> str:
        """Row label in tables and figures: the paper's method name, plus the changed parameters if any."""
        return self.method_config.label

    @property
    def cell_key(self) -> tuple[str, ComparableSet, int | None, str]:
        """(model, comparable set, context length, method configuration): what one number is of."""
        return (self.model, self.comparable_set, self.length, self.method_config.key)

    @property
    def concurrent_jobs(self) -> int:
        """How many jobs shared the device while this one ran (`eval.concurrent_jobs`, 1 if not recorded):
        above 1 its per-sample prefill times are not a clean speed measure."""
        value = (self.info["config"].get("eval") or {}).get("concurrent_jobs")
        return int(value) if value else 1

    @property
    def mean_density(self) -> float | None:
        """Mean computed fraction of causal blocks over the run's samples (1.0 for dense)."""
        value = self.info.get("mean_density")
        return float(value) if value is not None else None

    def source(self, superseded: int = 0) -> Source:
        """This run as the provenance of a table cell."""
        return Source(self.label or str(self.path), self.model, str(self.info["device"]), str(self.info["commit"]), superseded)

    @cached_property
    def summary(self) -> pd.DataFrame:
        """The benchmark's summary, recomputed from samples.jsonl when its dataset is registered,
        otherwise read from the run's summary.csv."""
        summarize = summarizer(self.benchmark)
        if summarize is not None:
            try:
                return summarize(rows_frame(self.rows))
            except (KeyError, ValueError, TypeError) as err:
                raise ResultsError(f"{self.path / 'samples.jsonl'}: {self.benchmark} summarize failed ({err})") from None
        path = self.path / "summary.csv"
        if not path.is_file():
            raise ResultsError(f"{path}: missing, and dataset {self.benchmark!r} is not registered to recompute it")
        return pd.read_csv(path)

    @cached_property
    def scores(self) -> dict[str, float]:
        """Summary scores by `name_key` of the row name (task, category, 'average', ...)."""
        return summary_scores(self.summary, self.path / "summary.csv")

    @property
    def overall(self) -> float:
        """The run's headline score: its summary's average/overall row, else the mean of its rows."""
        for name in OVERALL_NAMES:
            if name in self.scores:
                return self.scores[name]
        return sum(self.scores.values()) / len(self.scores)


@dataclass
class Bench:
    """One benchmark JSON from experiments/bench_attention.py or bench_ttft.py."""

    path: Path
    record: dict[str, Any]
    recency: Recency
    label: str = ""

    @property
    def is_ttft(self) -> bool:
        """Whether this is an end-to-end TTFT benchmark (ttft_*.json) rather than a kernel one."""
        return self.path.name.startswith("ttft")

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The measured rows, one per (length, kernel or method)."""
        return self.record["rows"]

    @property
    def args(self) -> dict[str, Any]:
        """The benchmark's command-line arguments ({} if not recorded)."""
        return self.record.get("args") or {}

    @property
    def device(self) -> str:
        """The device the benchmark ran on."""
        return str(self.record["device"])

    def source(self, model: str, superseded: int = 0) -> Source:
        """This file as the provenance of a table cell about `model`."""
        return Source(self.label or str(self.path), model, self.device, str(self.record["commit"]), superseded)


def summarizer(benchmark: str) -> Callable[[pd.DataFrame], pd.DataFrame] | None:
    """The summarize of registered dataset `benchmark`; None when no dataset has that name."""
    if benchmark not in DATASETS.names():
        return None
    return DATASETS.build(benchmark).summarize


def summary_scores(summary: pd.DataFrame, where: Path) -> dict[str, float]:
    """Map a summary table's row names (its name/task/category column, by `name_key`) to scores."""
    names = next((c for c in ("name", "task", "category") if c in summary.columns), None)
    if names is None or "score" not in summary.columns:
        raise ResultsError(f"{where}: summary needs a 'score' column and one of name/task/category; got {list(summary.columns)}")
    scores: dict[str, float] = {}
    for name, score in zip(summary[names], summary["score"]):
        if pd.notna(score):
            scores.setdefault(name_key(name), float(score))
    if not scores:
        raise ResultsError(f"{where}: summary has no scores")
    return scores


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ResultsError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _check_rows(path: Path, rows: list[Any]) -> None:
    if not rows:
        raise ResultsError(f"{path}: no sample rows")
    seen: set[str] = set()
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise ResultsError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        missing = [k for k in ("id", "task", "score") if k not in row]
        if missing:
            raise ResultsError(f"{path}:{number}: missing {', '.join(missing)}")
        score = row["score"]
        if not isinstance(score, (int, float)) or isinstance(score, bool) or not 0.0 <= score <= 1.0:
            raise ResultsError(f"{path}:{number}: score {score!r} is not a number in [0, 1]")
        if str(row["id"]) in seen:
            raise ResultsError(f"{path}:{number}: sample id {row['id']!r} appears twice")
        seen.add(str(row["id"]))


def read_run(run_json: Path, root: Path | None = None) -> Run:
    """The run whose run.json is `run_json`, checked; `root` shortens the path shown in footnotes."""
    info = _read_json(run_json)
    missing = [k for k in RUN_KEYS if k not in info]
    if missing:
        raise ResultsError(f"{run_json}: missing key(s) {', '.join(missing)}; a run.json needs {', '.join(RUN_KEYS)}")
    dataset = info["config"].get("dataset") if isinstance(info["config"], dict) else None
    if not isinstance(dataset, dict) or "name" not in dataset:
        raise ResultsError(f"{run_json}: config.dataset.name is missing")
    samples = run_json.parent / "samples.jsonl"
    if not samples.is_file():
        raise ResultsError(f"{samples}: missing (run.json is there, so the run should have written it)")
    try:
        rows = read_jsonl(samples)
    except ValueError as err:
        raise ResultsError(str(err)) from None
    except UnicodeDecodeError as err:
        raise ResultsError(f"{samples}: not UTF-8 text ({err.reason})") from None
    _check_rows(samples, rows)
    label = str(run_json.parent.relative_to(root)) if root else str(run_json.parent)
    return Run(run_json.parent, info, rows, recency(info, run_json), label)


def run_roots(results: Path, extra: Iterable[Path] = ()) -> list[Path]:
    """Where runs are read from: every folder under `results`/runs except `local` (the committed
    roots, e.g. runs/h200, runs/cpu), then each of `extra` (e.g. runs/local, a sweep's own root)."""
    runs_dir = results / "runs"
    committed = sorted(p for p in runs_dir.iterdir() if p.is_dir() and p.name != UNCOMMITTED_ROOT) if runs_dir.is_dir() else []
    return [*committed, *(Path(p) for p in extra)]


def collect_runs(results: Path, extra: Iterable[Path] = ()) -> list[Run]:
    """Every run with a run.json (runs still in progress have none) under `run_roots(results, extra)`;
    each is labelled by its path relative to `results` (or as given, for a root outside it)."""
    runs = []
    for root in run_roots(results, extra):
        for path in sorted(root.rglob("run.json")):
            base = results if path.is_relative_to(results) else None
            runs.append(read_run(path, base))
    return runs


def read_bench(path: Path, root: Path | None = None) -> Bench:
    """One benchmark JSON, checked for the keys the report uses."""
    record = _read_json(path)
    missing = [k for k in BENCH_KEYS if k not in record]
    if missing:
        raise ResultsError(f"{path}: missing key(s) {', '.join(missing)}; a benchmark JSON needs {', '.join(BENCH_KEYS)}")
    rows = record["rows"]
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "length" in r for r in rows):
        raise ResultsError(f"{path}: 'rows' must be a list of objects, each with a 'length'")
    for row in rows:
        bad = [k for k, v in row.items() if k.endswith(("ms", "speedup_vs_sdpa")) and v is not None and not _finite(v)]
        if bad:
            raise ResultsError(f"{path}: row {row.get('name') or row.get('method')} at {row['length']} has non-numeric {', '.join(bad)}")
    label = str(path.relative_to(root)) if root else ""
    return Bench(path, record, recency(record, path), label)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def collect_bench(results: Path) -> list[Bench]:
    """Every results/bench/*.json (attention kernels and TTFT), oldest first."""
    bench_dir = results / "bench"
    found = [read_bench(path, results) for path in sorted(bench_dir.glob("*.json"))] if bench_dir.is_dir() else []
    return sorted(found, key=lambda b: b.recency)


def newest(items: Iterable[T], key: Callable[[T], Hashable], when: Callable[[T], Recency]) -> dict[Hashable, tuple[T, int]]:
    """For each key, the most recent item (by `when`) and how many other items shared that key."""
    chosen: dict[Hashable, tuple[T, int]] = {}
    for item in items:
        k = key(item)
        if k not in chosen:
            chosen[k] = (item, 0)
            continue
        best, passed = chosen[k]
        chosen[k] = (item if when(item) > when(best) else best, passed + 1)
    return chosen
