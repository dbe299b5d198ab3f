"""Block selectors: what each method computes, one module each, registered by name in SELECTORS.

Importing the package imports every module in it, so a new selector is its file (plus its yaml in
conf/method/selector/ and its test): nothing else is edited to register it. Helpers several
selectors share live in common.py, MInference's pattern machinery in minference_patterns.py.
"""
from __future__ import annotations

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
