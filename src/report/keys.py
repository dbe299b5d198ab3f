"""What makes two results comparable: the comparable set of a run and the cell it fills.

A comparable set is everything about the data a number was measured on: the benchmark and its
harness, where the data came from (hub, local copy, our offline fixture, or generated), the task
set, the samples per task, the sampling seed and any other dataset parameter (prompt budget,
template, filters). A table shows one set and says which in its header; results of several sets
make several tables. Inside a set a cell is (model, context length, method configuration), and
only results of the same cell compete (the newest wins): a 1-task smoke run is another set, so it
can never replace an 11-task run's number.

The method configuration is the run's resolved `method` config laid over today's
`conf/method/<name>.yaml`: a key added to a method after a run was made counts at its current
default (runs made before `estimate_backend` existed sit with those made after), unless adding it
changed the method's default behaviour: then a run that lacks it ran the earlier rule, and counts
at the value that reproduces that rule (`EARLIER_RULES`, e.g. MeanPooling runs from before
`score_diagonal` are `MeanPooling [last_block_pooling=mean,score_diagonal=False]`). Every value
the run did record and that differs from today's default names the row, e.g.
`PBS-Attn [threshold=0.8]`. The attention backends are implementations, not rules: a recorded
`triton` or `torch` sits with today's default `auto`, which runs Triton on CUDA and the torch
reference on a CPU (the device is part of the results root and of every table's provenance).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from src.configs import CONF_DIR
from src.report.paper import paper_method

# Dataset keys that are not parameters of the set: its name and label (named otherwise), the
# context length (a column), what the set states on its own (tasks, counts, seed) and where the
# files live (the same data from another folder is the same set).
NOT_SET_PARAMS = ("name", "label", "tasks", "num_samples", "max_samples", "seed", "source", "local_dir", "harness")
SOURCE_TEXT = {"generated": "generated offline", "hub": "Hugging Face hub", "local": "local copy",
               "fixture": "OUR SYNTHETIC OFFLINE FIXTURE, not the benchmark", "unknown": "source not recorded"}


def canonical(value: Any) -> str:
    """A value as sorted compact JSON: equal configs give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def context_length(dataset: Mapping[str, Any]) -> int | None:
    """The context length a dataset config fixes (RULER's `length`), or None (LongBench v2's
    `length` is a short/medium/long filter, a set parameter)."""
    value = dataset.get("length")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _set_param(key: str, value: Any) -> Any:
    return Path(str(value)).name if key.endswith("_path") and value else value


@dataclass(frozen=True)
class ComparableSet:
    """The data a result was measured on; see the module docstring."""

    benchmark: str
    harness: str | None
    source: str
    tasks: tuple[str, ...]
    per_task: tuple[tuple[str, int], ...]
    seed: int | None
    params: tuple[tuple[str, str], ...]

    @property
    def is_fixture(self) -> bool:
        """Whether the samples are our synthetic fixture rather than the benchmark's data."""
        return self.source == "fixture"

    @property
    def samples(self) -> int:
        """Samples per run (per context length) in this set."""
        return sum(n for _, n in self.per_task)

    def _per_task(self) -> str:
        """'20 samples' or, when tasks differ, '2-5 samples'."""
        counts = sorted({n for _, n in self.per_task})
        span = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        return f"{span} sample{'s' if counts[-1] > 1 else ''}"

    def counts_text(self) -> str:
        """'20 samples per task (220 per run)'."""
        return f"{self._per_task()} per task ({self.samples} per run)"

    def describe(self) -> str:
        """One line for a table's or figure's header."""
        harness = f", harness {self.harness}" if self.harness else ""
        seed = f", seed {self.seed}" if self.seed is not None else ""
        tasks = f"{len(self.tasks)} task{'s' if len(self.tasks) > 1 else ''} ({', '.join(self.tasks)})"
        params = "".join(f", {key}={value.strip(chr(34))}" for key, value in self.params if value != "null")
        return f"{self.benchmark} ({SOURCE_TEXT.get(self.source, self.source)}{harness}): {tasks}, {self.counts_text()}{seed}{params}"

    def short(self) -> str:
        """A few words naming the set in a figure title."""
        source = " FIXTURE" if self.is_fixture else ""
        return f"{self.benchmark}{source}, {len(self.tasks)} tasks x {self._per_task()}"


