"""The dense "selector": every causal block, computed by torch SDPA (the reference method)."""
from __future__ import annotations

import torch

from src.attention.components import SELECTORS
from src.attention.key_order import NATURAL_ORDER, KeyOrder
from src.attention.plan import DensePlan


@SELECTORS.register("dense")
class DenseSelector:
    """Selects full causal attention; takes no hyper-parameters."""

    def __call__(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        *,
        key_order: KeyOrder = NATURAL_ORDER,
        scale: float,
        layer_idx: int | None = None,
    ) -> DensePlan:
        """A DensePlan whatever the inputs: dense attention needs no estimate."""
        return DensePlan()
