"""The dataset registry: a benchmark bound to its config is checked against its loader's signature."""
from __future__ import annotations

import pytest

from src.data import DATASETS
from src.data.longbench import summarize_longbench
from src.registry import ConfigError


def test_every_benchmark_is_registered_by_importing_the_package() -> None:
    assert DATASETS.names() == ["longbench", "longbench_v2", "ruler"]


def test_unknown_parameter_names_the_key_and_the_allowed_ones() -> None:
    with pytest.raises(ConfigError, match=r"^dataset 'ruler' got unknown parameter\(s\) foo; allowed: tasks, length, num_samples, seed,"):
        DATASETS.build("ruler", {"tasks": ["vt"], "length": 1024, "num_samples": 1, "foo": 1})
    with pytest.raises(ConfigError, match="tokenizer"):  # the model's tokenizer is not a config key
        DATASETS.build("longbench", {"tokenizer": None})


def test_bound_dataset_loads_with_the_tokenizer_and_keeps_its_summary() -> None:
    longbench = DATASETS.build("longbench", {"tasks": ["trec"], "max_length": 4096, "source": "fixture"})
    assert longbench.summarize is summarize_longbench
    assert [s.task for s in longbench.load(None)] == ["trec", "trec"]
