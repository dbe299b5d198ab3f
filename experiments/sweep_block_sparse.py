"""Variants of the block-sparse attention kernel, checked and timed in one run, no code edits between.

    python3 -m experiments.sweep_block_sparse --out $OUT/sweep_block_sparse.json           # H200 sweep
    python3 -m experiments.sweep_block_sparse --lengths 512 --check-lengths 200 \
        --heads 4 --kv-heads 2 --head-dim 64 --block 32 --segment 64 --variants tma:32,32,4,2   # CPU smoke

A variant is KV_LOADS[@MAXNREG][:M,N,WARPS,STAGES] (see `parse_variant`), or "default" for
the kernel's own choice. Every variant is first checked for correctness on random bf16 inputs at
small odd lengths (GQA, batch 2, permuted per query and per KV head, and not) against an fp32
reference, next to the error of the same masked attention computed by torch in bf16; then timed
at each length on the benchmark's masks (Llama-3.1-8B shapes by default): density 1 (no
permutation) and each sparse density (keys permuted inside segments), with dense SDPA and a
dense causal Triton kernel in the style of Triton's fused-attention tutorial (the ceiling of what
Triton reaches on this card for the same work) in the same run. The last lines are a table.
"""
from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from typing import Any

import torch
import triton
import triton.language as tl
from triton.errors import TritonError
from triton.tools.tensor_descriptor import TensorDescriptor

from experiments.bench_attention import attention_tflops, random_block_mask, random_segment_permutation
from experiments.timing import median_ms, write_record
from src.attention.kernels.block_sparse.naive import block_sparse_attention_reference, token_mask
from src.attention.kernels.block_sparse.triton import KernelOptions, permute_kv, run_block_sparse_kernel
from src.attention.kernels.triton_utils import LOG2E, TileConfig
from src.attention.ops import causal_block_count

Variant = tuple[TileConfig | None, KernelOptions | None]


def parse_variant(text: str) -> Variant:
    """"default", or KV_LOADS[@MAXNREG][:M,N,WARPS,STAGES], e.g. "tma@128:128,64,8,2"."""
    if text == "default":
        return None, None
    head, _, tile = text.partition(":")
    loads, _, maxnreg = head.partition("@")
    options = KernelOptions(kv_loads=loads, maxnreg=int(maxnreg) if maxnreg else None)
    return (TileConfig(*map(int, tile.split(","))) if tile else None), options


