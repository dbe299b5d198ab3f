"""KeyOrder: what a permuter decides, and what selectors, plans and analyses take in one value.

The natural order is KeyOrder() (no permutation). A permuted order moves keys only inside
segments of `segment_size` tokens, so its permutation and its segment size always travel together.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class KeyOrder:
    """The order keys take before block selection.

    key_perm: None (the natural order) or int64 [B, P, L], permuted position -> original key,
        P = Hq (one order per query head) or Hkv (one per kv group); each full segment is
        permuted within itself and the tail past floor(L / S) * S stays in place.
    segment_size: S for a permutation (a multiple of the selection block size), None otherwise.
    """

    key_perm: torch.Tensor | None = None
    segment_size: int | None = None

    def __post_init__(self) -> None:
        if (self.key_perm is None) != (self.segment_size is None):
            raise ValueError(
                f"a key order needs both key_perm and segment_size or neither; got key_perm "
                f"{'None' if self.key_perm is None else tuple(self.key_perm.shape)}, segment_size {self.segment_size}"
            )


NATURAL_ORDER = KeyOrder()
