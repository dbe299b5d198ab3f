"""PBS-Attn's segmented key permutation (arXiv 2510.21270, Sec. 3).

PBS-Attn sorts keys inside segments of `segment_size` tokens by how much the last queries attend
them, so the keys most queries need gather into few blocks. Queries keep their order, and keys
never leave their segment, so causality between segments survives; the tail past floor(L/S)*S
stays in place. A permutation maps permuted position -> original position.
"""
from __future__ import annotations

import torch

from src.attention.components import PERMUTERS
from src.attention.kernels import ESTIMATE_BACKENDS, segment_permutation
from src.attention.key_order import KeyOrder
from src.checks import check_choice, check_int
from src.registry import ConfigError

GQA_PERMUTATIONS = ("head", "group")
SCORINGS = ("causal", "full_segments")
TARGETS = ("key",)


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
    backend: how the scores and order are computed (kernels/pbs_estimate): "triton" (two fused
        launches), "torch" (the reference) or "auto" (Triton for the CUDA inputs it supports).

    scoring: "causal" (the default, the paper's definition: causal softmax over all L keys) or
        "full_segments" (the authors' code, pbs_attn/src/permute_states.py: a softmax over the
        keys of full segments only, nothing masked, so the last queries weigh in slightly
        differently and, when L is a multiple of S, see their future keys). Orders differ; the
        densities they lead to agree within noise (results/analysis/method_coverage_smollm2_8k).
        "full_segments" runs the torch reference only: backend "triton" refuses it, "auto"
        takes torch. The authors' no-op for a single segment (L <= S) is not copied: with one
        segment every causal block is its own segment's and computed whatever the order.
    """

    def __init__(
        self,
        segment_size: int = 256,
        num_last_queries: int = 128,
        gqa_permutation: str = "head",
        target: str = "key",
        backend: str = "auto",
        scoring: str = "causal",
    ) -> None:
        self.segment_size: int | None = check_int("segment_size", segment_size)
        self.num_last_queries = check_int("num_last_queries", num_last_queries)
        self.gqa_permutation = check_choice("gqa_permutation", gqa_permutation, GQA_PERMUTATIONS)
        if target not in TARGETS:
            raise ConfigError(f"permutation target {target!r} is not implemented; allowed: {', '.join(TARGETS)}")
        self.target = target
        self.backend = check_choice("permuter backend", backend, ESTIMATE_BACKENDS)
        self.scoring = check_choice("permutation scoring", scoring, SCORINGS)
        if scoring != "causal" and backend == "triton":
            raise ConfigError(f"permutation scoring {scoring!r} has no triton backend; use estimate_backend torch or auto")

    def __call__(self, q: torch.Tensor, k: torch.Tensor, *, scale: float) -> KeyOrder:
        """key_perm int64 [B, Hq, L] ("head") or [B, Hkv, L] ("group"), permuted -> original."""
        key_perm, _ = segment_permutation(
            q, k, segment_size=self.segment_size, num_last_queries=self.num_last_queries, scale=scale,
            per_group=self.gqa_permutation == "group", backend=self.backend,
            scoring=self.scoring,
        )
        return KeyOrder(key_perm, self.segment_size)
