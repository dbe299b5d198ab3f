"""Where a number was measured: the checkout's commit, the library versions and the device.

Runs (`run.json`) and benchmarks (`results/bench/*.json`) record the same fields through
`measured_on`, spelled the same way, so the report can cite either alike.
"""
from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ("torch", "triton", "transformers")


GENERATED = "results"  # generated tables, figures and committed runs: not code, so not "dirty"
UNKNOWN_ROW_COMMIT = "unknown (row written before rows recorded their commit)"


def git_commit() -> str:
    """The checkout's commit (with '-dirty' if it has uncommitted changes), or 'unknown'.

    Changes under results/ do not make it dirty: `make tables` and runs rewrite files there, and a
    number's provenance is the code that produced it. PBS_LAB_COMMIT, when set, wins: a machine that
    runs a copy of the working tree without its up-to-date git history (the GPU device) is told the
    commit by the caller. An installed copy (no checkout around the package) is 'unknown'.
    """
    if os.environ.get("PBS_LAB_COMMIT"):
        return os.environ["PBS_LAB_COMMIT"]
    if not (ROOT / ".git").exists():
        return "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", f":(exclude){GENERATED}"],
            cwd=ROOT, capture_output=True, text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def contributing_commits(rows: list[dict[str, Any]]) -> list[str]:
    """Every commit that wrote one of `rows` (a resumed run can mix several), in first-seen order."""
    return list(dict.fromkeys(str(row.get("commit") or UNKNOWN_ROW_COMMIT) for row in rows))


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second: when a result file was written, so reports
    can tell the newest result apart even after a checkout reset every file's mtime."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries a measurement depends on ('not installed' if absent)."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def device_name(device: torch.device | None = None) -> str:
    """The device in words: the GPU's name, or 'cpu (<processor>, <N> threads)'.

    Without `device`: the first CUDA device if there is one, else the CPU.
    """
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def measured_on(device: torch.device | None = None) -> dict[str, Any]:
    """The provenance fields every results file carries: device, commit, write time, versions."""
    return {
        "device": device_name(device),
        "commit": git_commit(),
        "written_at": utc_now(),
        "versions": library_versions(),
    }
