"""One-layer prefill attention benchmark: SDPA vs FlexAttention vs our block-sparse kernel, and
each sparse method's estimation / attention breakdown (the paper's Table 7), in one run.

    python -m experiments.bench_attention --out $OUT/bench_attention.json         # H100, Llama-3.1-8B shapes
    python -m experiments.bench_attention --lengths 256 512 --heads 4 --kv-heads 2 \
        --head-dim 64 --block 32 --segment 64 --no-flex                             # tiny CPU smoke run

Inputs: random q/k/v (bf16 on GPU) for the kernel rows, with random block masks at fixed
densities (sink block and diagonal segments included, keys permuted inside segments). Method
rows use "heavy-hitter" structured inputs (a sink, ~2% heavy keys aligned with a shared query
direction) so selection has something to find; `--qkv FILE` uses tensors captured from a real
model instead (experiments.capture_qkv). Every figure's ratio is to SDPA measured in the same run.
"""
from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from typing import Any

import torch
from omegaconf import DictConfig
from triton.errors import TritonError

from experiments.timing import graph_replay_ms, median_ms, write_record
from src.attention.kernels import TileConfig, block_sparse_attention
from src.attention.kernels.block_column import block_column_index
from src.attention.kernels.block_column.triton import BlockColumnTile, attention as block_column_attention_triton
from src.attention.kernels.block_sparse.triton import block_sparse_attention_triton
from src.attention.kernels.pbs_estimate import PermutationLaunch, segment_permutation_triton
from src.attention.kernels.vertical_slash import TileShape, vertical_slash_attention_triton
from src.attention.methods import build_method
from src.attention.ops import causal_block_count
from src.attention.testing import random_block_mask, random_segment_permutation, structured_qkv
from src.configs import compose_config

# What a kernel raises for a launch shape it cannot run (a check of ours, or Triton at compile time).
TILE_ERRORS = (ValueError, TritonError)


def int_tuple_parser(fields: str) -> Callable[[str], tuple[int, ...]]:
    """argparse type reading "A,B,..." as positive ints, one per comma-separated name in `fields`."""
    count = len(fields.split(","))

    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(part) for part in text.split(","))
        except ValueError:
            values = ()
        if len(values) != count or min(values) < 1:
            raise argparse.ArgumentTypeError(f"{text!r} is not {fields} ({count} positive ints)")
        return values

    return parse


parse_tile = int_tuple_parser("M,N,WARPS,STAGES")
parse_perm_launch = int_tuple_parser("LSE_KEYS,LSE_PROGRAMS,LSE_WARPS,ORDER_KEYS,ORDER_WARPS,STAGES")
_parse_bc_shape = int_tuple_parser("BLOCKS,WINDOWS,WARPS,STAGES")


# What a method spec "name:variant" sets (pbs:head, minference:token_union).
VARIANT_KEYS = {"pbs": "gqa_permutation", "minference": "kernel_semantics"}


def bc_tile(text: str) -> BlockColumnTile:
    """A block-column tile from "BLOCKS,WINDOWS,WARPS,STAGES", then optionally ",tma" (TMA loads)
    and ",regN" (a cap of N registers per thread)."""
    fields = text.split(",")
    extras = fields[4:]
    tma = "tma" in extras
    caps = [field[3:] for field in extras if field.startswith("reg") and field[3:].isdigit()]
    if len(extras) != tma + len(caps) or len(caps) > 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not BLOCKS,WINDOWS,WARPS,STAGES[,tma][,regN]")
    try:
        return BlockColumnTile(*_parse_bc_shape(",".join(fields[:4])), tma=tma, maxnreg=int(caps[0]) if caps else None)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from error


def parse_bc_tile(text: str) -> str:
    """argparse type: the text of a valid `bc_tile` (kept as text, so the record stays JSON)."""
    bc_tile(text)
    return text


def tile_label(tile: tuple[int, ...] | None) -> str:
    """A tile as it appears in row names: "M,N,WARPS,STAGES", or "default" for the kernel's own."""
    return "default" if tile is None else ",".join(map(str, tile))


def attention_tflops(length: int, heads: int, dim: int, density: float) -> float:
    """FLOPs of causal attention at `density` of the causal blocks, in TFLOP."""
    return 4 * heads * dim * (length * (length + 1) / 2) * density / 1e12


