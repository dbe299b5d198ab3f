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


def test_changes_under_results_do_not_make_the_commit_dirty(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "table.md").write_text("old\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "-A")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    monkeypatch.delenv("PBS_LAB_COMMIT", raising=False)
    monkeypatch.setattr(provenance, "ROOT", tmp_path)
    (tmp_path / "results" / "table.md").write_text("regenerated\n")
    assert not provenance.git_commit().endswith("-dirty")
    (tmp_path / "code.py").write_text("x = 2\n")
    assert provenance.git_commit().endswith("-dirty")


def test_an_installed_copy_without_a_checkout_is_unknown(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PBS_LAB_COMMIT", raising=False)
    monkeypatch.setattr(provenance, "ROOT", tmp_path)
    assert provenance.git_commit() == "unknown"


def test_contributing_commits_in_first_seen_order() -> None:
    rows = [{"commit": "b"}, {"commit": "a"}, {"commit": "b"}, {}]
    assert provenance.contributing_commits(rows) == ["b", "a", provenance.UNKNOWN_ROW_COMMIT]
