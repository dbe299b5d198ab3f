"""Method configs for the attention tests, composed by Hydra from conf/ exactly as a run composes them."""
from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from src.configs import compose_config


def method_config(name: str, *group_overrides: str, **values: object) -> DictConfig:
    """The `method` node of `python -m src.run method=<name> <group_overrides>` (e.g.
    "method/permuter=random"), then `values` set on it by dotted key (new keys allowed)."""
    cfg = compose_config({"method": name}, group_overrides).method
    OmegaConf.set_struct(cfg, False)
    for key, value in values.items():
        OmegaConf.update(cfg, key, value)
    return cfg
