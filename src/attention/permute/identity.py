"""The identity permuter: keys keep their natural order (every unpermuted method's permuter)."""
from __future__ import annotations

import torch

from src.attention.components import PERMUTERS


@PERMUTERS.register("identity")
class IdentityPermuter:
    """Keeps the natural key order."""

    segment_size: int | None = None

    def __call__(self, q: torch.Tensor, k: torch.Tensor, *, scale: float) -> None:
        """No permutation (None means identity to selectors and kernels)."""
        return None
