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

from src.attention.plan import Plan
from src.registry import Registry


class Permuter(Protocol):
    """Returns key_perm int64 [B, Hq or Hkv, L] (permuted position -> original), or None."""

    segment_size: int | None

    def __call__(self, q: torch.Tensor, k: torch.Tensor, *, scale: float) -> torch.Tensor | None: ...


class Selector(Protocol):
    """Chooses what to compute. q: [B, Hq, L, D]; k: [B, Hkv, L, D] in original order.

    layer_idx lets per-layer configurations (MInference's per-head patterns) pick their layer;
    selectors without one ignore it.
    """

    def __call__(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        *,
        key_perm: torch.Tensor | None,
        segment_size: int | None,
        scale: float,
        layer_idx: int | None = None,
    ) -> Plan: ...


PERMUTERS: Registry[Permuter] = Registry("permuter")
SELECTORS: Registry[Selector] = Registry("selector")
