"""Key permuters: the order keys take before block selection (PBS-Attn, arXiv 2510.21270, Sec. 3).

PBS-Attn sorts keys inside segments of `segment_size` tokens by how much the last queries attend
them, so the keys most queries need gather into few blocks. Queries keep their order, and keys
never leave their segment, so causality between segments survives; the tail past floor(L/S)*S
stays in place. A permutation maps permuted position -> original position.
"""
from __future__ import annotations

import torch

from src.attention.components import PERMUTERS
from src.attention.kernels.backends import check_estimate_backend, resolve_estimate_backend
from src.attention.kernels.pbs_estimate import segment_permutation_triton, triton_unsupported
from src.registry import ConfigError

GQA_PERMUTATIONS = ("head", "group")
TARGETS = ("key",)


def invert_permutation(perm: torch.Tensor) -> torch.Tensor:
    """The inverse of each permutation along the last dim: inverse[..., perm[..., p]] = p.

    For a key permutation this maps an original key position to its permuted position.
    """
    positions = torch.arange(perm.shape[-1], device=perm.device).expand_as(perm)
    return torch.empty_like(perm).scatter_(-1, perm, positions)


def permute_rows(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Rows of x [B, H, L, D] in the order perm [B, H, L] gives: out[..., p, :] = x[..., perm[p], :]."""
    return x.gather(2, perm[..., None].expand(-1, -1, -1, x.shape[-1]))


def sort_within_segments(scores: torch.Tensor, segment_size: int) -> torch.Tensor:
    """Key order putting each full segment's keys by descending score (ties keep order).

    scores: [B, H, L]; returns int64 [B, H, L], permuted position -> original position; the
    tail of L mod segment_size keys stays in place.
    """
    length = scores.shape[-1]
    full = (length // segment_size) * segment_size
    segments = scores[..., :full].unflatten(-1, (-1, segment_size))
    order = segments.argsort(dim=-1, descending=True, stable=True)
    starts = torch.arange(0, full, segment_size, device=scores.device)[:, None]
    sorted_part = (order + starts).flatten(-2)
    tail = torch.arange(full, length, device=scores.device).expand(*scores.shape[:-1], -1)
    return torch.cat([sorted_part, tail], dim=-1)


def last_query_attention(
    q: torch.Tensor, k: torch.Tensor, *, num_last_queries: int, scale: float, chunk_elements: int = 1 << 27
) -> torch.Tensor:
    """Mean causal softmax attention that the last queries give each key, per query head.

    q: [B, Hq, L, D], k: [B, Hkv, L, D] (Hq a multiple of Hkv; query head h reads kv head
    h // (Hq / Hkv)). Averages softmax(q k^T * scale) over the queries at original positions
    L-n..L-1, n = min(num_last_queries, L), with keys after a query masked out. Returns float
    (at least float32) [B, Hq, L]. The query heads of a kv group are stacked instead of K being
    replicated, and kv heads go in chunks of about `chunk_elements` logits, so memory stays
    O(n * L) per chunk, never L x L.
    """
    batch, q_heads, length, head_dim = q.shape
    kv_heads = k.shape[1]
    group = q_heads // kv_heads
    n = min(num_last_queries, length)
    compute_dtype = torch.promote_types(q.dtype, torch.float32)
    last = (q[:, :, length - n :] * scale).reshape(batch, kv_heads, group * n, head_dim)
    positions = torch.arange(length - n, length, device=q.device)
    future = positions[None, :] > positions[:, None]
    scores = torch.empty(batch, kv_heads, group, length, dtype=compute_dtype, device=q.device)
    heads_per_chunk = max(1, chunk_elements // (batch * group * n * length))
    for start in range(0, kv_heads, heads_per_chunk):
        heads = slice(start, start + heads_per_chunk)
        logits = torch.matmul(last[:, heads], k[:, heads].transpose(-1, -2)).unflatten(2, (group, n))
        logits[..., length - n :].masked_fill_(future, float("-inf"))
        scores[:, heads] = torch.softmax(logits, dim=-1, dtype=compute_dtype).mean(dim=3)
    return scores.view(batch, q_heads, length)


@PERMUTERS.register("identity")
class IdentityPermuter:
    """Keeps the natural key order: the permuter of every unpermuted method."""

    segment_size: int | None = None

    def __call__(self, q: torch.Tensor, k: torch.Tensor, *, scale: float) -> None:
        """No permutation (None means identity to selectors and kernels)."""
        return None


@PERMUTERS.register("segmented_key")
class SegmentedKeyPermuter:
    """PBS-Attn's key permutation: sort keys inside each segment by last-query attention.

    segment_size: tokens per segment (the selector's block_size must divide it).
    num_last_queries: how many final queries score the keys (the paper uses one block, 128).
    gqa_permutation: "head" gives each query head its own order (the paper's default, K/V
        replicated per head); "group" shares one order across the query heads of a kv group,
        scored by their mean (Appendix G).
    target: which side is permuted; only "key" (the paper's method) is implemented, since a
        query permutation would need the attention output un-permuted by the kernels.
    backend: "triton" (two fused launches, kernels/pbs_estimate.py), "torch" (the reference
        below) or "auto" (Triton for the CUDA inputs it supports).

    Scores follow the paper's definition (causal softmax over all L keys). The public reference
    code normalises over the keys of full segments only and masks nothing, so its last queries
    weigh in slightly differently and, when L is a multiple of S, see their future keys.
    """

    def __init__(
        self,
        segment_size: int = 256,
        num_last_queries: int = 128,
        gqa_permutation: str = "head",
        target: str = "key",
        backend: str = "auto",
    ) -> None:
        if isinstance(segment_size, bool) or not isinstance(segment_size, int) or segment_size < 1:
            raise ConfigError(f"segment_size must be a positive int, got {segment_size!r}")
        if isinstance(num_last_queries, bool) or not isinstance(num_last_queries, int) or num_last_queries < 1:
            raise ConfigError(f"num_last_queries must be a positive int, got {num_last_queries!r}")
        if gqa_permutation not in GQA_PERMUTATIONS:
            raise ConfigError(
                f"unknown gqa_permutation {gqa_permutation!r}; allowed: {', '.join(GQA_PERMUTATIONS)}"
            )
        if target not in TARGETS:
            raise ConfigError(f"permutation target {target!r} is not implemented; allowed: {', '.join(TARGETS)}")
        check_estimate_backend(backend, "permuter backend", ConfigError)
        self.segment_size: int | None = segment_size
        self.num_last_queries = num_last_queries
        self.gqa_permutation = gqa_permutation
        self.target = target
        self.backend = backend

    def __call__(self, q: torch.Tensor, k: torch.Tensor, *, scale: float) -> torch.Tensor:
        """key_perm int64 [B, Hq, L] ("head") or [B, Hkv, L] ("group"), permuted -> original."""
        reason = triton_unsupported(q, num_last_queries=self.num_last_queries, segment_size=self.segment_size)
        if resolve_estimate_backend(self.backend, q, reason, "key permutation") == "triton":
            key_perm, _ = segment_permutation_triton(
                q, k, segment_size=self.segment_size, num_last_queries=self.num_last_queries, scale=scale,
                per_group=self.gqa_permutation == "group",
            )
            return key_perm
        scores = last_query_attention(q, k, num_last_queries=self.num_last_queries, scale=scale)
        if self.gqa_permutation == "group":
            batch, _, length = scores.shape
            scores = scores.view(batch, k.shape[1], -1, length).mean(dim=2)
        return sort_within_segments(scores, self.segment_size)
