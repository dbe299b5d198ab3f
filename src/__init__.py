"""pbs-lab: sparse-prefill attention methods (PBS-Attn and its baselines) and their evaluation.

Library use: `src.api` (register_methods, method_config, build_named_method); the README's
"Use it from your own code" runs it on a tiny model.
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _conf_dir() -> Path:
    """The Hydra config directory: `src/conf` in an installed wheel (setup.py maps the checkout's
    top-level conf/ there), the checkout's own `conf/` otherwise (a checkout or `pip install -e .`)."""
    for candidate in (_PACKAGE / "conf", _PACKAGE.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"no Hydra config directory: neither {_PACKAGE / 'conf'} nor {_PACKAGE.parent / 'conf'} holds config.yaml")


CONF_DIR = _conf_dir()
