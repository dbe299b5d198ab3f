"""The repository's `conf/` composed by Hydra itself, for code that is not a `@hydra.main` app
(benchmark scripts, notebooks, tests): the same defaults lists, the same override grammar.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from src import CONF_DIR
from src.data.hub import source_label
from src.registry import ConfigError


def register_resolvers() -> None:
    """The resolvers conf/ uses: `${or:value,default}` (default when value is empty) and
    `${source_label:label,source,local_dir}` (label + '-fixture' when the data is our offline fixture)."""
    OmegaConf.register_new_resolver("or", lambda value, default: value or default, replace=True)
    OmegaConf.register_new_resolver("source_label", source_label, replace=True)


def compose_config(
    choices: Mapping[str, str] | None = None, overrides: Sequence[str] = (), *, hydra_node: bool = False
) -> DictConfig:
    """The config `python -m src.run <group>=<choice>... <overrides>...` would run.

    choices: config group -> option, e.g. {"model": "tiny_llama", "method": "pbs"}.
    overrides: Hydra command-line overrides, e.g. ["method.threshold=0.5"].
    hydra_node: keep the `hydra` node (sweeper, launcher) in the result.
    An unknown choice or a bad override is a ConfigError of one line. Must not be called while
    another Hydra initialisation is active (inside a `@hydra.main` app).
    """
    choices = dict(choices or {})
    register_resolvers()
    arguments = [*(f"{group}={name}" for group, name in choices.items()), *overrides]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        for group, name in choices.items():
            allowed = loader.get_group_options(group)
            if name not in allowed:
                raise ConfigError(f"unknown {group} {name!r}; allowed: {', '.join(allowed) or '(no such config group)'}")
        try:
            return compose("config", overrides=arguments, return_hydra_config=hydra_node)
        except HydraException as err:
            raise ConfigError(" ".join(str(err).split())) from None
