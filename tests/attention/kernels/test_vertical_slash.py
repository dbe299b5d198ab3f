"""Vertical-slash attention: Triton kernel vs torch reference, its tile lists, exact density."""
from __future__ import annotations

import pytest
import torch

from src.attention.kernels.vertical_slash import (
    pattern_tables,
    tile_index,
    vertical_slash_attention,
    vertical_slash_attention_reference,
    vertical_slash_attention_triton,
    vertical_slash_density,
    vertical_slash_token_mask,
)
from src.attention.plan import KERNEL_SEMANTICS, DensePlan, vertical_slash_plan
from src.attention.testing import assert_close, masked_attention, random_qkv, vertical_slash_token_masks
from src.registry import ConfigError


DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # triton runs interpreted on CPU


def _qkv(batch, q_heads, kv_heads, length, head_dim, dtype=torch.float32, seed=0):
    return random_qkv(batch, q_heads, kv_heads, length, head_dim, seed=seed, dtype=dtype)


def _pattern(batch, heads, length, num_vertical, num_slash, seed=0):
    """Random columns and offsets with padding (-1, >= L), duplicates, and columns lying on slashes."""
    generator = torch.Generator().manual_seed(seed)
    vertical = torch.randint(-2, length + 2, (batch, heads, num_vertical), generator=generator)
    slash = torch.randint(-2, length + 2, (batch, heads, num_slash), generator=generator)
    vertical[..., 1] = vertical[..., 0]
    slash[..., 0] = 0
    slash[0, 0] = torch.tensor([5, 9] + [-1] * (num_slash - 2))  # no main diagonal: some rows see nothing
    vertical[0, 0] = torch.tensor([7, 40] + [-1] * (num_vertical - 2))
    return vertical, slash


def test_token_mask_is_the_definition():
    vertical, slash = torch.tensor([3, 3, -1, 11, 12]), torch.tensor([0, 2, 12, 20])
    mask = vertical_slash_token_mask(vertical, slash, 12)
    for i in range(12):
        for j in range(12):
            assert mask[i, j].item() == (j <= i and (j in (3, 11) or i - j in (0, 2)))


def _assert_matches_reference(got, q, k, v, vertical, slash, scale):
    """fp32: the torch reference; 16-bit: fp32 attention over the same pairs, within twice the
    error of torch attention at the same precision."""
    if q.dtype == torch.float32:
        assert_close(got, vertical_slash_attention_reference(q, k, v, vertical, slash, scale=scale))
        return
    allowed = vertical_slash_token_masks(vertical, slash, q.shape[2])
    expected = masked_attention(q.float(), k.float(), v.float(), allowed, scale=scale)
    assert_close(got, expected, baseline=masked_attention(q, k, v, allowed, scale=scale))


@pytest.mark.parametrize(
    ("batch", "q_heads", "kv_heads", "length", "head_dim", "dtype"),
    [(2, 4, 2, 203, 64, torch.float32), (1, 2, 1, 131, 128, torch.float16)],
)
def test_triton_kernel_matches_reference(batch, q_heads, kv_heads, length, head_dim, dtype):
    q, k, v = _qkv(batch, q_heads, kv_heads, length, head_dim, dtype)
    vertical, slash = _pattern(batch, q_heads, length, 24, 20)
    on_device = (t.to(DEVICE) for t in (q, k, v, vertical, slash))
    got = vertical_slash_attention(*on_device, scale=0.1, backend="triton").cpu()
    _assert_matches_reference(got, q, k, v, vertical, slash, scale=0.1)
    assert (got[0, 0, :5] == 0).all() and got[0, 0, 5].abs().sum() > 0


def test_kernel_skips_uncrossed_blocks_and_full_bands_exactly():
    q, k, v = _qkv(1, 2, 1, 203, 64, seed=2)
    slash = torch.cat([torch.arange(10), torch.tensor([150, 151])]).expand(1, 2, -1)  # local band, far pair: gaps to skip
    vertical = torch.tensor([3, 100]).expand(1, 2, -1)
    on_device = [t.to(DEVICE) for t in (q, k, v, vertical, slash)]
    got = vertical_slash_attention_triton(*on_device, scale=0.1, tile=(32, 16, 4, 1)).cpu()
    assert_close(got, vertical_slash_attention_reference(q, k, v, vertical, slash, scale=0.1))


