"""Checks several test modules share, kept here so every copy asserts exactly the same thing."""
from __future__ import annotations

import torch

from src.attention.components import Selector


def assert_cuda_selection_agrees_with_cpu(
    selector: Selector, q: torch.Tensor, k: torch.Tensor, *, scale: float
) -> None:
    """Unpermuted selection on CUDA matches the CPU one in more than 99% of the blocks.

    Not all of them: GPU reductions sum in another order, so a block whose score sits right at a
    threshold may flip.
    """
    cpu = selector(q, k, key_perm=None, segment_size=None, scale=scale).block_mask
    gpu = selector(q.cuda(), k.cuda(), key_perm=None, segment_size=None, scale=scale).block_mask
    assert gpu.is_cuda and (gpu.cpu() == cpu).float().mean() > 0.99
