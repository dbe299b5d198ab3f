"""MInference's per-head sparse patterns: what each one selects, the offline search, the config file.

Three patterns (Jiang et al., 2024), named as in MInference's config files:
    vertical_and_slash  the last queries' attention picks the top `vertical_size` key columns and
                        the top `slash_size` diagonals (first 30 columns, last 100 diagonals kept)
    stream_llm          A-shape: the first `vertical_size` keys plus the `slash_size` most recent
    block_sparse        per 64-query block, the `vertical_size` key blocks of highest pooled q.k

The config file is MInference's: a JSON list indexed by layer of {head: [pattern, vertical_size,
slash_size, score]}, head being the query head. MInference's own search rewrites stream_llm and
block_sparse winners to vertical_and_slash before saving; `search_patterns` keeps the real winner
and the vertical_slash selector runs all three.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from src.attention.kernels import pattern_tables
from src.attention.ops import causal_softmax, grouped_logits, num_blocks, pad_tokens
from src.attention.select.common import diagonal_sums, top_ranked
from src.checks import check_choice, check_int
from src.registry import ConfigError

PATTERNS = ("vertical_and_slash", "stream_llm", "block_sparse")
SINK_TOKENS = 30  # columns every vertical_and_slash head keeps (MInference)
LOCAL_DIAGONALS = 100  # diagonals every vertical_and_slash head keeps (MInference's prefill kernel)
MIN_VERTICAL, MIN_SLASH = 30, 50  # MInference's floors on the two sizes
BLOCK_SPARSE_SIZE = 64  # MInference's block_sparse block, queries and keys
VERTICAL_SHARES = (0.04, 0.12, 0.4, 0.96)  # MInference's search grid, as shares of one budget
A_SHAPE_SINK = 100  # sink tokens of MInference's A-shape candidate
SEARCH_FIRST_QUERY = 2500  # MInference scores recall on queries from here on


@dataclass(frozen=True)
class HeadPattern:
    """One head's pattern and sizes (for block_sparse, vertical_size is the key blocks per row)."""

    name: str
    vertical_size: int
    slash_size: int
    score: float = 0.0

    def __post_init__(self) -> None:
        check_choice("MInference pattern", self.name, PATTERNS)
        check_int(f"{self.name} vertical_size", self.vertical_size, minimum=0)
        check_int(f"{self.name} slash_size", self.slash_size, minimum=0)


LayerPatterns = dict[int, HeadPattern]


