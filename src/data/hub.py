"""Where a benchmark's records come from: the Hugging Face hub, a local copy, or our offline fixture.

Both LongBench loaders share this: `source` is one of auto|hub|local|fixture.
- `fixture`: our small synthetic samples (a few per task), chosen explicitly; its results are
  labelled `<label>-fixture` (`source_label`) in the run folder, run.json, every table and figure.
- `auto`: `local_dir` when one is given; else the hub when it is reachable; else, offline
  (`HF_HUB_OFFLINE=1`, or the hub unreachable on one quick probe, made once per process), the
  fixture straight away, without download retries, said once in one log line. The choice is made
  when the config is composed (the label and the run folder need it) and the loader makes the same
  one, so a job's label and its data always agree.
- `hub`: the hub (only its cached copy when offline); offline with no cached copy is an error.
A bad repository id or a missing local file is an error, never a fallback.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import httpx
from huggingface_hub import constants, hf_hub_download
from huggingface_hub.errors import LocalEntryNotFoundError

from src.registry import ConfigError

log = logging.getLogger(__name__)

SOURCES = ("auto", "hub", "local", "fixture")
GENERATED = "generated"  # the source of a dataset config without a `source` key: its loader makes the samples
FIXTURES = Path(__file__).parent / "fixtures"
PROBE_TIMEOUT_S = 3.0

T = TypeVar("T")


def log_hub_lines_once() -> None:
    """huggingface_hub prints through a handler of its own and also passes its records on to the
    root logger, so under Hydra (which logs the root) every retry line printed twice: drop its
    handler, so its lines print once, in the run's format and its log file."""
    for handler in list(logging.getLogger("huggingface_hub").handlers):
        logging.getLogger("huggingface_hub").removeHandler(handler)


log_hub_lines_once()


def offline_reason() -> str | None:
    """Why the hub cannot be used now ('HF_HUB_OFFLINE=1', or the failed probe); None when it can.

    The probe (one HEAD request to the hub's endpoint, proxies honoured, no retries) runs once per
    process; HF_HUB_OFFLINE is read on every call.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE"):
        return "HF_HUB_OFFLINE=1"
    return _probe(constants.ENDPOINT)


@lru_cache(maxsize=None)
def _probe(endpoint: str) -> str | None:
    try:
        httpx.head(endpoint, timeout=PROBE_TIMEOUT_S)
    except httpx.HTTPError as err:
        return f"{endpoint} unreachable: {type(err).__name__}"
    return None


def resolve_source(source: str, local_dir: str | None, benchmark: str = "dataset") -> str:
    """What `source` means here and now: hub, local or fixture (`auto` resolved as the module says)."""
    if source not in SOURCES:
        raise ConfigError(f"unknown {benchmark} source {source!r}; allowed: {', '.join(SOURCES)}")
    if source != "auto":
        return source
    if local_dir:
        return "local"
    return "fixture" if offline_reason() else "hub"


def resolved_source(dataset: Mapping[str, Any]) -> str:
    """Where a dataset config's samples come from: generated (no `source` key), hub, local or fixture."""
    if "source" not in dataset:
        return GENERATED
    return resolve_source(str(dataset["source"]), dataset.get("local_dir"), str(dataset.get("name", "dataset")))


def source_label(label: str, source: str, local_dir: str | None = None) -> str:
    """`label`, or `<label>-fixture` when `source` resolves to the fixture: the `${source_label:...}`
    resolver of conf/dataset/*.yaml, so that the run folder says it."""
    fixture = resolve_source(str(source), local_dir) == "fixture"
    return f"{label}-fixture" if fixture and not label.endswith("-fixture") else label


def hub_file(repo_id: str, filename: str) -> Path:
    """Local path of `filename` from the hub dataset repository `repo_id` (downloaded once, cached);
    offline only the cache is read, without retries, and a file not in it is a ConfigError."""
    offline = offline_reason()
    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename, repo_type="dataset", local_files_only=offline is not None))
    except LocalEntryNotFoundError:
        if offline is None:
            raise
        raise ConfigError(
            f"{repo_id}/{filename}: offline ({offline}) and not in the local hub cache; use dataset.source=local "
            f"with dataset.local_dir, or dataset.source=fixture (our small synthetic samples)"
        ) from None


def extracted_zip(archive: Path) -> Path:
    """Directory holding the extracted contents of `archive`, next to it in the cache (made once)."""
    target = archive.parent / f"{archive.name}.extracted"
    if target.is_dir():
        return target
    staging = Path(tempfile.mkdtemp(prefix=f".{archive.name}.", dir=archive.parent))
    try:
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(staging)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records of a .jsonl file (one object a line) or a .json file (a list of objects)."""
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        records = json.loads(text)
        if not isinstance(records, list):
            raise ValueError(f"{path} must hold a JSON list of records, got {type(records).__name__}")
        return records
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def load_from_source(
    *,
    benchmark: str,
    source: str,
    local_dir: str | None,
    from_local: Callable[[Path], T],
    from_hub: Callable[[], T],
    from_fixture: Callable[[], T],
) -> T:
    """Load `benchmark` records from the chosen source; see the module docstring for the policy."""
    if source == "local" and not local_dir:
        raise ConfigError(f"{benchmark} source 'local' needs local_dir (a directory of the data files)")
    chosen = resolve_source(source, local_dir, benchmark)
    if chosen == "fixture":
        if source == "auto":
            log.warning("%s: offline (%s): using our small synthetic OFFLINE FIXTURE (label '-fixture'); "
                        "its scores are not %s scores", benchmark, offline_reason(), benchmark)
        return from_fixture()
    if chosen == "local":
        return from_local(Path(str(local_dir)).expanduser())
    return from_hub()
