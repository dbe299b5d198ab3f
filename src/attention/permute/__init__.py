"""Key permuters: the order keys take before block selection."""
from __future__ import annotations

from src.attention.permute.segmented_key import (
    IdentityPermuter,
    SegmentedKeyPermuter,
    invert_permutation,
    last_query_attention,
    permute_rows,
    sort_within_segments,
)

__all__ = [
    "IdentityPermuter",
    "SegmentedKeyPermuter",
    "invert_permutation",
    "last_query_attention",
    "permute_rows",
    "sort_within_segments",
]