def last_query_scores(
    q: torch.Tensor, k: torch.Tensor, *, last_q: int, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal softmax attention of the last `last_q` queries summed per key column and per diagonal.

    q: [B, Hq, L, D], k: [B, Hkv, L, D]. Returns (vertical, slash), float32 [B, Hq, L] each;
    slash[..., d] is the attention on the diagonal query - key = d. Memory O(Hq * last_q * L).
    """
    length = q.shape[2]
    n = min(last_q, length)
    probs = causal_softmax(q, k, torch.arange(length - n, length, device=q.device), scale=scale)
    return probs.sum(-2), diagonal_sums(probs).flip(-1)


def _first_ranked(scores: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
    """Indices of each row's counts[h] largest scores, int64 [B, H, max count], -1 past the count."""
    indices = scores.topk(min(max(counts, default=0), scores.shape[-1]), dim=-1).indices
    rank = torch.arange(indices.shape[-1], device=scores.device)
    return torch.where(rank < torch.tensor(list(counts), device=scores.device)[:, None], indices, -1)


def vertical_slash_pattern(
    vertical: torch.Tensor,
    slash: torch.Tensor,
    vertical_sizes: Sequence[int],
    slash_sizes: Sequence[int],
    *,
    sink_tokens: int = SINK_TOKENS,
    local_diagonals: int = LOCAL_DIAGONALS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MInference's vertical_and_slash indices from last-query scores (see `last_query_scores`).

    Per head h: the top max(vertical_sizes[h], 30) columns with the first `sink_tokens` always
    in, and the top max(slash_sizes[h], 50) offsets with the `local_diagonals` smallest always
    in, each capped at L. Returns (vertical_indices, slash_offsets), int64 [B, Hq, N], -1 padded.
    """
    length = vertical.shape[-1]
    device = vertical.device
    v_counts = [min(length, max(v, MIN_VERTICAL)) for v in vertical_sizes]
    s_counts = [min(length, max(s, MIN_SLASH)) for s in slash_sizes]
    positions = torch.arange(length, device=device)
    vertical = vertical.masked_fill(positions < sink_tokens, math.inf)
    slash = slash.masked_fill(positions < local_diagonals, math.inf)
    return _first_ranked(vertical, v_counts), _first_ranked(slash, s_counts)


def a_shape_pattern(
    sinks: Sequence[int], locals_: Sequence[int], *, batch: int, length: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """A-shape (stream_llm) as vertical-slash indices: the first sinks[h] keys and offsets below locals_[h]."""
    def leading(counts: Sequence[int]) -> torch.Tensor:
        capped = [min(c, length) for c in counts]
        positions = torch.arange(max(capped, default=0), device=device)
        return torch.where(positions < torch.tensor(capped, device=device)[:, None], positions, -1).expand(batch, -1, -1)

    return leading(sinks), leading(locals_)


def block_sparse_pattern(
    q: torch.Tensor, k: torch.Tensor, top_k: Sequence[int], *, block_size: int = BLOCK_SPARSE_SIZE
) -> torch.Tensor:
    """MInference's block_sparse selection, bool [B, Hq, nb, nb]: per query block the top_k[h]
    causal key blocks by pooled q . pooled k (zero-padded 64-token means, unscaled)."""
    length = q.shape[2]
    nb = num_blocks(length, block_size)
    pooled_q, pooled_k = (
        pad_tokens(x, nb * block_size).float().unflatten(2, (nb, block_size)).mean(3) for x in (q, k)
    )
    blocks = torch.arange(nb, device=q.device)
    causal = blocks[None, :] <= blocks[:, None]
    logits = grouped_logits(pooled_q, pooled_k).masked_fill(~causal, float("-inf"))
    counts = torch.tensor(list(top_k), device=q.device)[:, None]
    return top_ranked(logits, counts) & causal


def vertical_slash_blocks(
    vertical_indices: torch.Tensor, slash_offsets: torch.Tensor, length: int, block_size: int
) -> torch.Tensor:
    """Bool [B, H, nb, nb]: the causal blocks holding some pair of a vertical-slash pattern.

    Key block j is kept for query block i <= j when it holds a column, or when some slash offset
    lies within one block of (i - j) * block_size (the band crosses the block).
    """
    tables = pattern_tables(vertical_indices, slash_offsets, length)
    nb = num_blocks(length, block_size)
    column_blocks = torch.nn.functional.pad(tables.column_bits.int(), (0, nb * block_size - length))
    column_blocks = column_blocks.unflatten(-1, (nb, block_size)).amax(-1) > 0
    distance = torch.arange(nb, device=column_blocks.device) * block_size
    lowest = (distance - block_size + 1).clamp(min=0, max=length)
    highest = (distance + block_size).clamp(max=length)
    band = (tables.slash_prefix[..., highest] - tables.slash_prefix[..., lowest]) > 0
    block_offset = torch.arange(nb, device=band.device)[:, None] - torch.arange(nb, device=band.device)[None, :]
    causal = block_offset >= 0
    return causal & (column_blocks[:, :, None, :] | band[:, :, block_offset.clamp(min=0)])


@dataclass(frozen=True)
class CandidateSelection:
    """One pattern and size pair every head is scored under during the search."""

    pattern: HeadPattern
    token_mask: tuple[torch.Tensor, torch.Tensor] | None  # (column_bits, slash_bits) [B, H, L]
    block_mask: torch.Tensor | None  # bool [B, H, nb, nb] over BLOCK_SPARSE_SIZE blocks


def default_candidates(budget: int) -> list[tuple[str, int, int]]:
    """MInference's search grid for `budget` keys per query: one A-shape (100 sinks), vertical
    shares 4 / 12 / 40 / 96 % of vertical_and_slash, and block_sparse with budget / 64 blocks."""
    sink = min(A_SHAPE_SINK, budget // 2)
    candidates = [("stream_llm", sink, budget - sink)]
    for share in VERTICAL_SHARES:
        vertical = max(round(share * budget), 1)
        candidates.append(("vertical_and_slash", vertical, max(budget - vertical, 0)))
    candidates.append(("block_sparse", max(budget // BLOCK_SPARSE_SIZE, 1), 0))
    return candidates


def candidate_selection(
    q: torch.Tensor, k: torch.Tensor, pattern: HeadPattern, *, scale: float, last_q: int
) -> CandidateSelection:
    """The pattern's selection for every head of one layer, as lookup tables or a block mask."""
    batch, q_heads, length, _ = q.shape
    sizes = ([pattern.vertical_size] * q_heads, [pattern.slash_size] * q_heads)
    if pattern.name == "block_sparse":
        return CandidateSelection(pattern, None, block_sparse_pattern(q, k, sizes[0]))
    if pattern.name == "stream_llm":
        vertical, slash = a_shape_pattern(*sizes, batch=batch, length=length, device=q.device)
    else:
        vertical, slash = vertical_slash_pattern(*last_query_scores(q, k, last_q=last_q, scale=scale), *sizes)
    tables = pattern_tables(vertical, slash, length)
    return CandidateSelection(pattern, (tables.column_bits.bool(), tables.slash_bits.bool()), None)


def _kept_in_rows(probs: torch.Tensor, candidate: CandidateSelection, rows: torch.Tensor) -> torch.Tensor:
    """Attention mass inside the candidate's pattern summed over the given query rows, [B, H]."""
    length = probs.shape[-1]
    keys = torch.arange(length, device=probs.device)
    if candidate.block_mask is not None:
        blocks = candidate.block_mask[:, :, rows // BLOCK_SPARSE_SIZE][..., keys // BLOCK_SPARSE_SIZE]
        return (probs * blocks).sum(dim=(-1, -2))
    column_bits, slash_bits = candidate.token_mask
    offsets = (rows[:, None] - keys[None, :]).clamp(min=0)
    on_slash = slash_bits[:, :, offsets]
    return (probs * (on_slash | column_bits[:, :, None, :])).sum(dim=(-1, -2))


def attention_recall(
    q: torch.Tensor,
    k: torch.Tensor,
    candidates: Sequence[CandidateSelection],
    *,
    scale: float,
    first_query: int,
    chunk_size: int = 256,
) -> torch.Tensor:
    """Mean over queries >= first_query of the causal attention each candidate keeps, [C, B, Hq].

    The full attention is computed chunk_size query rows at a time, so memory is O(chunk * L).
    """
    length = q.shape[2]
    kept = torch.zeros(len(candidates), q.shape[0], q.shape[1], device=q.device)
    for start in range(first_query, length, chunk_size):
        rows = torch.arange(start, min(start + chunk_size, length), device=q.device)
        probs = causal_softmax(q, k, rows, scale=scale)
        for index, candidate in enumerate(candidates):
            kept[index] += _kept_in_rows(probs, candidate, rows)
    return kept / (length - first_query)


def search_patterns(
    qk_by_layer: Mapping[int, tuple[torch.Tensor, torch.Tensor]] | Sequence[tuple[torch.Tensor, torch.Tensor]],
    budget: int,
    *,
    candidates: Iterable[tuple[str, int, int]] | None = None,
    scale: float | None = None,
    last_q: int = 64,
    first_query: int | None = None,
    chunk_size: int = 256,
) -> dict[int, LayerPatterns]:
    """MInference's offline search: each head's pattern with the highest attention recall.

    qk_by_layer: layer index -> (q [B, Hq, L, D], k [B, Hkv, L, D]) of a calibration input (a
    sequence means layers 0, 1, ...). budget: keys per query the default candidates spend (see
    `default_candidates`); candidates: (pattern, vertical_size, slash_size) triples instead.
    Recall is the causal softmax attention (scale defaults to 1/sqrt(D)) that the pattern keeps,
    averaged over queries from first_query on (MInference's 2500, or L // 2 for shorter inputs)
    and over the batch. Returns {layer: {query head: HeadPattern with score = recall}}.
    """
    check_int("budget", budget, unit="keys per query")
    patterns = [HeadPattern(*triple) for triple in (default_candidates(budget) if candidates is None else candidates)]
    if not patterns:
        raise ConfigError("candidates is empty; give at least one (pattern, vertical_size, slash_size)")
    layers = qk_by_layer.items() if isinstance(qk_by_layer, Mapping) else enumerate(qk_by_layer)
    result: dict[int, LayerPatterns] = {}
    for layer, (q, k) in layers:
        length, head_dim = q.shape[2], q.shape[3]
        layer_scale = head_dim**-0.5 if scale is None else scale
        start = min(SEARCH_FIRST_QUERY, length // 2) if first_query is None else min(first_query, length - 1)
        masks = [candidate_selection(q, k, pattern, scale=layer_scale, last_q=last_q) for pattern in patterns]
        recall = attention_recall(q, k, masks, scale=layer_scale, first_query=start, chunk_size=chunk_size).mean(1)
        best = recall.argmax(0).tolist()
        result[int(layer)] = {
            head: HeadPattern(patterns[choice].name, patterns[choice].vertical_size, patterns[choice].slash_size, float(recall[choice, head]))
            for head, choice in enumerate(best)
        }
    return result


def save_patterns(patterns: Mapping[int, LayerPatterns], path: str | Path) -> None:
    """Write MInference's config format: a list by layer of {head: [pattern, v, s, score]}.

    Layers missing from `patterns` (below the largest present) are written as {}.
    """
    count = max(patterns, default=-1) + 1
    layers = [
        {str(head): [p.name, p.vertical_size, p.slash_size, p.score] for head, p in sorted(patterns.get(layer, {}).items())}
        for layer in range(count)
    ]
    Path(path).write_text(json.dumps(layers))


def load_patterns(path: str | Path) -> dict[int, LayerPatterns]:
    """Read a config in MInference's format (theirs or ours); raises ConfigError on a malformed one."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pattern config {str(path)!r} does not exist; give a MInference per-head JSON or null")
    layers = json.loads(path.read_text())
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise ConfigError(f"pattern config {str(path)!r} must be a JSON list (by layer) of {{head: [pattern, v, s, score]}}")
    result: dict[int, LayerPatterns] = {}
    for index, layer in enumerate(layers):
        heads: LayerPatterns = {}
        for head, entry in layer.items():
            if not str(head).isdigit() or not isinstance(entry, list) or len(entry) not in (3, 4):
                raise ConfigError(f"pattern config {str(path)!r} layer {index} head {head!r}: expected [pattern, v, s, score], got {entry!r}")
            heads[int(head)] = HeadPattern(entry[0], entry[1], entry[2], float(entry[3]) if len(entry) == 4 else 0.0)
        result[index] = heads
    return result
