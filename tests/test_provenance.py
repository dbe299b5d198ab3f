"""Provenance: one spelling of the device, the commit and the library versions for runs and benchmarks."""
from __future__ import annotations

from importlib import metadata

import pytest
import torch

from src import provenance


def test_cpu_device_names_the_processor_and_threads() -> None:
    name = provenance.device_name(torch.device("cpu"))
    assert name.startswith("cpu (") and name.endswith(f", {torch.get_num_threads()} threads)")
    if not torch.cuda.is_available():
        assert provenance.device_name() == name


def test_measured_on_carries_device_commit_time_and_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PBS_LAB_COMMIT", "abc123")
    record = provenance.measured_on(torch.device("cpu"))
    assert list(record) == ["device", "commit", "written_at", "versions"]
    assert record["commit"] == "abc123" and record["written_at"].endswith("+00:00")
    assert record["versions"]["torch"] == metadata.version("torch")
    assert set(record["versions"]) == set(provenance.LIBRARIES)


def test_commit_without_override_is_this_checkout() -> None:
    commit = provenance.git_commit()
    assert commit == "unknown" or len(commit.removesuffix("-dirty")) == 40
