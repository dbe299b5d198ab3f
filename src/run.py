"""Entry point: `python -m src.run [method=...] [dataset=...] [model=...] [-m sweeps]`."""
from __future__ import annotations

import os
import sys

import hydra
from omegaconf import DictConfig

from src import CONF_DIR
from src.configs import register_resolvers
from src.registry import ConfigError

register_resolvers()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    from src.eval.pipeline import run_experiment

    try:
        run_experiment(cfg)
    except ValueError as err:  # ConfigError and every other bad-input error: one line, no trace
        if os.environ.get("PBS_LAB_DEBUG"):
            raise
        kind = "error" if isinstance(err, ConfigError) else f"error ({type(err).__name__})"
        print(f"{kind}: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
