"""MInference's block-range + column op: the official rule, the index kernel, the attention kernel.

`official_blocks` below is a line-by-line re-implementation of the loop in MInference's
csrc/vertical_slash_index.cu (convert_vertical_slash_indexes_kernel) for one head and query block;
the project's index must give exactly the pairs it gives (its causal pairs: the official column
loop has no causal mask). On CPU the Triton kernels run in the interpreter (tests/conftest.py).
"""
from __future__ import annotations

import pytest
import torch

from src.attention.kernels.block_column import (
    BlockColumnIndex,
    block_column_attention,
    block_column_index,
    num_query_blocks,
)
from src.attention.kernels.block_column import naive
from src.attention.kernels.block_column.triton import DEFAULT_TILE, LONG_TILE, BlockColumnTile, attention as triton_attention, tile_lists

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
BLOCK = 64
TILES = [
    BlockColumnTile(blocks=1, windows=1, num_warps=4, num_stages=2),
    BlockColumnTile(blocks=2, windows=1, num_warps=8, num_stages=3),
    BlockColumnTile(blocks=2, windows=2, num_warps=8, num_stages=3),
    BlockColumnTile(blocks=2, windows=2, num_warps=8, num_stages=3, tma=True),
]


def official_blocks(vertical: list[int], slash: list[int], length: int, m: int) -> tuple[list[int], list[int]] | None:
    """(block_offset, column_index) of query block m as the official CUDA thread writes them, from
    its inputs sorted as vertical_slash_sparse_attention sorts them; None where the official loop
    would read past the slash list (no offset reaches the block)."""
    v_sorted = sorted({c for c in vertical if 0 <= c < length})
    s_sorted = sorted({s for s in slash if 0 <= s < length}, reverse=True)
    end_m = m * BLOCK + BLOCK
    s = 0
    while s < len(s_sorted) and s_sorted[s] >= end_m:
        s += 1
    if s == len(s_sorted):
        return None
    s_idx = max(end_m - s_sorted[s], BLOCK)
    s += 1
    range_start, range_end = s_idx - BLOCK, s_idx
    v = 0
    v_idx = v_sorted[0] if v_sorted else end_m + BLOCK
    v = 1
    blocks, columns = [], []
    while True:
        if v_idx < range_end:
            if v_idx < range_start:
                columns.append(v_idx)
            if v < len(v_sorted):
                v_idx = v_sorted[v]
                v += 1
            else:
                v_idx = end_m + BLOCK
        else:
            if s < len(s_sorted):
                s_idx = max(end_m - s_sorted[s], BLOCK)
                s += 1
            else:
                blocks += range(range_start, range_end, BLOCK)
                break
            if s_idx > range_end + BLOCK:
                blocks += range(range_start, range_end, BLOCK)
                range_start, range_end = s_idx - BLOCK, s_idx
            elif s_idx > range_end:
                range_end += BLOCK
    return blocks, columns


def official_mask(vertical: list[int], slash: list[int], length: int) -> tuple[torch.Tensor, bool]:
    """bool [L, L]: the causal pairs the official kernel computes, and whether it also attends a
    future key (a column of the query block itself outside every range)."""
    mask = torch.zeros(length, length, dtype=torch.bool)
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    future = False
    for m in range(num_query_blocks(length)):
        rows = slice(m * BLOCK, min(m * BLOCK + BLOCK, length))
        blocks, columns = official_blocks(vertical, slash, length, m)
        for start in blocks:
            mask[rows, start : start + BLOCK] = True
        for column in columns:
            mask[rows, column] = True
            future |= bool((~causal[rows, column]).any())
    return mask & causal, future


def random_pattern(batch: int, heads: int, length: int, nv: int, ns: int, seed: int, *, main_diagonal: bool = True):
    """Random columns and offsets with padding (-1, >= L) and duplicates; every head has an offset
    below 64 (so the official loop never runs off its list) and, if asked, the main diagonal."""
    gen = torch.Generator().manual_seed(seed)
    vertical = torch.randint(-2, length + 2, (batch, heads, nv), generator=gen)
    slash = torch.randint(-2, length + 2, (batch, heads, ns), generator=gen)
    slash[..., 0] = torch.randint(0, min(length, BLOCK), (batch, heads), generator=gen)
    if main_diagonal:
        slash[..., 1] = 0
    if nv > 1:
        vertical[..., 1] = vertical[..., 0]
    return vertical, slash


