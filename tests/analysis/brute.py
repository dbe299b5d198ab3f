"""Brute-force references of the analyses, written straight from the paper's definitions: the full
L x L causal softmax, block masses by explicit loops over (permuted query block, permuted key
block), and the oracle as a plain greedy over a Python list of blocks."""
from __future__ import annotations

import math

import torch

from src.attention.ops import causal_block_count
from src.attention.testing import structured_qkv

BLOCK, SEGMENT, LENGTH = 16, 32, 200  # 6 full segments and a tail of 8 tokens (a short last block)
SCALE = 0.25


def make_qk(
    seed: int = 0, batch: int = 1, hq: int = 4, hkv: int = 2, length: int = LENGTH
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random q/k with a sink and a few heavy keys every query likes, so attention is far from uniform."""
    q, k, _ = structured_qkv(batch, hq, hkv, length, 16, seed=seed, heavy_fraction=0.1)
    return q, k


def full_attention(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    """The true causal attention matrix [B, Hq, L, L] in original order."""
    k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    scores = (q.double() @ k.double().transpose(-1, -2)) * scale
    length = q.shape[2]
    future = torch.ones(length, length, dtype=torch.bool).triu(1)
    return scores.masked_fill(future, float("-inf")).softmax(-1)


def brute_masses(
    attention: torch.Tensor, key_perm: torch.Tensor | None, block: int, query_perm: torch.Tensor | None = None
) -> torch.Tensor:
    """Block masses by explicit loops: sum of A over (permuted) query block i x permuted key block j."""
    batch, heads, length, _ = attention.shape
    nb = math.ceil(length / block)
    out = torch.zeros(batch, heads, nb, nb, dtype=torch.float64)
    for b in range(batch):
        for h in range(heads):
            key_order = torch.arange(length) if key_perm is None else key_perm[b, h]
            query_order = torch.arange(length) if query_perm is None else query_perm[b, h]
            for i in range(nb):
                queries = query_order[i * block : (i + 1) * block]
                for j in range(nb):
                    keys = key_order[j * block : (j + 1) * block]
                    out[b, h, i, j] = attention[b, h][queries][:, keys].sum()
    return out


def assert_within_segments(perm: torch.Tensor, length: int, segment: int) -> None:
    """perm [B, H, L] is a permutation moving tokens only inside full segments, the tail in place."""
    assert perm.dtype == torch.int64
    assert torch.equal(perm.sort(-1).values, torch.arange(length).expand_as(perm))
    full = (length // segment) * segment
    position = torch.arange(length)
    assert torch.equal(perm[..., :full] // segment, (position[:full] // segment).expand(*perm.shape[:-1], -1))
    assert torch.equal(perm[..., full:], position[full:].expand(*perm.shape[:-1], -1))


def segment_of_block(j: int, length: int, block: int, segment: int | None) -> int:
    """Segment index of key block j (tail blocks are their own segments) written out by hand."""
    if segment is None:
        return j
    per = segment // block
    full_blocks = (length // segment) * per
    return j // per if j < full_blocks else length // segment + (j - full_blocks)


def brute_oracle(
    masses: torch.Tensor,
    length: int,
    block: int,
    segment: int | None,
    *,
    coverage: float | None = None,
    density: float | None = None,
    budget: str = "global",
) -> tuple[float, float]:
    """(density, coverage) of the greedy oracle for one head [nq, nk], from a list of blocks."""
    nb = masses.shape[-1]
    causal = causal_block_count(length, block)
    seg = [segment_of_block(j, length, block, segment) for j in range(nb)]
    chosen = {(i, j) for i in range(nb) for j in range(nb) if seg[i] == seg[j]}
    groups = [[i] for i in range(nb)] if budget == "row" else [list(range(nb))]
    for rows in groups:
        candidates = sorted(
            ((float(masses[i, j]), i, j) for i in rows for j in range(nb) if seg[j] < seg[i]), reverse=True
        )
        forced = [(i, j) for (i, j) in chosen if i in rows]
        if coverage is not None:
            got = sum(float(masses[i, j]) for i, j in forced)
            goal = coverage * float(masses[rows].sum())
            for mass, i, j in candidates:
                if got >= goal or mass <= 0:
                    break
                chosen.add((i, j))
                got += mass
        else:
            causal_row = causal if budget == "global" else rows[0] + 1
            for _, i, j in candidates[: max(0, round(density * causal_row) - len(forced))]:
                chosen.add((i, j))
    return len(chosen) / causal, sum(float(masses[i, j]) for i, j in chosen) / float(masses.sum())
