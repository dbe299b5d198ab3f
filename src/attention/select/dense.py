"""The dense "selector": every causal block, computed by torch SDPA (the reference method)."""
from __future__ import annotations

import torch

from src.attention.components import SELECTORS
from src.attention.plan import DensePlan


@SELECTORS.register("dense")
class DenseSelector:
    """Selects full causal attention; takes no hyper-parameters."""

    def __call__(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        *,
        key_perm: torch.Tensor | None,
        segment_size: int | None,
        scale: float,
        layer_idx: int | None = None,
    ) -> DensePlan:
        """A DensePlan whatever the inputs: dense attention needs no estimate."""
        return DensePlan()
