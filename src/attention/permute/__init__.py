"""Key permuters: the order keys take before block selection, one module each, registered by
name in PERMUTERS (importing this package registers them all).

    identity       the natural order (every unpermuted method)
    segmented_key  PBS-Attn: keys sorted in segments by the last queries' attention
    random, greedy, random_query, average_query
                   the other strategies of the paper's Fig. 1 / Table 4, so its analysis runs
                   end to end and any method can use them (method.permuter.name=random)

A permuter returns a KeyOrder: the natural order, or a permutation that moves keys only inside
segments of its `segment_size` tokens, so causality between segments survives.
"""
from __future__ import annotations

from src.attention.permute.greedy import GreedyPermuter
from src.attention.permute.identity import IdentityPermuter
from src.attention.permute.query_sorted import AverageQueryPermuter, RandomQueryPermuter
from src.attention.permute.random_order import RandomPermuter
from src.attention.permute.segmented_key import SegmentedKeyPermuter

__all__ = [
    "AverageQueryPermuter",
    "GreedyPermuter",
    "IdentityPermuter",
    "RandomPermuter",
    "RandomQueryPermuter",
    "SegmentedKeyPermuter",
]
