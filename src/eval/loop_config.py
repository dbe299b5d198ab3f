"""The `eval` config group (conf/eval/default.yaml): how the evaluation loop runs, checked before
any model work so a bad value is one line, not a failure halfway through a run.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from src.eval.generate import DecodeLimits
from src.registry import ConfigError


@dataclass(frozen=True)
class LoopConfig:
    """decode_batch_size: prefilled samples decoded together (1: token by token, one sample).
    decode_cache_gb: bound on one decode group's batched KV cache, in GB (1e9 bytes).
    concurrent_jobs: jobs sharing the device at once; recorded only, so reports know that prefill
        times were measured under contention.
    warmup_prefills: untimed prefills of the first sample before the timed loop, so that one-time
        costs (Triton compiles, allocator growth) stay out of the first sample's prefill time."""

    decode_batch_size: int
    decode_cache_gb: float
    concurrent_jobs: int
    warmup_prefills: int

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "LoopConfig":
        """The checked settings; ConfigError for a missing or unknown key or a value that is not
        positive (a whole number where one is needed)."""
        allowed = [f.name for f in fields(cls)]
        if set(cfg) != set(allowed):
            raise ConfigError(
                f"eval keys must be exactly {', '.join(allowed)}; got {', '.join(sorted(cfg)) or 'none'}"
            )
        for name, least in (("decode_batch_size", 1), ("concurrent_jobs", 1), ("warmup_prefills", 0)):
            value = cfg[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                kind = "a positive integer" if least else "a non-negative integer"
                raise ConfigError(f"eval.{name} must be {kind}, got {value!r}")
        budget = cfg["decode_cache_gb"]
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0:
            raise ConfigError(f"eval.decode_cache_gb must be a positive number of GB, got {budget!r}")
        return cls(**{name: cfg[name] for name in allowed})

    @property
    def decode_limits(self) -> DecodeLimits:
        return DecodeLimits(batch_size=self.decode_batch_size, cache_bytes=self.decode_cache_gb * 1e9)