def error_note(error: Exception) -> str:
    """The error's type and last message line (a Triton compile error ends with its cause)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[-1] if lines else ''}"


def add_timing(
    rows: list[dict[str, Any]],
    args: argparse.Namespace,
    length: int,
    name: str,
    fn: Callable[[], object],
    density: float | None,
    skip: tuple[type[Exception], ...] = (),
) -> None:
    """Append a row with fn's median time (and attention TFLOP/s when density is given).

    Running out of GPU memory, or an error in `skip` (a tile the kernel rejects), records ms None
    with a note instead, so one failed measurement does not end the run.
    """
    row: dict[str, Any] = {"length": length, "name": name, "density": None if density is None else round(density, 4)}
    try:
        ms = median_ms(fn, budget_ms=args.budget_ms)
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        rows.append({**row, "ms": None, "note": "OOM"})
        return
    except skip as error:
        rows.append({**row, "ms": None, "note": error_note(error)})
        return
    row["ms"] = round(ms, 4)
    if density is not None:
        row["tflops"] = round(attention_tflops(length, args.heads, args.head_dim, density) / (ms / 1e3), 1)
    rows.append(row)


def kernel_rows(args: argparse.Namespace, length: int, device: torch.device, dtype: torch.dtype) -> list[dict[str, Any]]:
    """SDPA, our kernel dense (and at each `--tiles` shape) and sparse at each density, on random inputs."""
    gen = torch.Generator().manual_seed(length)
    shape_q = (1, args.heads, length, args.head_dim)
    shape_kv = (1, args.kv_heads, length, args.head_dim)
    q = torch.randn(shape_q, generator=gen).to(device, dtype)
    k = torch.randn(shape_kv, generator=gen).to(device, dtype)
    v = torch.randn(shape_kv, generator=gen).to(device, dtype)
    rows: list[dict[str, Any]] = []
    add = functools.partial(add_timing, rows, args, length)

    sdpa = lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)  # noqa: E731
    add("sdpa_dense", sdpa, 1.0)
    full = random_block_mask(1, args.heads, length, args.block, density=1.0, seed=gen, device=device)
    backends = ["triton"] + ([] if args.no_flex else ["flex"])
    for backend in backends:
        add(f"{backend}_dense", lambda: block_sparse_attention(q, k, v, full, block_size=args.block, backend=backend), 1.0)
    for tile in args.tiles:
        config = TileConfig(*tile)
        add(
            f"triton_dense_tile[{tile_label(tile)}]",
            lambda: block_sparse_attention_triton(q, k, v, full, block_size=args.block, config=config),
            1.0,
            skip=TILE_ERRORS,
        )
    perm = random_segment_permutation(1, args.heads, length, args.segment, seed=gen, device=device)
    for density in args.densities:
        mask = random_block_mask(
            1, args.heads, length, args.block, density=density, seed=gen, segment_size=args.segment, device=device
        )
        actual = mask.sum().item() / (args.heads * causal_block_count(length, args.block))
        for backend in backends:
            add(
                f"{backend}_sparse_perm",
                lambda: block_sparse_attention(q, k, v, mask, block_size=args.block, key_perm=perm, segment_size=args.segment, backend=backend),
                actual,
            )
        for backend in backends:  # the same block counts on unpermuted keys: what a user could run without PBS
            add(
                f"{backend}_sparse_noperm",
                lambda: block_sparse_attention(q, k, v, mask, block_size=args.block, segment_size=args.segment, backend=backend),
                actual,
            )
        del mask
    return rows


def method_cfg(name: str, args: argparse.Namespace, overrides: dict[str, Any]) -> DictConfig:
    """`conf/method/<name>.yaml` at this run's block and segment size (where the method has them)."""
    cfg = compose_config({"method": name}, [f"method.{key}={value}" for key, value in overrides.items()]).method
    if "block_size" in cfg:
        cfg.block_size = args.block
    if "segment_size" in cfg:
        cfg.segment_size = args.segment
    return cfg


