"""Reading one `conf/<group>/<name>.yaml` outside Hydra (benchmarks, notebooks, tests)."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def group_config(group: str, name: str) -> DictConfig:
    """The node `conf/<group>/<name>.yaml`, with its defaults merged as Hydra does: a sibling
    (`- base`), `_self_`, or a nested group (`- permuter: segmented_key`, placed at that key)."""
    path = CONF_DIR / group / f"{name}.yaml"
    if not path.is_file():
        allowed = ", ".join(sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")))
        raise ValueError(f"unknown {group} {name!r}; allowed: {allowed}")
    cfg = OmegaConf.load(path)
    if "defaults" not in cfg:
        return cfg
    merged = OmegaConf.create()
    own = OmegaConf.create({k: v for k, v in cfg.items() if k != "defaults"})
    for entry in cfg.defaults:
        if isinstance(entry, str):
            merged = OmegaConf.merge(merged, own if entry == "_self_" else group_config(group, entry))
        else:
            ((subgroup, option),) = entry.items()
            merged = OmegaConf.merge(merged, {subgroup: group_config(f"{group}/{subgroup}", option)})
    return merged
