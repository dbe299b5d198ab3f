"""The identity permuter: keys keep their natural order (every unpermuted method's permuter)."""
from __future__ import annotations

import torch

from src.attention.components import PERMUTERS
from src.attention.key_order import NATURAL_ORDER, KeyOrder


@PERMUTERS.register("identity")
class IdentityPermuter:
    """Keeps the natural key order."""

    segment_size: int | None = None

    def __call__(self, q: torch.Tensor, k: torch.Tensor, *, scale: float) -> KeyOrder:
        """The natural order, whatever the inputs."""
        return NATURAL_ORDER
