"""Block selectors: what each method computes, one module each, registered by name in SELECTORS
(importing this package registers them all). Helpers several of them share live in common.py."""
from __future__ import annotations

from src.attention.select.antidiagonal import AntidiagonalSelector
from src.attention.select.dense import DenseSelector
from src.attention.select.flexprefill import FlexPrefillSelector
from src.attention.select.meanpool import MeanPoolSelector
from src.attention.select.vertical_slash import VerticalSlashSelector

__all__ = ["AntidiagonalSelector", "DenseSelector", "FlexPrefillSelector", "MeanPoolSelector", "VerticalSlashSelector"]
