"""Sparse-prefill attention as a library: Method = Permuter x Selector x kernel backend.

    from src.attention import build_method, install_method
    method = build_method(cfg)            # a conf/method/*.yaml node
    install_method(model, method)         # transformers' AttentionInterface
    plan = method.plan(q, k, scale=scale, layer_idx=0)   # permuter -> KeyOrder -> selector -> Plan
    out = plan.attend(q, k, v, scale=scale, backend=method.backend)

Importing the package registers every permuter (permute/) and selector (select/) by name in
PERMUTERS and SELECTORS; a new one is a module in its package, its yaml and its test (README:
"Add a method").
"""
from __future__ import annotations

from src.attention import permute, select
from src.attention.components import PERMUTERS, SELECTORS, Permuter, Selector
from src.attention.integration import install_method
from src.attention.key_order import NATURAL_ORDER, KeyOrder
from src.attention.methods import SparsePrefillMethod, build_method
from src.attention.plan import BlockSparsePlan, DensePlan, Plan, VerticalSlashPlan
from src.attention.stats import StatsRecorder

__all__ = [
    "PERMUTERS",
    "SELECTORS",
    "BlockSparsePlan",
    "DensePlan",
    "KeyOrder",
    "NATURAL_ORDER",
    "Permuter",
    "Plan",
    "Selector",
    "SparsePrefillMethod",
    "StatsRecorder",
    "VerticalSlashPlan",
    "build_method",
    "install_method",
    "permute",
    "select",
]