@triton.jit
def _dense_causal_fwd(
    q_desc, k_desc, v_desc, o_desc, num_q_heads, group_size, seq_len, qk_scale,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Dense causal attention over contiguous [B*H*L, D] rows (L a multiple of BLOCK_M), K/V tiles
    read in order: the tutorial kernel's structure (unmasked tiles, then the diagonal ones masked)."""
    q_tile = tl.num_programs(0) - 1 - tl.program_id(0)
    batch_head = tl.program_id(1)
    kv_row0 = (batch_head // num_q_heads * (num_q_heads // group_size) + batch_head % num_q_heads // group_size) * seq_len
    q_row = batch_head * seq_len + q_tile * BLOCK_M
    q = q_desc.load([q_row, 0])
    q_pos = q_tile * BLOCK_M + tl.arange(0, BLOCK_M)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    for start in range(0, q_tile * BLOCK_M, BLOCK_N):
        k = k_desc.load([kv_row0 + start, 0])
        qk = tl.dot(q, tl.trans(k))
        m_new = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
        p = tl.math.exp2(qk * qk_scale - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        acc = tl.dot(p.to(k.dtype), v_desc.load([kv_row0 + start, 0]), acc)
        m_i = m_new
    for start in range(q_tile * BLOCK_M, (q_tile + 1) * BLOCK_M, BLOCK_N):
        k = k_desc.load([kv_row0 + start, 0])
        qk = tl.dot(q, tl.trans(k)) * qk_scale
        qk = tl.where((start + tl.arange(0, BLOCK_N))[None, :] <= q_pos[:, None], qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        p = tl.math.exp2(qk - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        acc = tl.dot(p.to(k.dtype), v_desc.load([kv_row0 + start, 0]), acc)
        m_i = m_new
    o_desc.store([q_row, 0], (acc / l_i[:, None]).to(o_desc.dtype))


def dense_causal_triton(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, tile: TileConfig, maxnreg: int | None = None
) -> torch.Tensor:
    """The tutorial-style dense causal kernel on contiguous q [B, Hq, L, D], k/v [B, Hkv, L, D]."""
    batch, heads, length, dim = q.shape
    if length % tile.block_m or tile.block_m % tile.block_n:
        raise ValueError(f"length {length} must be a multiple of block_m {tile.block_m}, itself a multiple of block_n")
    out = torch.empty_like(q)
    rows = lambda t, n: TensorDescriptor.from_tensor(t.reshape(-1, dim), [n, dim])  # noqa: E731
    _dense_causal_fwd[(length // tile.block_m, batch * heads)](
        rows(q, tile.block_m), rows(k, tile.block_n), rows(v, tile.block_n), rows(out, tile.block_m),
        heads, heads // k.shape[1], length, dim**-0.5 * LOG2E,
        HEAD_DIM=dim, BLOCK_M=tile.block_m, BLOCK_N=tile.block_n, num_warps=tile.num_warps, num_stages=tile.num_stages,
        **({} if maxnreg is None else {"maxnreg": maxnreg}),
    )
    return out


def masked_sdpa(q, k, v, mask, perm, block_size: int) -> torch.Tensor:
    """The same masked attention by torch SDPA in q's precision (rows with no visible key: 0)."""
    batch, heads, length, _ = q.shape
    group = heads // k.shape[1]
    allowed = torch.stack([
        torch.stack([
            token_mask(mask[b, h], None if perm is None else perm[b, h * perm.shape[1] // heads], block_size=block_size, length=length)
            for h in range(heads)
        ])
        for b in range(batch)
    ])
    k, v = (t.repeat_interleave(group, dim=1) for t in (k, v))
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    return torch.nan_to_num(out, nan=0.0)


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.float() - ref.float()).norm() / ref.float().norm()).item()


CHECK_SHAPES = (  # batch, q heads, kv heads, permutation heads ("q", "kv" or None)
    (2, 8, 2, "q"),
    (1, 14, 2, "kv"),
    (1, 4, 4, None),
)


def check_rows(args: argparse.Namespace, variants: dict[str, Variant], device: torch.device, dtype: torch.dtype) -> list[dict[str, Any]]:
    """Error of every variant against an fp32 reference, next to torch's error in `dtype`."""
    rows = []
    for length in args.check_lengths:
        for batch, hq, hkv, perm_heads in CHECK_SHAPES:
            gen = torch.Generator().manual_seed(length * 31 + hq)
            q = torch.randn(batch, hq, length, args.head_dim, generator=gen).to(device, dtype)
            k, v = (torch.randn(batch, hkv, length, args.head_dim, generator=gen).to(device, dtype) for _ in range(2))
            mask = random_block_mask(batch, hq, length, args.block, args.segment, 0.4, gen).to(device)
            perm = None
            if perm_heads is not None:
                perm = random_segment_permutation(batch, hq if perm_heads == "q" else hkv, length, args.segment, gen).to(device)
            ref = block_sparse_attention_reference(q.float(), k.float(), v.float(), mask, block_size=args.block, key_perm=perm)
            torch_err = rel_err(masked_sdpa(q, k, v, mask, perm, args.block), ref)
            for name, (tile, options) in variants.items():
                poison = torch.full_like(q, float("nan"))  # the allocator hands this block to the output next
                del poison
                out = run_block_sparse_kernel(
                    q, k, v, mask, block_size=args.block, key_perm=perm, segment_size=args.segment, scale=None,
                    config=tile, options=options,
                )
                err = rel_err(out, ref)
                rows.append({
                    "length": length, "check": f"L{length} B{batch} Hq{hq} Hkv{hkv} perm {perm_heads}", "variant": name,
                    "rel_err": round(err, 6), "torch_rel_err": round(torch_err, 6),
                    "ok": bool(torch.isfinite(out).all()) and err <= 2 * torch_err + 1e-4,
                })
    return rows


def timing_rows(args: argparse.Namespace, variants: dict[str, Variant], length: int, device: torch.device, dtype: torch.dtype) -> list[dict[str, Any]]:
    """SDPA, the tutorial-style dense kernel, and every variant at density 1 and each sparse density."""
    gen = torch.Generator().manual_seed(length)
    q = torch.randn(1, args.heads, length, args.head_dim, generator=gen).to(device, dtype)
    k, v = (torch.randn(1, args.kv_heads, length, args.head_dim, generator=gen).to(device, dtype) for _ in range(2))
    rows: list[dict[str, Any]] = []

    def add(name: str, fn: Callable[[], torch.Tensor], density: float | None, expected: torch.Tensor | None = None) -> None:
        """Time fn; when `expected` is given, also record fn's relative error to it."""
        row: dict[str, Any] = {"length": length, "name": name, "density": None if density is None else round(density, 4)}
        try:
            row["ms"] = round(median_ms(fn, budget_ms=args.budget_ms), 4)
            if expected is not None:
                row["rel_err_vs_sdpa"] = round(rel_err(fn(), expected), 5)
        except (ValueError, RuntimeError, TritonError) as error:  # a shape this variant cannot run
            row["ms"], row["note"] = None, f"{type(error).__name__}: {str(error).strip().splitlines()[-1][:200]}"
            rows.append(row)
            return
        if density is not None:
            row["tflops"] = round(attention_tflops(length, args.heads, args.head_dim, density) / (row["ms"] / 1e3), 1)
        rows.append(row)

    sdpa = functools.partial(torch.nn.functional.scaled_dot_product_attention, q, k, v, is_causal=True, enable_gqa=True)
    add("sdpa_dense", sdpa, 1.0)
    expected = sdpa()
    for tile in args.ceiling_tiles:
        ceiling = functools.partial(dense_causal_triton, q, k, v, TileConfig(*tile[:4]), *tile[4:])
        add(f"tutorial_dense[{','.join(map(str, tile))}]", ceiling, 1.0, expected)
    full = random_block_mask(1, args.heads, length, args.block, None, 1.0, gen).to(device)
    perm = random_segment_permutation(1, args.heads, length, args.segment, gen).to(device)
    masks = [(1.0, full, None, None)]
    for density in args.densities:
        mask = random_block_mask(1, args.heads, length, args.block, args.segment, density, gen).to(device)
        masks.append((mask.sum().item() / (args.heads * causal_block_count(length, args.block)), mask, perm, args.segment))
    add("permute_kv", functools.partial(permute_kv, k, v, perm), None)
    for name, (tile, options) in variants.items():
        for density, mask, key_perm, segment in masks:
            run = functools.partial(
                run_block_sparse_kernel, q, k, v, mask, block_size=args.block, key_perm=key_perm, segment_size=segment,
                scale=None, config=tile, options=options,
            )
            dense = key_perm is None
            add(f"{name} {'dense' if dense else 'sparse_perm'}", run, density, expected if dense else None)
    sdpa_ms = rows[0]["ms"]
    for row in rows:
        if row.get("ms") and sdpa_ms:
            row["ratio_to_sdpa"] = round(row["ms"] / sdpa_ms, 3)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[8192, 32768, 131072])
    parser.add_argument("--check-lengths", type=int, nargs="*", default=[1500, 2100])
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--kv-heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--segment", type=int, default=256)
    parser.add_argument("--densities", type=float, nargs="*", default=[0.2])
    parser.add_argument("--variants", nargs="+", default=["default"], help="see parse_variant")
    parser.add_argument("--ceiling-tiles", nargs="*", type=lambda s: tuple(map(int, s.split(","))), default=[],
                        help="M,N,WARPS,STAGES[,MAXNREG] tiles of the tutorial-style dense kernel")
    parser.add_argument("--budget-ms", type=float, default=500.0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float16
    variants = {name: parse_variant(name) for name in args.variants}
    rows = check_rows(args, variants, device, dtype)
    write_record(args, rows)
    for row in rows:
        print(row, flush=True)
    for length in args.lengths:
        rows += timing_rows(args, variants, length, device, dtype)
        write_record(args, rows)
        print(f"[timing] {length} done", flush=True)
    failed = [r for r in rows if r.get("ok") is False]
    print(f"checks: {sum(1 for r in rows if 'ok' in r) - len(failed)} ok, {len(failed)} failed")
    cols = ["length", "name", "density", "ms", "ratio_to_sdpa", "tflops", "rel_err_vs_sdpa", "note"]
    print(" | ".join(cols))
    for row in rows:
        if "ok" not in row:
            print(" | ".join("" if row.get(c) is None else str(row[c]) for c in cols))


if __name__ == "__main__":
    main()
