"""Commands run as a user runs them, in a subprocess from the repository root: `python -m src.run`
and `python -m experiments.<script>`."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A tiny random-weight model on two short RULER samples: a whole run in seconds.
TINY = ["model=tiny_llama", "dataset.tasks=[niah_single_1]", "dataset.num_samples=2", "dataset.length=512"]


CLI_ENV = {"HYDRA_FULL_ERROR": "0", "TQDM_DISABLE": "1"}


def module_env(env: dict[str, str] | None = None, unset: tuple[str, ...] = ()) -> dict[str, str]:
    """This process's environment plus `env`, without the variables named in `unset`."""
    return {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in unset}


def run_module(
    module: str, *args: str, env: dict[str, str] | None = None, unset: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """`python -m <module> <args>` from the repository root, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
        env=module_env(env, unset), timeout=600,
    )


def run_cli(*args: str, unset: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """`python -m src.run <args>` with Hydra's short errors and no progress bars; `unset`: variables
    (TRITON_INTERPRET, which the test session sets on a CPU) the run must not see."""
    return run_module("src.run", *args, env=CLI_ENV, unset=unset)