def structured_pattern(batch: int, heads: int, length: int, seed: int):
    """MInference-like: 30 sink columns, scattered columns, the 100 local offsets and a few runs
    of consecutive offsets (what heavy keys produce), as int64 [B, H, N]."""
    gen = torch.Generator().manual_seed(seed)
    vertical = torch.cat([torch.arange(30).expand(batch, heads, -1), torch.randint(0, length, (batch, heads, 20), generator=gen)], -1)
    starts = torch.randint(100, max(length - 70, 101), (batch, heads, 3), generator=gen)
    runs = (starts[..., None] + torch.arange(40)).flatten(-2)
    slash = torch.cat([torch.arange(100).expand(batch, heads, -1), runs, torch.randint(0, length, (batch, heads, 10), generator=gen)], -1)
    return vertical, slash.clamp(max=length + 5)


def indices(kind: str, batch: int, heads: int, length: int, seed: int):
    if kind == "structured":
        return structured_pattern(batch, heads, length, seed)
    return random_pattern(batch, heads, length, 24, 20, seed, main_diagonal=kind == "random")


def qkv(batch, q_heads, kv_heads, length, head_dim, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(batch, h, length, head_dim) for h in (q_heads, kv_heads, kv_heads)]
    return tuple(torch.randn(s, generator=gen).to(DEVICE, dtype) for s in shapes)


def assert_same_index(got: BlockColumnIndex, expected: BlockColumnIndex) -> None:
    assert got.length == expected.length
    for name in ("coverage", "range_end", "columns", "pairs"):
        assert torch.equal(getattr(got, name).cpu(), getattr(expected, name).cpu()), name


@pytest.mark.parametrize("kind", ["random", "random_no_diagonal", "structured"])
@pytest.mark.parametrize("length", [37, 64, 129, 300])
def test_project_index_computes_exactly_the_official_pairs(kind: str, length: int) -> None:
    vertical, slash = indices(kind, 2, 2, length, seed=length)
    index = block_column_index(vertical, slash, length, backend="torch")
    for b in range(2):
        for h in range(2):
            expected, future = official_mask(vertical[b, h].tolist(), slash[b, h].tolist(), length)
            got = naive.computed_mask(index, b, h)
            assert torch.equal(got, expected)
            assert index.pairs[b, h].sum().item() == expected.sum().item()
            if kind != "random_no_diagonal":
                assert not future  # with the main diagonal the official kernel stays causal too
    expected_density = index.pairs.sum(-1).double() / (length * (length + 1) / 2)
    torch.testing.assert_close(index.density(), expected_density.float())


def test_official_rule_on_a_worked_example() -> None:
    length = 192  # query block 2 holds queries 128..191 (end 192)
    # Offsets from the largest: 140 -> keys [0, 64) (192 - 140 < 64: clamped); 75 -> [53, 117)
    # ends within 64 keys of the range: it grows by 64 to [0, 128); 70 -> [58, 122) lies inside;
    # 0 -> [128, 192) ends exactly 64 past: grows to [0, 192). Every column is inside the range.
    blocks, columns = official_blocks([3, 100, 125, 150], [0, 70, 75, 140], length, 2)
    assert blocks == [0, 64, 128] and columns == []
    # 20 -> [108, 172); 0 -> [128, 192) ends within 64: grows to [108, 236), past the block's end.
    # Columns 3 and 100 lie before the range; 125 and 150 inside it.
    blocks, columns = official_blocks([3, 100, 125, 150], [0, 20], length, 2)
    assert blocks == [108, 172] and columns == [3, 100]
    index = block_column_index(torch.tensor([[[3, 100, 125, 150]]]), torch.tensor([[[0, 20]]]), length, backend="torch")
    mask = naive.computed_mask(index, 0, 0)
    assert mask[150, [3, 100, 108, 150]].all() and not mask[150, [2, 4, 107, 151]].any()


@pytest.mark.parametrize(
    ("batch", "heads", "length", "kind"),
    [(2, 3, 203, "random"), (1, 2, 64, "random_no_diagonal"), (2, 1, 257, "structured"), (1, 2, 1, "random"), (1, 1, 130, "empty")],
)
def test_index_kernel_matches_reference(batch: int, heads: int, length: int, kind: str) -> None:
    if kind == "empty":  # no column, every offset padding: no block reaches anything
        vertical, slash = torch.zeros(batch, heads, 0, dtype=torch.long), torch.full((batch, heads, 3), -1)
    else:
        vertical, slash = indices(kind, batch, heads, length, seed=batch * length)
    expected = block_column_index(vertical, slash, length, backend="torch")
    got = block_column_index(vertical.to(DEVICE), slash.to(DEVICE), length, backend="triton")
    assert_same_index(got, expected)


