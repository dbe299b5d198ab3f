"""Plain-torch reference of the block-column op: the official conversion and a dense masked softmax.

`build_index` walks the slash offsets from the largest down, as MInference's CUDA loop does, for
every (batch, head, query block) at once; `attention` expands the index into each head's token
mask (O(L^2) memory per head: small shapes, and the "torch" backend on CPU).
"""
from __future__ import annotations

import torch

from src.attention.kernels.block_column.layout import BLOCK, BlockColumnIndex, num_query_blocks


def range_block_pairs(block_start: torch.Tensor, q_start: torch.Tensor, q_end: torch.Tensor) -> torch.Tensor:
    """Causal pairs between keys [block_start, block_start + 64) and queries [q_start, q_end),
    q_end <= L; keys at or past q_end see no query. Elementwise over int64 tensors."""
    before = (torch.minimum(block_start + BLOCK, q_start + 1) - block_start).clamp(min=0)
    low = torch.maximum(block_start, q_start + 1)
    count = (torch.minimum(block_start + BLOCK, q_end) - low).clamp(min=0)
    return before * (q_end - q_start) + count * q_end - count * (2 * low + count - 1) // 2


def _paint(coverage: torch.Tensor, block_start: torch.Tensor, emitted: torch.Tensor) -> None:
    """Record the 64-key block at block_start (per lane, where emitted) in the window table.

    The block fills window block_start // 64 from offset r on, and the next window below r (r > 0);
    column nb of the table is a scratch slot for lanes that store nothing.
    """
    num_windows = coverage.shape[-2] - 1
    window, offset = block_start // BLOCK, block_start % BLOCK
    suffix_window = torch.where(emitted & (window < num_windows), window, num_windows)
    coverage[..., 1].scatter_(-1, suffix_window.unsqueeze(-1), offset.to(torch.uint8).unsqueeze(-1))
    prefix = torch.where(offset > 0, window + 1, window)
    prefix_window = torch.where(emitted & (prefix < num_windows), prefix, num_windows)
    prefix_end = torch.where(offset > 0, offset, BLOCK).to(torch.uint8)
    coverage[..., 0].scatter_(-1, prefix_window.unsqueeze(-1), prefix_end.unsqueeze(-1))


def covered(coverage: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Whether each key (int64 [..., nb, N], < L) lies in its query block's ranges, bool [..., nb, N]."""
    window = coverage.gather(-2, (keys // BLOCK).unsqueeze(-1).expand(*keys.shape, 2)).long()
    offset = keys % BLOCK
    return (offset < window[..., 0]) | (offset >= window[..., 1])


def column_mask(index: BlockColumnIndex) -> torch.Tensor:
    """bool [B, H, nb, NV]: which of the head's columns each query block computes as a column."""
    nb = num_query_blocks(index.length)
    columns = index.columns.long().unsqueeze(-2).expand(*index.columns.shape[:2], nb, -1)
    block_end = ((torch.arange(nb, device=columns.device) + 1) * BLOCK).clamp(max=index.length)
    in_reach = (columns < index.range_end.long().unsqueeze(-1)) & (columns < block_end[:, None])
    return in_reach & ~covered(index.coverage, columns.clamp(max=index.length - 1))


def build_index(columns: torch.Tensor, slashes: torch.Tensor, length: int) -> BlockColumnIndex:
    """The index of sorted columns and descending slashes (see `block_column_index`)."""
    batch, heads, num_slashes = slashes.shape
    nb = num_query_blocks(length)
    device = slashes.device
    q_start = torch.arange(nb, device=device) * BLOCK
    q_end = q_start + BLOCK
    q_end_in = q_end.clamp(max=length)
    started = torch.zeros(batch, heads, nb, dtype=torch.bool, device=device)
    range_end = torch.zeros(batch, heads, nb, dtype=torch.long, device=device)
    pairs = torch.zeros(batch, heads, nb, dtype=torch.long, device=device)
    coverage = torch.zeros(batch, heads, nb, nb + 1, 2, dtype=torch.uint8, device=device)
    coverage[..., 1] = BLOCK
    for rank in range(num_slashes):
        offset = slashes[..., rank : rank + 1].long()
        active = (offset >= 0) & (offset < q_end)
        window_end = (q_end - offset).clamp(min=BLOCK)
        opens = active & (~started | (window_end > range_end + BLOCK))
        grows = active & ~opens & (window_end > range_end)
        block_start = torch.where(opens, window_end - BLOCK, range_end)
        range_end = torch.where(opens, window_end, torch.where(grows, range_end + BLOCK, range_end))
        started |= active
        emitted = opens | grows
        _paint(coverage, block_start, emitted)
        pairs += torch.where(emitted, range_block_pairs(block_start, q_start, q_end_in), 0)
    range_end = torch.where(started, range_end, q_end)
    coverage = coverage[..., :nb, :].contiguous()
    index = BlockColumnIndex(length, coverage, range_end.to(torch.int32), columns, pairs.to(torch.int32))
    is_column = column_mask(index)
    column_pairs = (q_end_in[:, None] - torch.maximum(q_start[:, None], index.columns.long().unsqueeze(-2))).clamp(min=0)
    pairs += torch.where(is_column, column_pairs, 0).sum(-1)
    return BlockColumnIndex(length, coverage, index.range_end, columns, pairs.to(torch.int32))


def computed_mask(index: BlockColumnIndex, b: int, h: int) -> torch.Tensor:
    """bool [L, L] for one (batch, head): query i computes key j (causal, range or column)."""
    length = index.length
    nb = num_query_blocks(length)
    keys = torch.arange(length, device=index.coverage.device).expand(nb, -1)
    allowed = covered(index.coverage[b, h], keys)
    columns = index.columns[b, h].long()
    is_column = column_mask(index)[b, h]
    blocks, slots = is_column.nonzero(as_tuple=True)
    allowed[blocks, columns[slots]] = True
    allowed = allowed.repeat_interleave(BLOCK, dim=0)[:length]
    return allowed & torch.ones(length, length, dtype=torch.bool, device=allowed.device).tril()


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, index: BlockColumnIndex, *, scale: float) -> torch.Tensor:
    """Masked softmax in fp32 per (batch, head) over `computed_mask`; rows seeing nothing are zeros."""
    batch, q_heads, _, _ = q.shape
    group = q_heads // k.shape[1]
    out = torch.empty_like(q)
    for b in range(batch):
        for h in range(q_heads):
            allowed = computed_mask(index, b, h)
            scores = (q[b, h].float() @ k[b, h // group].float().T) * scale
            weights = torch.nan_to_num(torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1), nan=0.0)
            out[b, h] = (weights @ v[b, h // group].float()).to(q.dtype)
    return out
