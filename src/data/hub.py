"""Where a benchmark's records come from: the Hugging Face hub, a local copy, or our offline fixture.

Both LongBench loaders share this: `source` is one of auto|hub|local|fixture. `auto` means the
local directory when one is given, else the hub; when the hub cannot be reached (no network, no
cached copy) it falls back to the bundled fixture and says so with a `HubFallbackWarning` and a
log line, never silently. A bad repository id or a missing local file is an error, not a fallback.
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from huggingface_hub import hf_hub_download
from huggingface_hub.errors import LocalEntryNotFoundError

from src.registry import ConfigError

log = logging.getLogger(__name__)

SOURCES = ("auto", "hub", "local", "fixture")
FIXTURES = Path(__file__).parent / "fixtures"

T = TypeVar("T")


class HubFallbackWarning(UserWarning):
    """The hub was unreachable, so the small offline fixture is used instead of the real data."""


def hub_file(repo_id: str, filename: str) -> Path:
    """Local path of `filename` from the hub dataset repository `repo_id` (downloaded once, cached)."""
    return Path(hf_hub_download(repo_id=repo_id, filename=filename, repo_type="dataset"))


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
    if source not in SOURCES:
        raise ConfigError(f"unknown {benchmark} source {source!r}; allowed: {', '.join(SOURCES)}")
    if source == "local" and not local_dir:
        raise ConfigError(f"{benchmark} source 'local' needs local_dir (a directory of the data files)")
    if source == "fixture":
        return from_fixture()
    if source == "local" or (source == "auto" and local_dir):
        return from_local(Path(str(local_dir)).expanduser())
    try:
        return from_hub()
    except (LocalEntryNotFoundError, ConnectionError, TimeoutError) as err:
        if source == "hub":
            raise
        message = (
            f"{benchmark}: the Hugging Face hub is unreachable ({type(err).__name__}); "
            f"using the small OFFLINE FIXTURE instead of the real benchmark, so scores are not comparable"
        )
        log.warning(message)
        warnings.warn(message, HubFallbackWarning, stacklevel=3)
        return from_fixture()
