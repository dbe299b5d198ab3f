"""PBS-Attn's estimation: key permutation and mean-pooling block selection."""
from __future__ import annotations

from src.attention.kernels.pbs_estimate.triton import (
    PermutationLaunch,
    pool_blocks_triton,
    segment_permutation_triton,
    threshold_select_triton,
    triton_unsupported,
)

__all__ = [
    "PermutationLaunch",
    "pool_blocks_triton",
    "segment_permutation_triton",
    "threshold_select_triton",
    "triton_unsupported",
]
