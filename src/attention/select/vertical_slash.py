"""MInference's selector (Jiang et al., 2024): vertical columns and slash diagonals per head.

Without a pattern file every head runs vertical_and_slash with the configured sizes. With one
(MInference's per-layer, per-head JSON or ours from `search_patterns`) each query head runs its
own pattern and sizes; heads a file leaves out fall back to the configured vertical_and_slash.

One call returns one plan type. A layer of vertical_and_slash and stream_llm (A-shape) heads is a
VerticalSlashPlan, A-shape being sink columns plus local diagonals. A layer holding any
block_sparse head becomes a BlockSparsePlan over MInference's 64-token blocks, its other heads
keeping every block their columns and bands cross: a superset of their pairs, which is also what
MInference's own vertical-slash kernel computes (it rounds slash bands out to 64 x 64 tiles).
"""
from __future__ import annotations

import torch

from src.attention.components import SELECTORS
from src.attention.key_order import NATURAL_ORDER, KeyOrder
from src.attention.select.minference_patterns import (
    BLOCK_SPARSE_SIZE,
    LOCAL_DIAGONALS,
    SINK_TOKENS,
    HeadPattern,
    LayerPatterns,
    a_shape_pattern,
    block_sparse_pattern,
    last_query_scores,
    load_patterns,
    vertical_slash_blocks,
    vertical_slash_pattern,
)
from src.attention.plan import BlockSparsePlan, VerticalSlashPlan
from src.attention.select.common import check_inputs
from src.checks import check_int
from src.registry import ConfigError


def _widen(indices: torch.Tensor, width: int) -> torch.Tensor:
    """indices [B, H, N] right-padded with -1 to [B, H, width]."""
    return torch.nn.functional.pad(indices, (0, width - indices.shape[-1]), value=-1)


@SELECTORS.register("vertical_slash")
class VerticalSlashSelector:
    """MInference: per-head vertical-slash (or A-shape / block-sparse) patterns from the last queries.

    last_q: final queries whose attention scores columns and diagonals (MInference: 64).
    vertical_size, slash_size: columns and diagonals per head when no pattern file says otherwise
        (MInference's default 1000 and 6096; floors 30 and 50, capped at the length).
    pattern_config: None, or the path of a per-head pattern JSON in MInference's format.
    sink_tokens: first columns a vertical_and_slash head always keeps (MInference: 30).
    local_diagonals: most recent diagonals it always keeps (MInference: 100).

    Per-layer files need the layer: pass `layer_idx` to __call__.
    """

    # Its plans run on both attention ops, so method.backend must exist for both (no flex).
    attention_ops = ("vertical-slash attention", "block-sparse attention")

    def __init__(
        self,
        last_q: int = 64,
        vertical_size: int = 1000,
        slash_size: int = 6096,
        pattern_config: str | None = None,
        sink_tokens: int = SINK_TOKENS,
        local_diagonals: int = LOCAL_DIAGONALS,
    ) -> None:
        check_int("last_q", last_q)
        for name, value in (
            ("vertical_size", vertical_size),
            ("slash_size", slash_size),
            ("sink_tokens", sink_tokens),
            ("local_diagonals", local_diagonals),
        ):
            check_int(name, value, minimum=0)
        if pattern_config is not None and not isinstance(pattern_config, str):
            raise ConfigError(f"pattern_config must be null or a path string, got {pattern_config!r}")
        self.last_q = last_q
        self.default = HeadPattern("vertical_and_slash", vertical_size, slash_size)
        self.pattern_config = pattern_config
        self.layers: dict[int, LayerPatterns] | None = None if pattern_config is None else load_patterns(pattern_config)
        self.sink_tokens = sink_tokens
        self.local_diagonals = local_diagonals

    def head_patterns(self, layer_idx: int | None, q_heads: int) -> list[HeadPattern]:
        """The pattern of every query head of a layer (the default where the file has none)."""
        if self.layers is None:
            return [self.default] * q_heads
        if layer_idx is None:
            raise ValueError(f"pattern_config {self.pattern_config!r} is per layer; call the selector with layer_idx")
        layer = self.layers.get(layer_idx, {})
        extra = sorted(head for head in layer if head >= q_heads)
        if extra:
            raise ValueError(f"pattern_config {self.pattern_config!r} layer {layer_idx} names head(s) {extra} but the model has {q_heads} query heads")
        return [layer.get(head, self.default) for head in range(q_heads)]

    def vertical_slash_indices(
        self, q: torch.Tensor, k: torch.Tensor, heads: list[HeadPattern], scale: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(vertical_indices, slash_offsets) int64 [B, Hq, N] (-1 padded) of the non-block heads."""
        batch, _, length, _ = q.shape
        shaped = torch.tensor([head.name == "stream_llm" for head in heads], device=q.device)[:, None]
        parts = []
        if any(head.name == "vertical_and_slash" for head in heads):
            sizes = [(h.vertical_size, h.slash_size) if h.name == "vertical_and_slash" else (0, 0) for h in heads]
            scores = last_query_scores(q, k, last_q=self.last_q, scale=scale)
            parts.append(vertical_slash_pattern(
                *scores, *zip(*sizes), sink_tokens=self.sink_tokens, local_diagonals=self.local_diagonals
            ))
        if any(head.name == "stream_llm" for head in heads):
            sizes = [(h.vertical_size, h.slash_size) if h.name == "stream_llm" else (0, 0) for h in heads]
            parts.append(a_shape_pattern(*zip(*sizes), batch=batch, length=length, device=q.device))
        if len(parts) == 1:
            return parts[0]
        (vs_vertical, vs_slash), (a_vertical, a_slash) = parts
        width_v = max(vs_vertical.shape[-1], a_vertical.shape[-1])
        width_s = max(vs_slash.shape[-1], a_slash.shape[-1])
        vertical = torch.where(shaped, _widen(a_vertical, width_v), _widen(vs_vertical, width_v))
        slash = torch.where(shaped, _widen(a_slash, width_s), _widen(vs_slash, width_s))
        return vertical, slash

    def __call__(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        *,
        key_order: KeyOrder = NATURAL_ORDER,
        scale: float,
        layer_idx: int | None = None,
    ) -> VerticalSlashPlan | BlockSparsePlan:
        """The plan for q [B, Hq, L, D] and k [B, Hkv, L, D]; layer_idx picks the layer of a pattern file."""
        if key_order.key_perm is not None:
            raise ConfigError("selector 'vertical_slash' works on the original key order; use permuter 'identity'")
        check_inputs(q, k, key_order)
        length = q.shape[2]
        heads = self.head_patterns(layer_idx, q.shape[1])
        block_heads = [head.name == "block_sparse" for head in heads]
        if not any(block_heads):
            vertical, slash = self.vertical_slash_indices(q, k, heads, scale)
            return VerticalSlashPlan(vertical_indices=vertical.contiguous(), slash_offsets=slash.contiguous())
        mask = block_sparse_pattern(q, k, [h.vertical_size if h.name == "block_sparse" else 0 for h in heads])
        if not all(block_heads):
            vertical, slash = self.vertical_slash_indices(q, k, heads, scale)
            covered = vertical_slash_blocks(vertical, slash, length, BLOCK_SPARSE_SIZE)
            mask = torch.where(torch.tensor(block_heads, device=q.device)[:, None, None], mask, covered)
        return BlockSparsePlan(block_mask=mask.contiguous(), block_size=BLOCK_SPARSE_SIZE)
