"""The three parts of every sparse-prefill method and their registries.

    Method = Permuter x Selector x Backend

A permuter decides the key order (or keeps it), a selector turns queries and (permuted) keys into
a Plan, and the plan runs on a kernel backend. Each part is registered by name here and chosen
in `conf/method/*.yaml`, so a new permutation or selector is one file and every combination is a
config.
"""
from __future__ import annotations

from typing import Protocol

import torch

from src.attention.key_order import NATURAL_ORDER, KeyOrder
from src.attention.plan import Plan
from src.registry import Registry


class Permuter(Protocol):
    """Decides the key order for q [B, Hq, L, D] and k [B, Hkv, L, D] (original order).

    segment_size: the segment keys move in (None for a permuter that never permutes); known
    before any call, so a method can check at build time that selection blocks tile it.
    """

    segment_size: int | None

    def __call__(self, q: torch.Tensor, k: torch.Tensor, *, scale: float) -> KeyOrder: ...


class Selector(Protocol):
    """Chooses what to compute for q [B, Hq, L, D] and k [B, Hkv, L, D] in original order, the
    keys read in `key_order` (the natural order unless a permuter decided one).

    layer_idx lets per-layer configurations (MInference's per-head patterns) pick their layer;
    selectors without one ignore it. A selector whose plans run on other kernel ops than the
    block-sparse one names them in a class attribute `attention_ops`, so `build_method` checks
    method.backend against what those ops have.
    """

    def __call__(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        *,
        key_order: KeyOrder = NATURAL_ORDER,
        scale: float,
        layer_idx: int | None = None,
    ) -> Plan: ...


PERMUTERS: Registry[Permuter] = Registry("permuter")
SELECTORS: Registry[Selector] = Registry("selector")