def method_inputs(args: argparse.Namespace, length: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """q, k, v of the method rows: the first `length` tokens of `--qkv`, or structured random ones."""
    if args.qkv:
        captured = torch.load(args.qkv)
        return tuple(captured[n][..., :length, :].to(device, dtype).contiguous() for n in ("q", "k", "v"))
    return structured_qkv(1, args.heads, args.kv_heads, length, args.head_dim, seed=length, dtype=dtype, device=device)


def mean_density(plan: Any, length: int) -> float:
    """A plan's computed fraction of causal pairs, averaged over batch and heads."""
    return float(torch.as_tensor(plan.density(length)).float().mean())


def method_rows(args: argparse.Namespace, length: int, device: torch.device, dtype: torch.dtype) -> list[dict[str, Any]]:
    """Estimation (permutation + selection) and attention time of every sparse method."""
    q, k, v = method_inputs(args, length, device, dtype)
    scale = q.shape[-1] ** -0.5
    rows: list[dict[str, Any]] = []
    for spec in args.methods:
        name, _, variant = spec.partition(":")
        overrides = {VARIANT_KEYS[name]: variant} if variant else {}
        method = build_method(method_cfg(name, args, overrides))
        plan = method.plan(q, k, scale=scale)
        density = mean_density(plan, length)
        key_order = method.permuter(q, k, scale=scale)
        permute = lambda: method.permuter(q, k, scale=scale)  # noqa: E731
        select = lambda: method.selector(q, k, key_order=key_order, scale=scale)  # noqa: E731
        permute_ms = median_ms(permute, budget_ms=args.budget_ms)
        select_ms = median_ms(select, budget_ms=args.budget_ms)
        attend_ms = median_ms(lambda: plan.attend(q, k, v, scale=scale, backend=method.backend), budget_ms=args.budget_ms)
        graph_ms = {f"{stage}_graph_ms": graph_replay_ms(fn, budget_ms=args.budget_ms) for stage, fn in (("permute", permute), ("select", select))}
        rows.append(
            {"length": length, "name": f"method:{spec}", "density": round(density, 4), "permute_ms": round(permute_ms, 4),
             "select_ms": round(select_ms, 4), "attention_ms": round(attend_ms, 4),
             "ms": round(permute_ms + select_ms + attend_ms, 4),
             **{key: None if ms is None else round(ms, 4) for key, ms in graph_ms.items()}}
        )
        del plan, key_order
    return rows


def time_xattention_tiles(add: Callable[..., None], args: argparse.Namespace, q: torch.Tensor, k: torch.Tensor, scale: float) -> None:
    """XAttention's Triton estimate at its default tile and each `--xattn-tiles` shape.

    The estimate is the xattention method's selector's block mass over all query blocks (its
    stride, block size and chunks), without the threshold step that follows it.
    """
    xattention = build_method(method_cfg("xattention", args, {}))
    key_order = xattention.permuter(q, k, scale=scale)

    def estimate(tile: TileShape | None) -> None:
        config = None if tile is None else TileConfig(*tile)
        for _ in xattention.selector.block_masses(q, k, key_order=key_order, scale=scale, backend="triton", config=config):
            pass

    for tile in [None, *args.xattn_tiles]:
        add(f"xattn_estimate_tile[{tile_label(tile)}]", functools.partial(estimate, tile), None)


def time_minference_tiles(
    add: Callable[..., None], args: argparse.Namespace, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float
) -> None:
    """MInference's vertical-slash attention at its default tile and each `--vs-tiles` shape, on
    the plan the minference method selects for these inputs (built once)."""
    minference = build_method(method_cfg("minference", args, {}))
    plan = minference.plan(q, k, scale=scale)
    density = mean_density(plan, q.shape[2])
    for tile in [None, *args.vs_tiles]:
        attend = functools.partial(
            vertical_slash_attention_triton, q, k, v, plan.vertical_indices, plan.slash_offsets, scale=scale, tile=tile
        )
        add(f"minference_token_union_tile[{tile_label(tile)}]", attend, density)


def time_block_column_tiles(
    add: Callable[..., None], args: argparse.Namespace, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float
) -> None:
    """MInference's official conversion (index) and its block-range + column attention at the
    default tile and each `--bc-tiles` shape, on the plan the minference method selects here."""
    minference = build_method(method_cfg("minference", args, {}))
    plan = minference.plan(q, k, scale=scale)
    density = mean_density(plan, q.shape[2])
    convert = functools.partial(block_column_index, plan.vertical_indices, plan.slash_offsets, q.shape[2])
    add("minference_index", convert, None)
    for text in [None, *args.bc_tiles]:
        tile = None if text is None else bc_tile(text)
        attend = functools.partial(block_column_attention_triton, q, k, v, plan.index, scale=scale, tile=tile)
        add(f"minference_official_attention_tile[{text or 'default'}]", attend, density)


def time_permutation_launches(add: Callable[..., None], args: argparse.Namespace, q: torch.Tensor, k: torch.Tensor, scale: float) -> None:
    """PBS's Triton key permutation (per query head) at its default launch and each `--perm-launches` one."""
    for launch in [None, *args.perm_launches]:
        permute = functools.partial(
            segment_permutation_triton, q, k, segment_size=args.segment, num_last_queries=args.block, scale=scale,
            per_group=False, launch=None if launch is None else PermutationLaunch(*launch),
        )
        add(f"pbs_permute_launch[{tile_label(launch)}]", permute, None)


def tile_rows(args: argparse.Namespace, length: int, device: torch.device, dtype: torch.dtype) -> list[dict[str, Any]]:
    """Launch-shape sweeps of estimation and baseline kernels on the method rows' inputs; a shape
    a kernel cannot run gets a row with ms None and the reason."""
    q, k, v = method_inputs(args, length, device, dtype)
    scale = q.shape[-1] ** -0.5
    rows: list[dict[str, Any]] = []
    add = functools.partial(add_timing, rows, args, length, skip=TILE_ERRORS)
    if args.xattn_tiles:
        time_xattention_tiles(add, args, q, k, scale)
    if args.vs_tiles:
        time_minference_tiles(add, args, q, k, v, scale)
    if args.perm_launches:
        time_permutation_launches(add, args, q, k, scale)
    if args.bc_tiles:
        time_block_column_tiles(add, args, q, k, v, scale)
    return rows


def add_ratios(rows: list[dict[str, Any]]) -> None:
    sdpa = {r["length"]: r["ms"] for r in rows if r["name"] == "sdpa_dense"}
    for row in rows:
        if row.get("ms") and sdpa.get(row["length"]):
            row["ratio_to_sdpa"] = round(row["ms"] / sdpa[row["length"]], 3)
            row["speedup_vs_sdpa"] = round(sdpa[row["length"]] / row["ms"], 3)


def print_table(rows: list[dict[str, Any]]) -> None:
    cols = ["length", "name", "density", "ms", "ratio_to_sdpa", "tflops", "permute_ms", "select_ms", "attention_ms",
            "permute_graph_ms", "select_graph_ms", "note"]
    print(" | ".join(cols))
    for row in rows:
        print(" | ".join("" if row.get(c) is None else str(row.get(c)) for c in cols))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[8192, 16384, 32768, 65536, 131072])
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--kv-heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--segment", type=int, default=256)
    parser.add_argument("--densities", type=float, nargs="*", default=[0.1, 0.2, 0.3])
    parser.add_argument("--methods", nargs="*", default=["pbs:head", "pbs:group", "meanpooling", "xattention", "pbs_plus", "flexprefill", "minference"])
    parser.add_argument("--method-lengths", type=int, nargs="*", default=None, help="lengths for method rows (default: --lengths)")
    parser.add_argument("--qkv", default=None, help="torch file with captured q, k, v [1, H, L, D] (replaces structured inputs)")
    parser.add_argument("--no-flex", action="store_true")
    parser.add_argument("--tiles", nargs="*", type=parse_tile, default=[], help="extra triton tile shapes to time at density 1: M,N,WARPS,STAGES")
    parser.add_argument(
        "--xattn-tiles", nargs="*", type=parse_tile, default=[],
        help="tiles M,N,WARPS,STAGES at which to time XAttention's Triton estimate (and its default), at --method-lengths",
    )
    parser.add_argument(
        "--vs-tiles", nargs="*", type=parse_tile, default=[],
        help="tiles M,N,WARPS,STAGES at which to time MInference's vertical-slash attention (and its default), at --method-lengths",
    )
    parser.add_argument(
        "--perm-launches", nargs="*", type=parse_perm_launch, default=[],
        help="launch shapes LSE_KEYS,LSE_PROGRAMS,LSE_WARPS,ORDER_KEYS,ORDER_WARPS,STAGES at which to time PBS's Triton permutation",
    )
    parser.add_argument(
        "--bc-tiles", nargs="*", type=parse_bc_tile, default=[],
        help="tiles BLOCKS,WINDOWS,WARPS,STAGES[,tma][,regN] at which to time MInference's official block-range + "
        "column attention (and its default and its index), at --method-lengths",
    )
    parser.add_argument("--budget-ms", type=float, default=1500.0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    rows: list[dict[str, Any]] = []
    stages = [("kernels", length, kernel_rows) for length in args.lengths]
    method_lengths = args.method_lengths if args.method_lengths is not None else args.lengths
    stages += [("methods", length, method_rows) for length in method_lengths]
    if args.xattn_tiles or args.vs_tiles or args.perm_launches or args.bc_tiles:
        stages += [("tiles", length, tile_rows) for length in method_lengths]
    for stage, length, measure in stages:
        rows += measure(args, length, device, dtype)
        add_ratios(rows)
        write_record(args, rows)  # after every stage, so a run cut short keeps what it measured
        print(f"[{stage}] {length} done", flush=True)
    print_table(rows)



if __name__ == "__main__":
    main()