def comparable_set(comparison: Mapping[str, Any], dataset: Mapping[str, Any]) -> ComparableSet:
    """The set of a run from its comparison record (`src.eval.results.comparison_record`) and its
    resolved dataset config."""
    length = context_length(dataset)
    params = tuple(sorted(
        (key, canonical(_set_param(key, value)))
        for key, value in dataset.items()
        if key not in NOT_SET_PARAMS and not (key == "length" and (length is not None or value is None))
    ))
    return ComparableSet(
        benchmark=str(comparison["benchmark"]),
        harness=comparison.get("harness"),
        source=str(comparison["source"]),
        tasks=tuple(sorted(comparison["samples_per_task"])),
        per_task=tuple(sorted(comparison["samples_per_task"].items())),
        seed=comparison.get("seed"),
        params=params,
    )


@lru_cache(maxsize=None)
def method_defaults(name: str) -> dict[str, Any]:
    """Today's `conf/method/<name>.yaml`, resolved; {} for a method no config file names."""
    path = CONF_DIR / "method" / f"{name}.yaml"
    if not path.is_file():
        return {}
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)  # type: ignore[return-value]


# Switches whose introduction changed a method's default (the faithful-baselines change, issue 12): the
# value that reproduces what a run made before the key existed computed.
EARLIER_RULES: dict[str, dict[str, Any]] = {
    "meanpooling": {"score_diagonal": False, "last_block_pooling": "mean"},
    "pbs": {"last_block_pooling": "mean"},
    "xattention": {"first_chunk": "uniform"},
    "flexprefill": {"min_budget": 1024},
    "minference": {"kernel_semantics": "token_union"},
}
BACKEND_KEYS = ("backend", "estimate_backend")
AUTO_PICKS = ("triton", "torch")  # what backend `auto` runs: Triton on CUDA, the torch reference on a CPU


def _laid_over(defaults: Mapping[str, Any], recorded: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(defaults)
    for key, value in recorded.items():
        base = merged.get(key)
        merged[key] = _laid_over(base, value) if isinstance(base, Mapping) and isinstance(value, Mapping) else value
    return merged


@dataclass(frozen=True)
class MethodConfig:
    """A run's method configuration, completed with today's defaults (see the module docstring)."""

    name: str
    params: dict[str, Any]

    @classmethod
    def of(cls, recorded: Mapping[str, Any], *, complete: bool = True) -> MethodConfig:
        """From the `method` node of a run's resolved config (complete: a key it lacks did not exist
        yet, see EARLIER_RULES), or from only the overrides of a config (complete=False: the rest
        is today's defaults)."""
        name = str(recorded["name"])
        rules = EARLIER_RULES.get(name, {}) if complete else {}
        earlier = {key: value for key, value in rules.items() if key not in recorded}
        return cls(name, _laid_over({**method_defaults(name), **earlier}, recorded))

    @property
    def key(self) -> str:
        """The configuration as one comparable string: its name and top-level parameters (the
        nested permuter / selector nodes are fixed per method or follow from those)."""
        return canonical(self.top_level)

    @property
    def top_level(self) -> dict[str, Any]:
        """The top-level parameters, a recorded `triton` / `torch` backend read as `auto` where
        today's default is `auto` (see the module docstring)."""
        defaults = method_defaults(self.name)
        return {
            key: "auto" if key in BACKEND_KEYS and defaults.get(key) == "auto" and value in AUTO_PICKS else value
            for key, value in self.params.items() if not isinstance(value, Mapping)
        }

    @property
    def changed(self) -> dict[str, Any]:
        """Top-level parameters whose value differs from today's default (all, for an unknown method)."""
        defaults = method_defaults(self.name)
        return {
            key: value for key, value in self.top_level.items() if key != "name" and defaults.get(key) != value
        } if defaults else {}

    @property
    def variant(self) -> str:
        """'threshold=0.8,block_size=64' for the changed parameters, '' at the defaults."""
        return ",".join(f"{key}={value}" for key, value in sorted(self.changed.items()))

    @property
    def label(self) -> str:
        """Row label: the paper's method name plus the changed parameters."""
        name = paper_method(self.name)
        return f"{name} [{self.variant}]" if self.variant else name
