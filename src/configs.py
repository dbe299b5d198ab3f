"""The repository's `conf/` composed by Hydra itself, for code that is not a `@hydra.main` app
(benchmark scripts, notebooks, tests): the same defaults lists, the same override grammar.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from src import CONF_DIR
from src.data.hub import source_label
from src.registry import ConfigError
from src.schema import check_config, check_paths, config_dirs


def register_resolvers() -> None:
    """The resolvers conf/ uses: `${or:value,default}` (default when value is empty) and
    `${source_label:label,source,local_dir}` (label + '-fixture' when the data is our offline fixture)."""
    OmegaConf.register_new_resolver("or", lambda value, default: value or default, replace=True)
    OmegaConf.register_new_resolver("source_label", source_label, replace=True)


def group_options(group: str) -> list[str]:
    """The options Hydra has for a config group (conf/ and its plugins), [] for no such group."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return GlobalHydra.instance().config_loader().get_group_options(group)


def check_choice_exists(group: str, option: str) -> None:
    """ConfigError "unknown <group> <option>; allowed: ..." unless the group has that option."""
    allowed = group_options(group)
    if option not in allowed:
        raise ConfigError(f"unknown {group} {option!r}; allowed: {', '.join(allowed) or '(no such config group)'}")


def compose_config(
    choices: Mapping[str, str] | None = None, overrides: Sequence[str] = (), *, hydra_node: bool = False
) -> DictConfig:
    """The config `python -m src.run <group>=<choice>... <overrides>...` would run.

    choices: config group -> option, e.g. {"model": "tiny_llama", "method": "pbs"}.
    overrides: Hydra command-line overrides, e.g. ["method.threshold=0.5"].
    hydra_node: keep the `hydra` node (sweeper, launcher) in the result.
    An unknown choice, a bad override or a key or value the group's schema does not allow
    (src/schema.py) is a ConfigError of one line. Must not be called while another Hydra
    initialisation is active (inside a `@hydra.main` app).
    """
    choices = dict(choices or {})
    register_resolvers()
    arguments = [*(f"{group}={name}" for group, name in choices.items()), *overrides]
    for group, name in choices.items():
        check_choice_exists(group, name)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        try:
            cfg = compose("config", overrides=arguments, return_hydra_config=True)
        except HydraException as err:
            raise ConfigError(" ".join(str(err).split())) from None
    check_config(cfg, cfg.hydra.runtime.choices, config_dirs(cfg.hydra, CONF_DIR))
    if not hydra_node:
        with open_dict(cfg):
            del cfg["hydra"]
    return cfg


# Hydra's own flags that take a value, and those after which no job is composed from conf/.
_VALUE_FLAGS = {"-c", "--cfg", "-p", "--package"}
_OTHER_RUNS = {"-h", "--help", "--hydra-help", "--info", "-cp", "--config-path", "-cn", "--config-name",
               "-cd", "--config-dir", "--experimental-rerun", "-sc", "--shell-completion"}


def check_command_line(args: Sequence[str]) -> None:
    """Compose the job `python -m src.run <args>` describes once, before Hydra runs it, so that an
    unknown group option (in a sweep too: `-m method=dense,nope`), a bad override, a key the
    schema does not allow or a missing data path is one ConfigError line instead of Hydra's
    listing or a traceback.

    A sweep is composed at its first value; every value of a config-group sweep is checked.
    Overrides of the `hydra` node, and runs with another config or Hydra's own output (--help,
    --info, -cn, ...), are left to Hydra.
    """
    if _OTHER_RUNS & set(args):
        return
    overrides, skip = [], False
    for arg in args:
        if not skip and not arg.startswith("-"):
            overrides.append(arg)
        skip = arg in _VALUE_FLAGS
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as err:
        raise ConfigError(" ".join(str(err).split())) from None
    composed = []
    for text, override in zip(overrides, parsed):
        key = override.key_or_group
        if key.split("/")[0].split(".")[0] == "hydra":
            continue
        try:
            values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.value()]
        except HydraException:  # interval() or glob() sweeps: Hydra resolves them per job
            continue
        if (CONF_DIR / key).is_dir():
            for value in values:
                if isinstance(value, str):
                    check_choice_exists(key, value)
        composed.append(text if not override.is_sweep_override() else f"{text.split('=', 1)[0]}={values[0]}")
    check_paths(compose_config(overrides=composed))
