"""Method configs for the attention tests, composed by Hydra from conf/ exactly as a run composes them."""
from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

CONF = Path(__file__).resolve().parents[2] / "conf"


def method_config(name: str, *group_overrides: str, **values: object) -> DictConfig:
    """The `method` node of `python -m src.run method=<name> <group_overrides>` (e.g.
    "method/permuter=random"), then `values` set on it by dotted key (new keys allowed)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"method={name}", *group_overrides]).method
    OmegaConf.set_struct(cfg, False)
    for key, value in values.items():
        OmegaConf.update(cfg, key, value)
    return cfg
