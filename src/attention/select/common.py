"""What several selectors share: the input check, and the diagonal sums and top-k picks that
FlexPrefill's and MInference's estimates both make from their last queries' attention.

Torch operations of the whole package (blocks, layouts, pooling, softmax) live in
`src/attention/ops.py`; this module holds only what is particular to selection.
"""
from __future__ import annotations

import torch

from src.attention.key_order import KeyOrder


def check_inputs(q: torch.Tensor, k: torch.Tensor, key_order: KeyOrder, block_size: int | None = None) -> None:
    """Raise a one-line ValueError when q, k, the key order and the selection blocks (block_size,
    None for a selector without blocks) do not fit together."""
    batch, q_heads, length, head_dim = q.shape
    if k.dim() != 4 or k.shape[0] != batch or k.shape[2:] != (length, head_dim) or q_heads % k.shape[1]:
        raise ValueError(
            f"k shape {tuple(k.shape)} does not fit q {tuple(q.shape)}: need same B, L, D and Hq a multiple of Hkv"
        )
    key_perm = key_order.key_perm
    if key_perm is not None and key_perm.shape not in ((batch, q_heads, length), (batch, k.shape[1], length)):
        raise ValueError(
            f"key_perm shape {tuple(key_perm.shape)} must be [{batch}, {q_heads} or {k.shape[1]}, {length}]"
        )
    segment_size = key_order.segment_size
    if block_size is not None and segment_size is not None and segment_size % block_size:
        raise ValueError(f"segment_size {segment_size} must be a multiple of block_size {block_size}")


def diagonal_sums(probs: torch.Tensor) -> torch.Tensor:
    """Attention of the last n queries summed along each diagonal, indexed like FlexPrefill.

    probs: [..., n, L], row r being query L-n+r. Entry c of the result [..., L] is the sum over
    the diagonal with offset (query - key) = L-1-c, so c = L-1 is the main diagonal. Rows are
    reversed and skewed so each diagonal becomes a column; memory stays O(n * L).
    """
    n, length = probs.shape[-2:]
    rows = torch.nn.functional.pad(probs.flip(-2), (0, n))
    skewed = rows.flatten(-2)[..., : n * (length + n - 1)].unflatten(-1, (n, length + n - 1))
    return skewed.sum(-2)[..., :length]


def top_ranked(scores: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Bool mask of each row's `counts` largest entries; scores [..., n], counts [...]."""
    order = scores.argsort(dim=-1, descending=True)
    ranks = torch.empty_like(order).scatter_(-1, order, torch.arange(scores.shape[-1], device=scores.device).expand_as(order))
    return ranks < counts[..., None]
