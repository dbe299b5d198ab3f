"""The methods as a library: every `conf/method/*.yaml` as a transformers attention implementation.

    from src.api import register_methods
    methods = register_methods(threshold=0.8)      # "pbs", "pbs_plus", "xattention", ... registered
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="pbs")
    model.generate(...)                             # prompts' prefills run PBS, decode steps SDPA
    methods["pbs"].stats.summary()                  # density per layer and head of the last prefill

A method's config is composed by Hydra from the same YAML a run uses (`method_config`), so a
library user and `python -m src.run method=<name> method.<key>=<value>` run the same method.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src import CONF_DIR
from src.attention.integration import register_attention
from src.attention.methods import SparsePrefillMethod, build_method
from src.configs import compose_config
from src.registry import ConfigError


_MISSING = object()


def _has(cfg: DictConfig, key: str) -> bool:
    """Whether the method node has the (dotted) parameter `key`."""
    return OmegaConf.select(cfg, key, default=_MISSING) is not _MISSING


def method_names() -> list[str]:
    """Every method a run can choose (`method=<name>`): the files of conf/method/."""
    return sorted(path.stem for path in (CONF_DIR / "method").glob("*.yaml"))


def method_config(name: str, overrides: Mapping[str, Any] | None = None, /, **values: Any) -> DictConfig:
    """The resolved `method` node of `python -m src.run method=<name>`, with `overrides` and
    `values` (e.g. threshold=0.8, block_size=64; a dotted key reaches a part:
    {"selector.force_sink": False}) set on it. A key the method does not have is a ConfigError."""
    return _with_overrides(name, _composed(name), {**(overrides or {}), **values})


def _composed(name: str) -> DictConfig:
    allowed = method_names()
    if name not in allowed:
        raise ConfigError(f"unknown method {name!r}; allowed: {', '.join(allowed)}")
    return compose_config({"method": name}).method


def _with_overrides(name: str, cfg: DictConfig, overrides: Mapping[str, Any]) -> DictConfig:
    for key, value in overrides.items():
        if not _has(cfg, key):
            keys = ", ".join(k for k, v in cfg.items() if not isinstance(v, DictConfig))
            raise ConfigError(f"method {name!r} has no parameter {key!r}; its parameters: {keys}")
        OmegaConf.update(cfg, key, value, merge=False)
    return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))


def register_method(
    name: str, overrides: Mapping[str, Any] | None = None, /, *, as_name: str | None = None, **values: Any
) -> SparsePrefillMethod:
    """Build method `name` (see `method_config` for the overrides) and register it as the attention
    implementation `as_name` (default: `name`); returns the method, whose `stats` record each prefill."""
    method = build_method(method_config(name, overrides, **values))
    register_attention(as_name or name, method)
    return method


def register_methods(overrides: Mapping[str, Any] | None = None, /, **values: Any) -> dict[str, SparsePrefillMethod]:
    """Register every method under its own name (`attn_implementation="pbs"`, ...); returns them by name.

    Each override goes to every method that has the parameter (threshold=0.8 reaches pbs, pbs_plus,
    xattention and meanpooling, not flexprefill, whose budget is gamma); one that no method has is
    a ConfigError, so a misspelt key never passes silently.
    """
    wanted = {**(overrides or {}), **values}
    configs = {name: _composed(name) for name in method_names()}
    unused = [key for key in wanted if not any(_has(cfg, key) for cfg in configs.values())]
    if unused:
        raise ConfigError(f"no method has the parameter(s) {', '.join(map(repr, unused))}; methods: {', '.join(configs)}")
    methods = {}
    for name, cfg in configs.items():
        methods[name] = build_method(_with_overrides(name, cfg, {k: v for k, v in wanted.items() if _has(cfg, k)}))
        register_attention(name, methods[name])
    return methods
