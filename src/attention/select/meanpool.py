"""Mean-pooling block selection: PBS-Attn's selector and the MeanPooling baseline's (arXiv 2510.21270).

Each query block (original order) is summarised by its mean query, each key block (permuted
order) by its mean key; the softmax of their scaled dot products over the causal key blocks of
earlier segments estimates where a query block's attention mass lies, and the fewest blocks
reaching `threshold` of it are kept. Blocks of the query block's own segment are always computed
(without permutation that is just the current block), as is the block holding the first token.
"""
from __future__ import annotations

import torch

from src.attention.components import SELECTORS
from src.attention.kernels.backends import check_estimate_backend, resolve_estimate_backend
from src.attention.kernels.pbs_estimate import pool_blocks_triton, threshold_select_triton, triton_unsupported
from src.attention.permute import invert_permutation
from src.attention.plan import BlockSparsePlan, num_blocks
from src.attention.select.common import causal_block_layout, cumulative_threshold_select, mean_pool_blocks
from src.registry import ConfigError


def check_inputs(q: torch.Tensor, k: torch.Tensor, key_perm: torch.Tensor | None, segment_size: int | None) -> None:
    """Raise a one-line ValueError when q, k, key_perm and segment_size do not fit together."""
    batch, q_heads, length, head_dim = q.shape
    if k.dim() != 4 or k.shape[0] != batch or k.shape[2:] != (length, head_dim) or q_heads % k.shape[1]:
        raise ValueError(
            f"k shape {tuple(k.shape)} does not fit q {tuple(q.shape)}: need same B, L, D and Hq a multiple of Hkv"
        )
    if key_perm is not None and key_perm.shape not in ((batch, q_heads, length), (batch, k.shape[1], length)):
        raise ValueError(
            f"key_perm shape {tuple(key_perm.shape)} must be [{batch}, {q_heads} or {k.shape[1]}, {length}]"
        )
    if key_perm is not None and segment_size is None:
        raise ValueError("key_perm was given with segment_size None; a permutation needs its segment_size")


def pooled_permuted_keys(
    k: torch.Tensor, key_perm: torch.Tensor, *, block_size: int, segment_size: int
) -> torch.Tensor:
    """Mean key of every permuted key block: float32 [B, P, nb, D], P = key_perm's heads.

    k: [B, Hkv, L, D] in original order; key_perm: [B, P, L] (permuted -> original),
    P a multiple of Hkv, each full segment permuted within itself and the tail in place.
    Every original key is added to the permuted block it lands in (a 0/1 matrix per segment times
    that segment's keys), so neither a permuted nor a head-replicated copy of K is made.
    """
    batch, kv_heads, length, head_dim = k.shape
    repeats = key_perm.shape[1] // kv_heads
    segments = length // segment_size
    full = segments * segment_size
    blocks_per_segment = segment_size // block_size
    slot = (invert_permutation(key_perm[..., :full]) % segment_size) // block_size
    slot = slot.view(batch, kv_heads, repeats, segments, segment_size).transpose(2, 3)
    slots = torch.arange(blocks_per_segment, device=k.device)[:, None]
    assign = (slot[..., None, :] == slots).float()
    assign = assign.reshape(batch, kv_heads, segments, repeats * blocks_per_segment, segment_size)
    keys = k[:, :, :full].float().view(batch, kv_heads, segments, segment_size, head_dim)
    sums = torch.matmul(assign, keys).view(batch, kv_heads, segments, repeats, blocks_per_segment, head_dim)
    pooled = sums.transpose(2, 3).reshape(batch, key_perm.shape[1], segments * blocks_per_segment, head_dim)
    pooled = pooled / block_size
    if full == length:
        return pooled
    tail = mean_pool_blocks(k[:, :, full:], block_size).repeat_interleave(repeats, dim=1)
    return torch.cat([pooled, tail], dim=2)


