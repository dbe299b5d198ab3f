"""Which block-sparse attention backend `backend: auto` should run on a CPU: the torch reference
(naive.py) or FlexAttention (flex.py, eager on CPU; `--compiled` also times torch.compile'd
flex_attention), at SmolLM2-135M's attention shapes (9 query heads, 3 KV heads, head dim 64, fp32).

    python -m experiments.bench_cpu_backends --lengths 2048 4096

Inputs: random q/k/v, a PBS-style key permutation inside 256-key segments, and a causal block
mask with the sink, the diagonal segment and a random share of the other blocks (--density).
"""
from __future__ import annotations

import argparse
import functools

import torch
from torch.nn.attention.flex_attention import flex_attention

from experiments.timing import median_ms
from src.attention.kernels.block_sparse import block_sparse_attention
from src.attention.kernels.block_sparse import flex as flex_module


def inputs(length: int, heads: int, kv_heads: int, head_dim: int, block: int, segment: int, density: float):
    """q, k, v, a block mask and a segment permutation at one length (seeded)."""
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(1, heads, length, head_dim, generator=gen)
    k, v = (torch.randn(1, kv_heads, length, head_dim, generator=gen) for _ in range(2))
    nb = -(-length // block)
    causal = torch.ones(nb, nb, dtype=torch.bool).tril()
    mask = (torch.rand(1, heads, nb, nb, generator=gen) < density) & causal
    mask[..., 0] = True
    per_segment = segment // block
    rows = torch.arange(nb)
    own_segment = (rows[:, None] // per_segment == rows[None, :] // per_segment) & causal
    mask |= own_segment
    perm = torch.arange(length).repeat(1, heads, 1)
    full = length // segment * segment
    shuffled = torch.argsort(torch.rand(1, heads, full // segment, segment, generator=gen), dim=-1)
    perm[..., :full] = (shuffled + torch.arange(0, full, segment)[:, None]).reshape(1, heads, full)
    return q, k, v, mask, perm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[2048, 4096])
    parser.add_argument("--density", type=float, default=0.3)
    parser.add_argument("--compiled", action="store_true", help="also time torch.compile'd flex_attention")
    args = parser.parse_args()
    print(f"threads {torch.get_num_threads()}, torch {torch.__version__}")
    for length in args.lengths:
        q, k, v, mask, perm = inputs(length, 9, 3, 64, 128, 256, args.density)
        run = functools.partial(
            block_sparse_attention, q, k, v, mask, block_size=128, key_perm=perm, segment_size=256, scale=0.125
        )
        reference = run(backend="torch")
        times = {}
        for backend in ("torch", "flex"):
            torch.testing.assert_close(run(backend=backend), reference, atol=1e-4, rtol=1e-4)
            times[backend] = median_ms(lambda: run(backend=backend), warmup=1, budget_ms=3000, max_runs=5)
        if args.compiled:
            compiled = torch.compile(flex_attention)
            original = flex_module.flex_attention
            flex_module.flex_attention = compiled
            try:
                torch.testing.assert_close(run(backend="flex"), reference, atol=1e-4, rtol=1e-4)
                times["flex (compiled)"] = median_ms(lambda: run(backend="flex"), warmup=1, budget_ms=3000, max_runs=5)
            finally:
                flex_module.flex_attention = original
        density = mask.sum().item() / (mask.shape[1] * torch.ones(mask.shape[-1], mask.shape[-1]).tril().sum().item())
        print(f"L={length} block density {density:.2f}: " + ", ".join(f"{name} {ms:.0f} ms" for name, ms in times.items()))


if __name__ == "__main__":
    main()