def tile_id(tile: BlockColumnTile) -> str:
    cap = "" if tile.maxnreg is None else f"-reg{tile.maxnreg}"
    return f"{tile.blocks}x{tile.windows}-w{tile.num_warps}-s{tile.num_stages}" + "-tma" * tile.tma + cap


@pytest.mark.parametrize(("blocks", "windows"), [(1, 1), (2, 1), (2, 2)])
def test_tile_lists_visit_every_computed_pair_once(blocks: int, windows: int) -> None:
    length = 333
    vertical, slash = structured_pattern(1, 2, length, seed=3)
    slash[0, 1, :100] = torch.arange(100) + 7  # no main diagonal in head 1
    index = block_column_index(vertical.to(DEVICE), slash.to(DEVICE), length, backend="triton")
    lists = tile_lists(index, blocks, windows)
    units, counts, columns = (t.cpu() for t in (lists.units, lists.counts, lists.columns))
    coverage = index.coverage.cpu().long()
    nb = coverage.shape[2]
    offsets = torch.arange(BLOCK)
    for h in range(2):
        visits = torch.zeros(nb * BLOCK, nb * BLOCK + BLOCK, dtype=torch.int32)
        for t in range(counts.shape[1]):
            row_blocks = [m for m in range(t * blocks, (t + 1) * blocks) if m < nb]
            rows = slice(row_blocks[0] * BLOCK, (row_blocks[-1] + 1) * BLOCK)
            full, partial, num_columns = counts[h, t].tolist()
            for unit in units[h, t, :full].tolist():
                visits[rows, unit * windows * BLOCK : (unit + 1) * windows * BLOCK] += 1
            for window in units[h, t, units.shape[-1] - partial :].tolist():
                for m in row_blocks:
                    x, y = coverage[0, h, m, window].tolist()
                    keys = window * BLOCK + offsets[(offsets < x) | (offsets >= y)]
                    visits[m * BLOCK : (m + 1) * BLOCK, keys] += 1
            for entry in columns[h, t, :num_columns].tolist():
                for g, m in enumerate(row_blocks):
                    visits[m * BLOCK : (m + 1) * BLOCK, entry >> 2] += entry >> g & 1
        visits = visits[:length, :length] * torch.ones(length, length, dtype=torch.int32).tril()
        assert visits.max() <= 1
        assert torch.equal(visits.bool(), naive.computed_mask(index, 0, h).cpu())


@pytest.mark.parametrize(
    ("batch", "q_heads", "kv_heads", "length", "head_dim", "dtype", "tile"),
    [
        (2, 4, 2, 203, 64, torch.float32, TILES[0]),
        (1, 2, 1, 131, 128, torch.float16, TILES[1]),
        (1, 2, 1, 131, 128, torch.float16, TILES[2]),
        (2, 2, 1, 203, 64, torch.float32, TILES[3]),
        (1, 2, 1, 131, 128, torch.float16, BlockColumnTile(blocks=1, windows=1, num_warps=4, num_stages=2, tma=True)),
    ],
    ids=lambda value: tile_id(value) if isinstance(value, BlockColumnTile) else None,
)
def test_attention_kernel_matches_reference(batch, q_heads, kv_heads, length, head_dim, dtype, tile):
    if DEVICE.type == "cuda" and dtype == torch.float32 and tile != TILES[0]:
        pytest.skip("fp32 K/V tiles of this shape do not fit a GPU's shared memory (the interpreter runs them)")
    q, k, v = qkv(batch, q_heads, kv_heads, length, head_dim, dtype, seed=length)
    vertical, slash = indices("random_no_diagonal" if dtype == torch.float32 else "structured", batch, q_heads, length, seed=5)
    index = block_column_index(vertical.to(DEVICE), slash.to(DEVICE), length, backend="triton")
    got = triton_attention(q, k, v, index, scale=0.1, tile=tile).cpu()
    expected = block_column_attention(q.cpu().float(), k.cpu().float(), v.cpu().float(), index_on_cpu(index), scale=0.1, backend="torch")
    tolerance = 1e-4 if dtype == torch.float32 else 3e-3
    torch.testing.assert_close(got.float(), expected, atol=tolerance, rtol=tolerance)