def sink_blocks(
    key_perm: torch.Tensor | None, q_heads: int, batch: int, *, block_size: int, length: int, device: torch.device
) -> torch.Tensor:
    """bool [B, Hq, nb]: the permuted key block holding original token 0, per query head."""
    blocks = torch.arange(num_blocks(length, block_size), device=device)
    if key_perm is None:
        return (blocks == 0).expand(batch, q_heads, -1)
    sink = (key_perm == 0).int().argmax(dim=-1) // block_size
    sink = sink.repeat_interleave(q_heads // key_perm.shape[1], dim=1)
    return blocks == sink[..., None]


@SELECTORS.register("meanpool")
class MeanPoolSelector:
    """Mean-pooled block attention + cumulative threshold (PBS-Attn's selector; MeanPooling's).

    block_size: tokens per block (queries and keys).
    threshold: fraction in (0, 1] of each query block's estimated off-diagonal attention mass to
        keep; 1.0 keeps every causal block.
    force_sink: always compute the key block holding the first token (attention sink).
    force_diagonal: always compute every block of the query block's own segment and leave them
        out of the estimate (the paper); False lets them compete in the estimate like the rest.
    backend: "triton" (pooling and selection fused, kernels/pbs_estimate.py), "torch" (the
        reference below) or "auto" (Triton for the CUDA inputs it supports).
    """

    def __init__(
        self,
        block_size: int = 128,
        threshold: float = 0.9,
        force_sink: bool = True,
        force_diagonal: bool = True,
        backend: str = "auto",
    ) -> None:
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise ConfigError(f"block_size must be a positive int, got {block_size!r}")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold <= 1.0:
            raise ConfigError(f"threshold must be a number in (0, 1], got {threshold!r}")
        for name, flag in (("force_sink", force_sink), ("force_diagonal", force_diagonal)):
            if not isinstance(flag, bool):
                raise ConfigError(f"{name} must be true or false, got {flag!r}")
        check_estimate_backend(backend, "selector backend", ConfigError)
        self.block_size = block_size
        self.threshold = float(threshold)
        self.force_sink = force_sink
        self.force_diagonal = force_diagonal
        self.backend = backend

    def block_scores(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        key_perm: torch.Tensor | None,
        segment_size: int | None,
        scale: float,
        backend: str = "torch",
    ) -> torch.Tensor:
        """Scaled pooled-query . pooled-key logits, float32 [B, Hq, nb, nb] (query block, permuted key block)."""
        batch, q_heads, length, _ = q.shape
        kv_heads = k.shape[1]
        if backend == "triton":
            pooled_q = pool_blocks_triton(q, None, block_size=self.block_size, scale=scale)
            pooled_k = pool_blocks_triton(k, key_perm, block_size=self.block_size)
        else:
            pooled_q = mean_pool_blocks(q, self.block_size) * scale
            if key_perm is None or segment_size is None:
                pooled_k = mean_pool_blocks(k, self.block_size)
            else:
                pooled_k = pooled_permuted_keys(k, key_perm, block_size=self.block_size, segment_size=segment_size)
        nb = pooled_q.shape[2]
        pooled_q = pooled_q.view(batch, kv_heads, q_heads // kv_heads, nb, -1)
        pooled_k = pooled_k.view(batch, kv_heads, -1, nb, pooled_k.shape[-1])
        logits = torch.matmul(pooled_q, pooled_k.transpose(-1, -2))
        return logits.view(batch, q_heads, nb, nb)

    def __call__(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        *,
        key_perm: torch.Tensor | None,
        segment_size: int | None,
        scale: float,
        layer_idx: int | None = None,
    ) -> BlockSparsePlan:
        """The block plan for q [B, Hq, L, D] and k [B, Hkv, L, D] (original order)."""
        check_inputs(q, k, key_perm, segment_size)
        reason = triton_unsupported(q, segment_size=segment_size)
        if self.threshold < 1.0 and resolve_estimate_backend(self.backend, q, reason, "block selection") == "triton":
            logits = self.block_scores(q, k, key_perm, segment_size, scale, backend="triton")
            selected = threshold_select_triton(
                logits, key_perm, block_size=self.block_size, segment_size=segment_size, length=q.shape[2],
                threshold=self.threshold, force_sink=self.force_sink, force_diagonal=self.force_diagonal,
            )
        else:
            selected = self.select_torch(q, k, key_perm, segment_size, scale)
        return BlockSparsePlan(
            block_mask=selected, block_size=self.block_size, key_perm=key_perm, segment_size=segment_size
        )

    def select_torch(
        self, q: torch.Tensor, k: torch.Tensor, key_perm: torch.Tensor | None, segment_size: int | None, scale: float
    ) -> torch.Tensor:
        """The block mask from the reference ops: bool [B, Hq, nb, nb]."""
        batch, q_heads, length, _ = q.shape
        allowed, diagonal = causal_block_layout(length, self.block_size, segment_size, q.device)
        scored = allowed & ~diagonal if self.force_diagonal else allowed
        if self.threshold >= 1.0:
            selected = scored.expand(batch, q_heads, -1, -1)
        else:
            logits = self.block_scores(q, k, key_perm, segment_size, scale)
            probs = torch.softmax(logits.masked_fill(~scored, float("-inf")), dim=-1).masked_fill(~scored, 0.0)
            selected = cumulative_threshold_select(probs, self.threshold)
        if self.force_diagonal:
            selected = selected | diagonal
        if self.force_sink:
            sink = sink_blocks(key_perm, q_heads, batch, block_size=self.block_size, length=length, device=q.device)
            selected = selected | (sink[:, :, None, :] & allowed)
        return selected.contiguous()
