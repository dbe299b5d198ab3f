"""Inputs and checks shared by the attention tests and benchmarks, and the one tolerance rule.

    random_qkv                  seeded random q [B, Hq, L, D], k and v [B, Hkv, L, D] (GQA)
    structured_qkv              the same plus an attention sink and a few heavy keys every query
                                favours, optionally a local band, so selection has something to find
    random_segment_permutation  a random key order inside each full segment, the tail in place
    random_block_mask           block masks: causal with sink and diagonal segments, or anything
    block_token_masks, vertical_slash_token_masks
                                the [B, H, L, L] token masks of the two attention plans
    masked_attention            dense attention over a token mask, in the inputs' precision
    assert_close                FlashAttention's rule for 16-bit results (below)

Everything is drawn on the CPU from a torch.Generator and then moved, so a seed gives the same
numbers on every device.
"""
from __future__ import annotations

import math

import torch

from src.attention.components import Selector
from src.attention.kernels.block_sparse.naive import token_mask
from src.attention.kernels.vertical_slash.naive import vertical_slash_token_mask
from src.attention.ops import causal_block_count, causal_block_layout

Seed = int | torch.Generator


def generator_of(seed: Seed) -> torch.Generator:
    """A CPU generator: `seed` itself when it is one (to chain draws), else a fresh one seeded with it."""
    return seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(seed)