def index_on_cpu(index: BlockColumnIndex) -> BlockColumnIndex:
    return BlockColumnIndex(index.length, *(t.cpu() for t in (index.coverage, index.range_end, index.columns, index.pairs)))


def test_reference_attention_is_the_official_masked_softmax() -> None:
    length, scale = 150, 0.2
    q, k, v = (t.cpu() for t in qkv(2, 4, 2, length, 16, torch.float32, seed=9))
    vertical, slash = random_pattern(2, 4, length, 12, 9, seed=9)
    out = block_column_attention(q, k, v, block_column_index(vertical, slash, length, backend="torch"), scale=scale, backend="torch")
    for b in range(2):
        for h in range(4):
            allowed, _ = official_mask(vertical[b, h].tolist(), slash[b, h].tolist(), length)
            scores = (q[b, h] @ k[b, h // 2].T * scale).masked_fill(~allowed, float("-inf"))
            expected = torch.nan_to_num(torch.softmax(scores, -1), nan=0.0) @ v[b, h // 2]
            torch.testing.assert_close(out[b, h], expected, atol=1e-5, rtol=1e-5)


def test_contract_errors_name_the_bad_input() -> None:
    q, k, v = (t.cpu() for t in qkv(1, 2, 1, 16, 64, torch.float32, seed=0))
    good = torch.zeros(1, 2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="unknown block-column index backend 'cuda'; allowed: auto, triton, torch"):
        block_column_index(good, good, 16, backend="cuda")
    with pytest.raises(ValueError, match=r"slash_offsets must be int \[B, H, N\]"):
        block_column_index(good, good.float(), 16, backend="torch")
    with pytest.raises(ValueError, match=r"length must be an int in \[1, 16777216\), got 0"):
        block_column_index(good, good, 0, backend="torch")
    index = block_column_index(good, good, 16, backend="torch")
    with pytest.raises(ValueError, match=r"the index is for \[B, H\] = \[1, 2\] and L = 16"):
        block_column_attention(q[:, :, :8], k[:, :, :8], v[:, :, :8], index, backend="torch")
    with pytest.raises(ValueError, match=r"the triton block-column attention cannot run: head dim 32 \(allowed: 64, 128\)"):
        block_column_attention(q[..., :32], k[..., :32], v[..., :32], index, backend="triton")


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("dtype", "tile"),
    [
        (torch.bfloat16, DEFAULT_TILE),
        (torch.bfloat16, LONG_TILE),
        (torch.float16, DEFAULT_TILE),
    ],
    ids=lambda value: tile_id(value) if isinstance(value, BlockColumnTile) else str(value),
)
def test_gpu_kernels_match_reference_16bit(dtype: torch.dtype, tile: BlockColumnTile) -> None:
    """Index exactly equal; attention within twice the error a same-precision torch run makes
    (batch 2, GQA 8 / 2, a length that is no multiple of 64)."""
    batch, q_heads, kv_heads, length = 2, 8, 2, 1500
    q, k, v = qkv(batch, q_heads, kv_heads, length, 128, dtype, seed=length)
    vertical, slash = structured_pattern(batch, q_heads, length, seed=length)
    index = block_column_index(vertical.cuda(), slash.cuda(), length, backend="triton")
    assert_same_index(index, block_column_index(vertical.cuda(), slash.cuda(), length, backend="torch"))
    reference = torch.empty(batch, q_heads, length, 128, device="cuda")
    same_precision = torch.empty_like(q)
    for b in range(batch):
        for h in range(q_heads):
            allowed = naive.computed_mask(index, b, h)
            kv = h // (q_heads // kv_heads)
            for out, cast in ((reference, torch.float32), (same_precision, dtype)):
                scores = (q[b, h].to(cast) @ k[b, kv].to(cast).T) * 0.088
                weights = torch.softmax(scores.float().masked_fill(~allowed, float("-inf")), -1).to(cast)
                out[b, h] = (weights @ v[b, kv].to(cast)).to(out.dtype)
    torch_error = (same_precision.float() - reference).abs().max().item()
    got = triton_attention(q, k, v, index, scale=0.088, tile=tile)
    assert got.dtype == dtype and torch.isfinite(got).all()
    assert (got.float() - reference).abs().max().item() <= 2 * torch_error + 1e-3
