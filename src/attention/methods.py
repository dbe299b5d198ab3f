"""A sparse-prefill method: a permuter, a selector and a kernel backend composed from config.

`conf/method/<name>.yaml` names the parts; nothing here branches on a method's name.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from src.attention.components import PERMUTERS, SELECTORS, Permuter, Selector
from src.attention.kernels import ATTENTION_BACKENDS, OP_BACKENDS
from src.attention.kernels.backends import check_triton_device
from src.attention.plan import DensePlan, Plan
from src.attention.stats import StatsRecorder
from src.checks import check_choice, check_int
from src.registry import ConfigError


@dataclass
class SparsePrefillMethod:
    """Runs one layer's prefill attention: permute keys, select blocks, compute the plan.

    Below `min_seq_len` tokens the method falls back to dense SDPA, where estimation overhead
    would cost more than sparsity saves (the crossover measured in experiments/bench_attention.py).
    """

    name: str
    permuter: Permuter
    selector: Selector
    backend: str
    min_seq_len: int
    stats: StatsRecorder = field(default_factory=StatsRecorder)

    def plan(self, q: torch.Tensor, k: torch.Tensor, *, scale: float, layer_idx: int | None = None) -> Plan:
        """What this method computes for one layer's prompt, q [B, Hq, L, D] and k [B, Hkv, L, D]:
        dense below min_seq_len, otherwise the selector's plan on the permuter's key order."""
        if q.shape[2] < self.min_seq_len:
            return DensePlan()
        key_order = self.permuter(q, k, scale=scale)
        return self.selector(q, k, key_order=key_order, scale=scale, layer_idx=layer_idx)

    def prefill(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, scale: float, layer_idx: int
    ) -> torch.Tensor:
        """Causal attention output [B, Hq, L, D] for the whole prompt of one layer."""
        length = q.shape[2]
        with self.stats.timed("estimate", q.device):
            plan = self.plan(q, k, scale=scale, layer_idx=layer_idx)
        if length < self.min_seq_len:
            self.stats.dense_fallback_layers += 1
        with self.stats.timed("attention", q.device):
            out = plan.attend(q, k, v, scale=scale, backend=self.backend)
        self.stats.record_density(layer_idx, plan.density(length), q.shape[1])
        return out


def check_compatible(permuter: Permuter, selector: Selector, backend: str) -> None:
    """Permutation segments must be made of whole selection blocks (keys never cross a block edge),
    and the backend must exist for every attention op the selector's plans run on."""
    segment_size = permuter.segment_size
    block_size = getattr(selector, "block_size", None)
    if segment_size is not None and block_size is not None and segment_size % block_size:
        raise ConfigError(
            f"segment_size {segment_size} is not a multiple of block_size {block_size}; "
            f"use a segment_size in {{{block_size}, {2 * block_size}, {4 * block_size}, ...}}"
        )
    ops = getattr(selector, "attention_ops", ("block-sparse attention",))
    allowed = [name for name in ATTENTION_BACKENDS if all(name in OP_BACKENDS[op] for op in ops)]
    if backend not in allowed:
        raise ConfigError(
            f"method.backend {backend!r} cannot run the {' and '.join(ops)} this selector plans; allowed: {', '.join(allowed)}"
        )


METHOD_KEYS = ("name", "backend", "min_seq_len", "permuter", "selector")


def configured_backends(cfg: Any) -> dict[str, str | None]:
    """Every backend a method node names, by its config key (None where the node has none)."""
    return {
        "method.backend": cfg.get("backend"),
        "method.estimate_backend": cfg.get("estimate_backend"),
        **{f"method.{part}.backend": cfg[part].get("backend") for part in ("permuter", "selector")},
    }


def build_method(
    cfg: Mapping[str, Any], stats: StatsRecorder | None = None, *, device: torch.device | None = None
) -> SparsePrefillMethod:
    """Compose the method described by a `conf/method/*.yaml` node, or a plain dict of the same
    shape (`src.api.method_config(name)` makes one); config errors surface here.

    device: where the model will run, when known; an explicit "triton" backend Triton cannot run
    there is refused now, naming its key, rather than at the first prefill.
    """
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.create(dict(cfg))
    missing = [key for key in METHOD_KEYS if key not in cfg]
    if missing:
        raise ConfigError(
            f"method config lacks {', '.join(missing)}; it needs {', '.join(METHOD_KEYS)} "
            "(src.api.method_config(name, **overrides) composes a complete one)"
        )
    check_choice("method.backend", cfg.backend, ATTENTION_BACKENDS)
    if device is not None:
        check_triton_device(configured_backends(cfg), device)
    check_int("method.min_seq_len", cfg.min_seq_len, minimum=0)
    permuter_cfg = dict(cfg.permuter)
    selector_cfg = dict(cfg.selector)
    permuter = PERMUTERS.build(permuter_cfg.pop("name"), permuter_cfg)
    selector = SELECTORS.build(selector_cfg.pop("name"), selector_cfg)
    check_compatible(permuter, selector, cfg.backend)
    return SparsePrefillMethod(
        name=cfg.name,
        permuter=permuter,
        selector=selector,
        backend=cfg.backend,
        min_seq_len=int(cfg.min_seq_len),
        stats=stats or StatsRecorder(),
    )