def _expected_tile_lists(vertical, slash, length, block_m, block_n, q_start):
    """Plain-torch lists of one query tile: key blocks holding a slash pair, leftover columns."""
    q_end = min(q_start + block_m, length)
    num_blocks = -(-length // block_n)
    on_slash = vertical_slash_token_mask(torch.empty(0, dtype=torch.long), slash, length)[q_start:q_end]
    on_slash = torch.nn.functional.pad(on_slash, (0, num_blocks * block_n - length))
    blocks = on_slash.unflatten(-1, (num_blocks, block_n)).any(-1).any(0).nonzero().flatten().tolist()
    columns = sorted({c for c in vertical.tolist() if 0 <= c < q_end and c // block_n not in blocks})
    return blocks, columns


@pytest.mark.parametrize(
    ("batch", "heads", "length", "num_vertical", "num_slash", "block_m", "block_n"),
    [(2, 3, 203, 24, 20, 16, 8), (1, 2, 131, 30, 3, 64, 64), (2, 1, 97, 12, 16, 32, 64)],
)
def test_tile_index_visits_only_the_crossed_blocks(batch, heads, length, num_vertical, num_slash, block_m, block_n):
    vertical, slash = _pattern(batch, heads, length, num_vertical, num_slash, seed=4)
    slash[-1, -1] = torch.arange(num_slash)  # a local band, which covers whole blocks when it is wide
    index = tile_index(pattern_tables(vertical.to(DEVICE), slash.to(DEVICE), length), length, num_slash, block_m, block_n)
    blocks, counts = index.blocks.cpu(), index.block_counts.cpu()
    columns, column_counts = index.columns.cpu(), index.column_counts.cpu()
    full_blocks = 0
    for b in range(batch):
        for h in range(heads):
            row = b * heads + h
            for tile in range(-(-length // block_m)):
                q_start = tile * block_m
                expected_blocks, expected_columns = _expected_tile_lists(vertical[b, h], slash[b, h], length, block_m, block_n, q_start)
                entries = blocks[row, tile, : counts[row, tile]].tolist()
                assert counts[row, tile] == len(expected_blocks)
                assert [e if e >= 0 else -1 - e for e in entries] == expected_blocks
                assert columns[row, tile, : column_counts[row, tile]].tolist() == expected_columns
                mask = vertical_slash_token_mask(torch.empty(0, dtype=torch.long), slash[b, h], length)
                causal = torch.ones(length, length, dtype=torch.bool).tril()
                for full in (-1 - e for e in entries if e < 0):  # flagged full: every causal pair is a slash pair
                    rows, keys = slice(q_start, q_start + block_m), slice(full * block_n, (full + 1) * block_n)
                    assert torch.equal(mask[rows, keys], causal[rows, keys])
                    full_blocks += 1
    assert full_blocks > 0 or block_m + block_n > num_slash


@pytest.mark.parametrize("semantics", KERNEL_SEMANTICS)
def test_every_column_is_dense_attention_on_both_backends_and_flex_is_refused(semantics):
    q, k, v = _qkv(2, 2, 1, 77, 64)
    everything = torch.arange(77).expand(2, 2, -1)
    no_slash = torch.zeros(2, 2, 0, dtype=torch.long)
    plan = vertical_slash_plan(everything, no_slash, 77, semantics)
    dense = DensePlan().attend(q, k, v, scale=0.125, backend="torch")
    torch.testing.assert_close(plan.attend(q, k, v, scale=0.125, backend="torch"), dense, atol=1e-5, rtol=1e-5)
    op = "vertical-slash" if semantics == "token_union" else "block-column"
    with pytest.raises(ConfigError, match=f"unknown {op} attention backend 'flex'; allowed: auto, triton, torch"):
        plan.attend(q, k, v, scale=0.125, backend="flex")
    on_device = vertical_slash_plan(everything.to(DEVICE), no_slash.to(DEVICE), 77, semantics)
    got = on_device.attend(q.to(DEVICE), k.to(DEVICE), v.to(DEVICE), scale=0.125, backend="triton").cpu()
    torch.testing.assert_close(got, dense, atol=1e-5, rtol=1e-5)
    assert torch.equal(plan.density(77), torch.ones(2, 2))


def test_density_counts_the_union_exactly():
    length = 97
    vertical, slash = _pattern(2, 3, length, 15, 12, seed=5)
    density = vertical_slash_density(vertical, slash, length)
    for b in range(2):
        for h in range(3):
            pairs = vertical_slash_token_mask(vertical[b, h], slash[b, h], length).sum().item()
            assert density[b, h].item() == pytest.approx(pairs / (length * (length + 1) / 2), abs=1e-7)


def test_kernel_rejects_bad_inputs():
    q, k, v = _qkv(1, 2, 1, 16, 64)
    vertical = torch.zeros(1, 2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="unknown vertical-slash attention backend 'cuda'; allowed: auto, triton, torch"):
        vertical_slash_attention(q, k, v, vertical, vertical, scale=0.1, backend="cuda")
    with pytest.raises(ValueError, match=r"slash_offsets must be int \[1, 2, N\]"):
        vertical_slash_attention(q, k, v, vertical, vertical.float(), scale=0.1, backend="torch")
    with pytest.raises(ValueError, match=r"the triton vertical-slash attention cannot run: head dim 32 \(allowed: 64, 128\)"):
        small = q[..., :32].contiguous()
        vertical_slash_attention(small, k[..., :32], v[..., :32], vertical, vertical, scale=0.1, backend="triton")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_kernel_matches_reference_on_cuda(dtype):
    q, k, v = _qkv(1, 8, 2, 1000, 128, dtype, seed=11)
    vertical, slash = _pattern(1, 8, 1000, 100, 300, seed=12)
    got = vertical_slash_attention(*(t.cuda() for t in (q, k, v, vertical, slash)), scale=128**-0.5, backend="triton")
    _assert_matches_reference(got, *(t.cuda() for t in (q, k, v, vertical, slash)), scale=128**-0.5)