def random_qkv(
    batch: int,
    q_heads: int,
    kv_heads: int,
    length: int,
    head_dim: int,
    *,
    seed: Seed = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    std: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Standard normal q [B, Hq, L, D], k and v [B, Hkv, L, D] times `std`, drawn in that order."""
    gen = generator_of(seed)
    shapes = [(batch, heads, length, head_dim) for heads in (q_heads, kv_heads, kv_heads)]
    return tuple((torch.randn(shape, generator=gen) * std).to(device, dtype) for shape in shapes)


def structured_qkv(
    batch: int,
    q_heads: int,
    kv_heads: int,
    length: int,
    head_dim: int,
    *,
    seed: Seed = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    heavy_fraction: float = 0.02,
    band: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`random_qkv` plus the structure real attention has: key 0 is a sink and a `heavy_fraction`
    of keys are heavy hitters, both aligned with one direction every query shares; with band > 0,
    each query also favours the keys less than `band` positions before it (a local band), through
    a positional code shared by queries and keys."""
    gen = generator_of(seed)
    q, k, v = random_qkv(batch, q_heads, kv_heads, length, head_dim, seed=gen)
    direction = torch.nn.functional.normalize(torch.randn(head_dim, generator=gen), dim=0)
    strength = math.sqrt(6.0 * math.sqrt(head_dim))
    heavy = (torch.rand(batch, kv_heads, length, generator=gen) < heavy_fraction).float()
    heavy[..., 0] = 2.0
    k += strength * heavy[..., None] * direction
    q += strength * direction
    if band:
        # code(i) . code(j) = strength^2 x the mean of cos((i - j) w) over frequencies w up to
        # pi / band: strength^2 at i = j, falling to about 0 once i - j reaches the band.
        half = head_dim // 2
        frequencies = torch.arange(1, half + 1) * (math.pi / (band * half))
        angle = torch.arange(length)[:, None] * frequencies
        code = torch.cat([angle.cos(), angle.sin()], dim=-1) * strength / math.sqrt(half)
        q[..., : 2 * half] += code
        k[..., : 2 * half] += code
    return tuple(t.to(device=device, dtype=dtype) for t in (q, k, v))


def random_segment_permutation(
    batch: int, heads: int, length: int, segment_size: int, *, seed: Seed = 0, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """int64 [B, H, L]: a uniformly random order inside each full segment, the tail in place."""
    gen = generator_of(seed)
    perm = torch.arange(length).repeat(batch, heads, 1)
    full = (length // segment_size) * segment_size
    if full:
        noise = torch.rand(batch, heads, full // segment_size, segment_size, generator=gen)
        order = noise.argsort(-1) + torch.arange(0, full, segment_size)[:, None]
        perm[..., :full] = order.reshape(batch, heads, full)
    return perm.to(device)


def random_block_mask(
    batch: int,
    heads: int,
    length: int,
    block_size: int,
    *,
    density: float,
    seed: Seed = 0,
    segment_size: int | None = None,
    causal: bool = True,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Bool [B, H, nb, nb] over (query block, key block in segment order).

    causal: the sink block and every block of the query block's own segment, plus other causal
    blocks at random so that about `density` of the causal blocks are computed (what selectors
    produce). Otherwise every block, future ones included, is selected with probability
    `density` (the kernels must ignore what lies in the future).
    """
    gen = generator_of(seed)
    allowed, diagonal = causal_block_layout(length, block_size, segment_size, torch.device("cpu"))
    nb = allowed.shape[0]
    if not causal:
        return (torch.rand(batch, heads, nb, nb, generator=gen) < density).to(device)
    forced = diagonal.clone()
    forced[:, 0] = True
    forced &= allowed
    optional = allowed & ~forced
    target = density * causal_block_count(length, block_size) - forced.sum().item()
    p = min(max(target / max(optional.sum().item(), 1), 0.0), 1.0)
    picks = torch.rand(batch, heads, nb, nb, generator=gen) < p
    return (forced | (picks & optional)).to(device)


def block_token_masks(
    block_mask: torch.Tensor, key_perm: torch.Tensor | None, *, block_size: int, length: int
) -> torch.Tensor:
    """Bool [B, Hq, L, L] of a block-sparse plan: query i may attend key j (original positions)."""
    batch, heads = block_mask.shape[:2]
    masks = torch.empty(batch, heads, length, length, dtype=torch.bool, device=block_mask.device)
    for b in range(batch):
        for h in range(heads):
            perm = None if key_perm is None else key_perm[b, h * key_perm.shape[1] // heads]
            masks[b, h] = token_mask(block_mask[b, h], perm, block_size=block_size, length=length)
    return masks


def vertical_slash_token_masks(vertical_indices: torch.Tensor, slash_offsets: torch.Tensor, length: int) -> torch.Tensor:
    """Bool [B, H, L, L] of a vertical-slash plan: query i may attend key j."""
    return torch.stack(
        [
            torch.stack([vertical_slash_token_mask(v, s, length) for v, s in zip(vh, sh)])
            for vh, sh in zip(vertical_indices, slash_offsets)
        ]
    )


def masked_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor, *, scale: float
) -> torch.Tensor:
    """softmax(q k^T * scale over `allowed`) v in the inputs' own precision, [B, Hq, L, D].

    q: [B, Hq, L, D]; k, v: [B, Hkv, L, D]; allowed: bool [B, Hq, L, L]; rows with no allowed key
    are zeros. Run on 16-bit inputs it is the baseline of `assert_close`; on fp32 ones, the truth.
    """
    group = q.shape[1] // k.shape[1]
    k, v = (t.repeat_interleave(group, dim=1) for t in (k, v))
    scores = (q @ k.transpose(-1, -2)) * scale
    weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1).nan_to_num(0.0)
    return weights.to(v.dtype) @ v


def assert_close(
    actual: torch.Tensor,
    expected: torch.Tensor,
    *,
    baseline: torch.Tensor | None = None,
    factor: float = 2.0,
    atol: float = 1e-5,
    rtol: float = 1e-4,
) -> None:
    """`actual` against `expected`, the ground truth computed in fp32 from the same inputs.

    With 16-bit inputs, give `baseline`: the same computation done by torch at the inputs'
    precision. Then FlashAttention's rule applies: the largest error of `actual` may be at most
    `factor` times that of `baseline`, plus atol, so a kernel is held to what its precision costs
    rather than to a fixed number (a 16-bit `actual` without a baseline is refused). Without a
    baseline, `actual` must match elementwise within atol + rtol * |expected|.
    """
    assert actual.shape == expected.shape, f"shape {tuple(actual.shape)} != expected {tuple(expected.shape)}"
    if baseline is None:
        if actual.dtype in (torch.float16, torch.bfloat16):
            raise ValueError(f"a {actual.dtype} result needs the same-precision torch baseline")
        torch.testing.assert_close(actual, expected.to(actual.dtype), atol=atol, rtol=rtol)
        return
    error = (actual.float() - expected.float()).abs().max().item()
    allowed = factor * (baseline.float() - expected.float()).abs().max().item() + atol
    assert error <= allowed, f"max error {error:.3g} > {factor:g} x the same-precision torch error + {atol:g} = {allowed:.3g}"


def assert_cuda_selection_agrees_with_cpu(selector: Selector, q: torch.Tensor, k: torch.Tensor, *, scale: float) -> None:
    """Natural-order selection on CUDA matches the CPU one in more than 99% of the blocks.

    Not all of them: GPU reductions sum in another order, so a block whose score sits right at a
    threshold may flip.
    """
    cpu = selector(q, k, scale=scale).block_mask
    gpu = selector(q.cuda(), k.cuda(), scale=scale).block_mask
    assert gpu.is_cuda and (gpu.cpu() == cpu).float().mean() > 0.99
