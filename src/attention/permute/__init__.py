"""Key permuters: the order keys take before block selection, one module each, registered by
name in PERMUTERS (importing this package registers them all).

A permuter returns None (the natural order) or a key permutation that moves keys only inside
segments of its `segment_size` tokens, so causality between segments survives.
"""
from __future__ import annotations

from src.attention.permute.identity import IdentityPermuter
from src.attention.permute.segmented_key import SegmentedKeyPermuter

__all__ = ["IdentityPermuter", "SegmentedKeyPermuter"]
