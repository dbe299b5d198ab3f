"""Each config group's schema, read from the group's own YAML defaults, so a typo is an error.

Hydra refuses `method.treshold=0.5` (the key is not in the config) but appends it with a `+`, and
the run would go on with the default threshold. `check_config` closes that gap for every group
(model, method, method/permuter, method/selector, dataset, eval, logger), before any model work:

- keys: a node may hold the keys of its chosen option's YAML file (`conf/<group>/<option>.yaml`;
  a default sub-group such as `permuter:` counts as a key), plus, for a node built by a registry
  (dataset, logger, permuter, selector), its registered factory's parameters. Nested nodes whose
  YAML default is a non-empty mapping (model.load) are checked the same way; an empty default
  mapping (model.config_overrides: {}) is free-form.
- types: a value whose YAML default is a plain bool, number, string, list or mapping must be one
  too (an interpolation or a null default allows anything); `dataset.length=abc` is an error.
- paths (`check_paths`, where the job runs): a set dataset key named `*_dir` or `*_path` must name
  an existing file or directory.

The schema is the YAML itself (and the factories' signatures), so a key added to a YAML file or
a constructor is allowed with no list here to edit. Errors are ConfigError, one line each.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from src.registry import ConfigError, Registry

GROUPS = ("model", "method", "method/permuter", "method/selector", "dataset", "eval", "logger")
PATH_SUFFIXES = ("_dir", "_path")


def registries() -> dict[str, Registry[Any]]:
    """The registry that builds each registry-backed group's node from its `name`."""
    from src.attention.components import PERMUTERS, SELECTORS
    from src.data import DATASETS
    from src.eval.loggers import LOGGERS

    return {"method/permuter": PERMUTERS, "method/selector": SELECTORS, "dataset": DATASETS, "logger": LOGGERS}


def option_file(conf_dirs: Sequence[Path], group: str, option: str) -> Path | None:
    """conf/<group>/<option>.yaml in the first config directory that has it (None: none does,
    e.g. an option a plugin package ships)."""
    return next((d / group / f"{option}.yaml" for d in conf_dirs if (d / group / f"{option}.yaml").is_file()), None)


def option_defaults(conf_dirs: Sequence[Path], group: str, option: str) -> tuple[dict[str, Any], list[str]] | None:
    """The raw (unresolved) keys and values of the option's YAML file without its defaults list,
    merged over the same-group options that list extends (smollm2_rope4x: smollm2), and the
    sub-groups it names (their nodes are keys of this one); None when no directory has the file."""
    path = option_file(conf_dirs, group, option)
    if path is None:
        return None
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    merged, subgroups = OmegaConf.create(), []
    for entry in raw.pop("defaults", []):
        if isinstance(entry, dict):
            subgroups += [name for name in entry if "/" not in name]
        elif entry != "_self_":
            parent = option_defaults(conf_dirs, group, entry) or ({}, [])
            merged, subgroups = OmegaConf.merge(merged, parent[0]), subgroups + parent[1]
    return OmegaConf.to_container(OmegaConf.merge(merged, raw), resolve=False), subgroups


def factory_parameters(registry: Registry[Any], name: Any) -> list[str]:
    """The keyword parameters the factory registered as `name` takes (ConfigError for a bad name)."""
    return list(inspect.signature(registry.get(name)).parameters)


def _kind(default: Any) -> tuple[tuple[type, ...], str] | None:
    """The types a value with this YAML default may have and their name; None: anything."""
    if default is None or (isinstance(default, str) and "${" in default):
        return None
    if isinstance(default, bool):
        return (bool,), "true or false"
    if isinstance(default, (int, float)):
        return (int, float), "a number"
    for types, name in (((str,), "a string"), ((list,), "a list"), ((dict,), "a mapping")):
        if isinstance(default, types):
            return types, name
    return None


def check_node(path: str, node: Mapping[str, Any], defaults: Mapping[str, Any], extra: list[str] = ()) -> None:
    """ConfigError for the first key of `node` (resolved) that `defaults` (raw YAML) and `extra`
    do not allow, or whose value does not have its default's type; recurses into mappings whose
    default is a non-empty mapping."""
    allowed = list(defaults) + [key for key in extra if key not in defaults]
    for key, value in node.items():
        if key not in allowed:
            raise ConfigError(f"unknown key {path}.{key}; allowed: {', '.join(allowed)}")
        if key not in defaults:
            continue
        default = defaults[key]
        kind = _kind(default)
        if kind is not None and (not isinstance(value, kind[0]) or (isinstance(value, bool) and bool not in kind[0])):
            raise ConfigError(f"{path}.{key} must be {kind[1]} (default {default!r}), got {value!r}")
        if isinstance(default, dict) and default and isinstance(value, dict):
            check_node(f"{path}.{key}", value, default)


def check_paths(cfg: DictConfig) -> None:
    """ConfigError for a set `dataset.*_dir` / `dataset.*_path` naming nothing on disk: a check
    for the machine that runs the job (composing a config elsewhere does not need the data)."""
    path, node = "dataset", OmegaConf.to_container(cfg.dataset, resolve=True)
    for key, value in node.items():
        if key.endswith(PATH_SUFFIXES) and isinstance(value, str) and not Path(value).expanduser().exists():
            raise ConfigError(f"{path}.{key} {value!r} does not exist; allowed: an existing file or directory, or null")


def group_node(cfg: DictConfig, group: str) -> Any:
    """The node of `group` ("method/selector" -> cfg.method.selector), None when absent."""
    node: Any = cfg
    for part in group.split("/"):
        node = node.get(part) if isinstance(node, DictConfig) else None
    return node


def config_dirs(cfg_hydra: Any, conf_dir: Path) -> list[Path]:
    """conf/ and the `file://` directories of Hydra's search path (hydra.searchpath), where the
    chosen options' YAML files are."""
    extra = [str(entry).removeprefix("file://") for entry in (cfg_hydra.searchpath or []) if str(entry).startswith("file://")]
    return [conf_dir, *map(Path, extra)]


def check_config(cfg: DictConfig, choices: Mapping[str, Any], conf_dirs: Sequence[Path]) -> None:
    """Check every group of a composed config against its chosen option (`choices`: Hydra's
    runtime choices, group -> option; its YAML file looked up in `conf_dirs`) and the factory it
    is built by; see the module docstring. A group whose file is not found is checked against its
    factory alone (when it has one)."""
    builders = registries()
    for group in GROUPS:
        option, node = choices.get(group), group_node(cfg, group)
        if option is None or not isinstance(node, DictConfig):
            continue
        found = option_defaults(conf_dirs, group, option)
        if found is None and group not in builders:
            continue
        defaults, subgroups = found or ({"name": None}, [])
        resolved = OmegaConf.to_container(node, resolve=True)
        extra = subgroups
        if group in builders and "name" in resolved:
            extra = extra + factory_parameters(builders[group], resolved["name"])
        check_node(group.replace("/", "."), {k: v for k, v in resolved.items() if k not in subgroups}, defaults, extra)
