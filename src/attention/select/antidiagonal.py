"""XAttention's antidiagonal block scoring and threshold selection (Xu et al., 2025).

Each stride x stride tile of the attention logits is summarised by the sum along one of its
antidiagonals, which touches every query row and every key column of the tile once. Regrouping
keys as concat_j K[j::S] and queries as concat_j Q[S-1-j::S] (x-attention's "inverse" mode)
turns all those sums into one matmul of L/S x L/S. A softmax over each strided query row,
summed into block_size x block_size blocks, estimates every block's attention mass, and each
query block keeps the fewest key blocks reaching `threshold` of its mass, its sink and diagonal
blocks counted first (x-attention's find_blocks_chunked).

x-attention selects chunk by chunk of query blocks (chunk_size tokens), and in the first chunk
its find_blocks_chunked differs (first_chunk "official", the default): the chunk's diagonal is
written over the forced sink column, so the sink is counted like any other block (and kept all
the same, through the index-0 padding of its scatter), and its cumulative sum, built for two
forced blocks, is shifted by one place, so one more top block is kept than the threshold needs.
first_chunk "uniform" applies the later chunks' rule everywhere (this code's earlier rule).
Not reproduced: x-attention's torch path masks every key before the current chunk when L is an
exact multiple of chunk_size (`causal_mask[..., -0:]` is the whole row), losing earlier chunks'
keys; its Triton path does not, and neither does either backend here.

With a key permutation the permuted keys are scored exactly the same way (PBS-Attn+), and the
blocks of the query block's own segment play the diagonal's part.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from src.attention.components import SELECTORS
from src.attention.key_order import NATURAL_ORDER, KeyOrder
from src.attention.kernels import ESTIMATE_BACKENDS, TileConfig, antidiagonal_block_masses
from src.attention.kernels.antidiagonal.naive import xattention_chunk_size
from src.attention.ops import causal_block_layout, num_blocks, sink_blocks
from src.attention.plan import BlockSparsePlan
from src.attention.select.common import check_inputs
from src.checks import check_choice, check_flag, check_int, check_number
from src.registry import ConfigError


FIRST_CHUNK_RULES = ("official", "uniform")


def forced_first_threshold_select(
    scores: torch.Tensor,
    forced: torch.Tensor,
    allowed: torch.Tensor,
    threshold: float,
    shifted: torch.Tensor | None = None,
) -> torch.Tensor:
    """Forced entries, then the largest others until the kept mass reaches threshold of the row.

    scores: non-negative [..., n]; forced, allowed: bool broadcastable to it. Entries outside
    `allowed` are never kept; a forced entry's mass counts before any other (find_blocks_chunked).
    shifted: bool broadcastable to [..., 1], rows whose keep decisions move one place down the
    ranking (entry j kept when entry j-1 would be), x-attention's first-chunk cumulative sum.
    """
    scores = scores.masked_fill(~allowed, 0.0)
    forced = forced & allowed
    rank_key = torch.where(forced, math.inf, scores).masked_fill(~allowed, -1.0)
    order = rank_key.argsort(dim=-1, descending=True)
    sorted_scores = scores.gather(-1, order)
    mass_before = sorted_scores.cumsum(-1) - sorted_scores
    keep_sorted = mass_before < threshold * scores.sum(-1, keepdim=True)
    if shifted is not None:
        one_down = torch.cat([keep_sorted[..., :1], keep_sorted[..., :-1]], dim=-1)
        keep_sorted = torch.where(shifted, one_down, keep_sorted)
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return (keep & allowed) | forced


@SELECTORS.register("antidiagonal")
class AntidiagonalSelector:
    """XAttention's selector: antidiagonal block estimate + cumulative threshold.

    block_size: tokens per block; a multiple of stride.
    stride: antidiagonal tile size S (XAttention uses 8); logits are scaled by scale / S.
    threshold: fraction in (0, 1] of each query block's estimated mass to keep; 1.0 keeps every
        causal block.
    force_sink: keep the key block holding the first token and count its mass first (in the
        first chunk under first_chunk "official": keep it, counted like the rest).
    force_diagonal: keep the query block's own block (its whole segment under a permutation)
        and count its mass first, as XAttention does.
    first_chunk: "official" (x-attention's first-chunk selection, see the module docstring;
        conf/method/xattention.yaml's default) or "uniform" (the later chunks' rule in every
        chunk; the class default and PBS-Attn+'s, whose permuted order has no official code).
        Under a permutation "official" shifts by one place the same way, own segment forced.
    chunk_size: query tokens estimated at once (a multiple of block_size), and the first chunk
        of first_chunk "official"; None uses x-attention's length-dependent one for that chunk
        and the backend's default for the estimate: x-attention's for torch, whose memory is
        O(chunk_size * L / stride^2) per head, and for Triton as many as keep its
        O(chunk_size * L / (stride * block_size)) log-sum-exp table within 1 GiB.
    backend: how the block masses are estimated (kernels/antidiagonal): "triton" (fused
        kernels), "torch" (the reference) or "auto", Triton for CUDA inputs it supports and torch
        otherwise.

    Padding: q and k are zero-padded to whole blocks. A strided row or column that is all padding
    is dropped (its row zeroed, its column masked); the partly padded last one is kept with its
    zero tokens, as x-attention does.
    """

    def __init__(
        self,
        block_size: int = 128,
        stride: int = 8,
        threshold: float = 0.9,
        force_sink: bool = True,
        force_diagonal: bool = True,
        first_chunk: str = "uniform",
        chunk_size: int | None = None,
        backend: str = "auto",
    ) -> None:
        self.block_size = check_int("block_size", block_size)
        self.stride = check_int("stride", stride)
        if block_size % stride:
            raise ConfigError(f"block_size {block_size} must be a multiple of stride {stride}")
        self.threshold = check_number("threshold", threshold, 0.0, 1.0)
        self.force_sink = check_flag("force_sink", force_sink)
        self.force_diagonal = check_flag("force_diagonal", force_diagonal)
        self.first_chunk = check_choice("first_chunk rule", first_chunk, FIRST_CHUNK_RULES)
        if check_int("chunk_size", chunk_size, optional=True) is not None and chunk_size % block_size:
            raise ConfigError(f"chunk_size must be None or a positive multiple of block_size {block_size}, got {chunk_size!r}")
        self.chunk_size = chunk_size
        self.backend = check_choice("backend", backend, ESTIMATE_BACKENDS)

    def block_masses(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        *,
        key_order: KeyOrder = NATURAL_ORDER,
        scale: float,
        backend: str | None = None,
        config: TileConfig | None = None,
    ) -> Iterator[tuple[slice, torch.Tensor]]:
        """Each chunk of query blocks, first to last, with its estimated mass [B, Hq, rows, nb].

        Chunks one at a time keep the estimate's memory at one chunk's. backend: None for the
        selector's own; config: the Triton estimate's tile (None: its default), so a benchmark
        can time exactly this estimate under other launch shapes.
        """
        return antidiagonal_block_masses(
            q, k, key_order.key_perm, block_size=self.block_size, stride=self.stride, scale=scale,
            chunk_blocks=None if self.chunk_size is None else self.chunk_size // self.block_size,
            backend=backend or self.backend, config=config,
        )

    def first_chunk_rows(self, length: int, device: torch.device) -> torch.Tensor:
        """bool [nb]: the query blocks of x-attention's first chunk under the "official" rule
        (none under "uniform")."""
        rows = torch.arange(num_blocks(length, self.block_size), device=device)
        if self.first_chunk == "uniform":
            return torch.zeros_like(rows, dtype=torch.bool)
        chunk = self.chunk_size or xattention_chunk_size(length, self.block_size)
        return rows < chunk // self.block_size

    def __call__(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        *,
        key_order: KeyOrder = NATURAL_ORDER,
        scale: float,
        layer_idx: int | None = None,
    ) -> BlockSparsePlan:
        """The block plan for q [B, Hq, L, D] and k [B, Hkv, L, D] (original order)."""
        check_inputs(q, k, key_order, self.block_size)
        batch, q_heads, length, _ = q.shape
        allowed, diagonal = causal_block_layout(length, self.block_size, key_order.segment_size, q.device)
        if self.threshold >= 1.0:
            selected = allowed.expand(batch, q_heads, -1, -1)
        else:
            forced = torch.zeros_like(allowed).expand(batch, q_heads, -1, -1)
            if self.force_diagonal:
                forced = forced | diagonal
            sink = torch.zeros_like(forced)
            if self.force_sink:
                sink = sink_blocks(
                    key_order.key_perm, q_heads, batch, block_size=self.block_size, length=length, device=q.device
                )[:, :, None, :] & allowed
            first_chunk = self.first_chunk_rows(length, q.device)[:, None]
            forced = forced | (sink & ~first_chunk)
            chunks = [
                forced_first_threshold_select(
                    mass, forced[:, :, rows], allowed[rows], self.threshold, shifted=first_chunk[rows]
                ) | sink[:, :, rows]
                for rows, mass in self.block_masses(q, k, key_order=key_order, scale=scale)
            ]
            selected = torch.cat(chunks, dim=2)
        return BlockSparsePlan(block_mask=selected.contiguous(), block_size=self.block_size, key_order=key_order)
