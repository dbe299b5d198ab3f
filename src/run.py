"""Entry point: `python -m src.run [method=...] [dataset=...] [model=...] [-m sweeps]`.

Bad input is one line on stderr and exit code 2, before any model work: the command line is
composed once before Hydra runs (src.configs.check_command_line), each job's config is checked
against its groups' schemas (src.schema), and every ValueError a job raises is printed as one
line. Ctrl-C prints how many samples are saved (exit 130); rerunning resumes. PBS_LAB_DEBUG=1
shows the full traceback instead.
"""
from __future__ import annotations

import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from src.configs import CONF_DIR, check_command_line, register_resolvers
from src.registry import ConfigError
from src.schema import check_config, check_paths, config_dirs

register_resolvers()
INTERRUPTED = 130  # the shell's code for a process ended by SIGINT


def error_line(err: Exception) -> str:
    """A bad-input error as the one line the user sees."""
    kind = "error" if isinstance(err, ConfigError) else f"error ({type(err).__name__})"
    return f"{kind}: {err}"


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    from src.eval.pipeline import run_experiment

    debug = bool(os.environ.get("PBS_LAB_DEBUG"))
    try:
        hydra_cfg = HydraConfig.get()
        check_config(cfg, hydra_cfg.runtime.choices, config_dirs(hydra_cfg, CONF_DIR))
        check_paths(cfg)
        run_experiment(cfg)
    except (ValueError, FileNotFoundError) as err:  # ConfigError and every other bad-input error
        if debug:
            raise
        print(error_line(err), file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as err:  # the pipeline's RunInterrupted says what was saved
        if debug:
            raise
        print(str(err) or f"interrupted; results so far in {cfg.run_dir}; rerun the same command to resume", file=sys.stderr)
        sys.exit(INTERRUPTED)


def cli() -> None:
    """Check the command line, then hand it to Hydra."""
    try:
        check_command_line(sys.argv[1:])
    except ConfigError as err:
        if os.environ.get("PBS_LAB_DEBUG"):
            raise
        print(error_line(err), file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED)
    main()


if __name__ == "__main__":
    cli()
