"""Per-layer, per-head statistics a method records during one prefill: density and timings.

The recorder is reset per sample; `summary()` is what lands in the sample's results row.
"""
from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from collections.abc import Iterator

import torch

DENSITY_DEFINITION = (
    "computed blocks / causal blocks (n(n+1)/2 for n blocks of the prompt), per layer and head, averaged: "
    "computed blocks include the blocks above the diagonal inside a permuted diagonal segment (PBS computes its "
    "own segment whole, as keys moved inside it), so short prompts can exceed 1; pair-level plans (MInference) "
    "count computed (query, key) pairs over causal pairs; dense is 1"
)


class StatsRecorder:
    """Collects density per (layer, head) and, when `timing` is on, estimation/attention time.

    Timing synchronises the device around each stage, so it is off unless asked for.
    """

    def __init__(self, timing: bool = False) -> None:
        self.timing = timing
        self.reset()

    def reset(self) -> None:
        self.density: dict[int, torch.Tensor | list[float]] = {}
        self.times_ms: dict[str, float] = defaultdict(float)
        self.dense_fallback_layers = 0

    def record_density(self, layer_idx: int, density: torch.Tensor | float, num_heads: int) -> None:
        """Store the per-head density of one layer's prefill (mean over the batch).

        A device tensor stays on the device until `summary()`, so recording never stalls the
        prefill on a host synchronisation.
        """
        if isinstance(density, torch.Tensor):
            self.density[layer_idx] = density.float().mean(0)
        else:
            self.density[layer_idx] = [float(density)] * num_heads

    @contextmanager
    def timed(self, stage: str, device: torch.device) -> Iterator[None]:
        """Accumulate wall time of `stage` in ms (device-synchronised) when timing is on."""
        if not self.timing:
            yield
            return
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        yield
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        self.times_ms[stage] += (time.perf_counter() - start) * 1000

    def summary(self) -> dict[str, object]:
        """Mean density, per-layer-per-head density and stage timings for one sample."""
        layers = [
            values.tolist() if isinstance(values, torch.Tensor) else values
            for values in (self.density[i] for i in sorted(self.density))
        ]
        flat = [v for heads in layers for v in heads]
        out: dict[str, object] = {
            "density": sum(flat) / len(flat) if flat else None,
            "density_per_layer_head": [[round(v, 4) for v in heads] for heads in layers],
            "dense_fallback_layers": self.dense_fallback_layers,
        }
        out.update({f"{stage}_ms": round(ms, 3) for stage, ms in self.times_ms.items()})
        return out
