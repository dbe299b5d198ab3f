"""Vertical-slash kernel (Triton vs torch reference), exact density, and MInference's selector."""
from __future__ import annotations

import pytest
import torch

from src.attention.components import SELECTORS
from src.attention.kernels.block_column import block_column_attention, block_column_index
from src.attention.kernels.vertical_slash import (
    pattern_tables,
    tile_index,
    vertical_slash_attention,
    vertical_slash_attention_reference,
    vertical_slash_attention_triton,
    vertical_slash_density,
    vertical_slash_token_mask,
)
from src.attention.plan import KERNEL_SEMANTICS, DensePlan, VerticalSlashPlan, vertical_slash_plan
from src.attention.select.vertical_slash import VerticalSlashSelector
from src.registry import ConfigError


DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # triton runs interpreted on CPU


def _qkv(batch, q_heads, kv_heads, length, head_dim, dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    shapes = ((batch, q_heads, length, head_dim), (batch, kv_heads, length, head_dim), (batch, kv_heads, length, head_dim))
    return tuple(torch.randn(*shape, generator=generator).to(dtype) for shape in shapes)


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


@pytest.mark.parametrize(
    ("batch", "q_heads", "kv_heads", "length", "head_dim", "dtype", "tolerance"),
    [
        (2, 4, 2, 203, 64, torch.float32, 1e-4),
        (1, 2, 1, 131, 128, torch.float16, 2e-3),
    ],
)
def test_triton_kernel_matches_reference(batch, q_heads, kv_heads, length, head_dim, dtype, tolerance):
    q, k, v = _qkv(batch, q_heads, kv_heads, length, head_dim, dtype)
    vertical, slash = _pattern(batch, q_heads, length, 24, 20)
    on_device = (t.to(DEVICE) for t in (q, k, v, vertical, slash))
    got = vertical_slash_attention(*on_device, scale=0.1, backend="triton").cpu()
    expected = vertical_slash_attention_reference(q, k, v, vertical, slash, scale=0.1)
    torch.testing.assert_close(got.float(), expected.float(), atol=tolerance, rtol=tolerance)
    assert (got[0, 0, :5] == 0).all() and got[0, 0, 5].abs().sum() > 0


def test_kernel_skips_uncrossed_blocks_and_full_bands_exactly():
    q, k, v = _qkv(1, 2, 1, 203, 64, seed=2)
    slash = torch.cat([torch.arange(10), torch.tensor([150, 151])]).expand(1, 2, -1)  # local band, far pair: gaps to skip
    vertical = torch.tensor([3, 100]).expand(1, 2, -1)
    on_device = [t.to(DEVICE) for t in (q, k, v, vertical, slash)]
    got = vertical_slash_attention_triton(*on_device, scale=0.1, tile=(32, 16, 4, 1)).cpu()
    expected = vertical_slash_attention_reference(q, k, v, vertical, slash, scale=0.1)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


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
    with pytest.raises(ConfigError, match=f"unknown {op} attention backend 'flex'; allowed: triton, torch"):
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
    with pytest.raises(ValueError, match="unknown vertical-slash attention backend 'cuda'; allowed: triton, torch"):
        vertical_slash_attention(q, k, v, vertical, vertical, scale=0.1, backend="cuda")
    with pytest.raises(ValueError, match=r"slash_offsets must be int \[1, 2, N\]"):
        vertical_slash_attention(q, k, v, vertical, vertical.float(), scale=0.1, backend="torch")
    with pytest.raises(ValueError, match=r"the triton vertical-slash attention cannot run: head dim 32 \(allowed: 64, 128\)"):
        small = q[..., :32].contiguous()
        vertical_slash_attention(small, k[..., :32], v[..., :32], vertical, vertical, scale=0.1, backend="triton")


def _minference_reference(q, k, *, last_q, vertical_size, slash_size, scale):
    """MInference's vertical_and_slash_kernel estimate per head, with explicit diagonal loops."""
    batch, q_heads, length, _ = q.shape
    group = q_heads // k.shape[1]
    n = min(last_q, length)
    columns, offsets = {}, {}
    for b in range(batch):
        for h in range(q_heads):
            logits = (q[b, h, -n:] * scale) @ k[b, h // group].T
            for r in range(n):
                logits[r, length - n + r + 1 :] = float("-inf")
            probs = torch.softmax(logits, -1)
            vertical = probs.sum(0)
            vertical[:30] = float("inf")
            slash = torch.zeros(length)
            for r in range(n):
                for key in range(length - n + r + 1):
                    slash[length - n + r - key] += probs[r, key]
            slash[:100] = float("inf")
            v_count = min(length, max(vertical_size, 30))
            s_count = min(length, max(slash_size, 50))
            columns[b, h] = set(vertical.topk(v_count).indices.tolist())
            offsets[b, h] = set(slash.topk(s_count).indices.tolist())
    return columns, offsets


def test_selector_matches_minference_estimate():
    q, k, _ = _qkv(2, 4, 2, 260, 16, seed=7)
    plan = VerticalSlashSelector(last_q=64, vertical_size=40, slash_size=120)(q, k, key_perm=None, segment_size=None, scale=0.25)
    columns, offsets = _minference_reference(q, k, last_q=64, vertical_size=40, slash_size=120, scale=0.25)
    assert isinstance(plan, VerticalSlashPlan)
    assert plan.vertical_indices.shape == (2, 4, 40) and plan.slash_offsets.shape == (2, 4, 120)
    for (b, h), expected in columns.items():
        assert set(plan.vertical_indices[b, h].tolist()) == expected
        assert set(plan.slash_offsets[b, h].tolist()) == offsets[b, h]
    assert set(range(30)) <= columns[0, 0] and set(range(100)) <= offsets[0, 0]


def test_selector_with_full_budgets_is_dense_attention():
    q, k, v = _qkv(1, 2, 1, 150, 64, seed=8)
    plan = SELECTORS.build("vertical_slash", {"vertical_size": 200, "slash_size": 200})(
        q, k, key_perm=None, segment_size=None, scale=0.125
    )
    dense = DensePlan().attend(q, k, v, scale=0.125, backend="torch")
    torch.testing.assert_close(plan.attend(q, k, v, scale=0.125, backend="torch"), dense, atol=1e-5, rtol=1e-5)


def test_selector_config_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="vertical_size must be an int >= 0"):
        VerticalSlashSelector(vertical_size=-1)
    with pytest.raises(ConfigError, match="does not exist"):
        VerticalSlashSelector(pattern_config=str(tmp_path / "missing.json"))
    q, k, _ = _qkv(1, 2, 1, 40, 16)
    with pytest.raises(ConfigError, match="use permuter 'identity'"):
        VerticalSlashSelector()(q, k, key_perm=torch.arange(40).expand(1, 2, -1), segment_size=32, scale=0.25)


def test_selector_computes_the_official_ranges_by_default_and_the_union_on_request():
    q, k, v = _qkv(1, 2, 1, 300, 64, seed=12)
    official = VerticalSlashSelector(vertical_size=30, slash_size=60)(q, k, key_perm=None, segment_size=None, scale=0.125)
    union = VerticalSlashSelector(vertical_size=30, slash_size=60, kernel_semantics="token_union")(
        q, k, key_perm=None, segment_size=None, scale=0.125
    )
    assert official.kernel_semantics == "official" and union.kernel_semantics == "token_union" and union.index is None
    assert torch.equal(official.vertical_indices, union.vertical_indices) and torch.equal(official.slash_offsets, union.slash_offsets)
    expected = block_column_index(official.vertical_indices, official.slash_offsets, 300, backend="torch")
    assert torch.equal(official.index.coverage, expected.coverage) and torch.equal(official.density(300), expected.density())
    assert bool((official.density(300) > union.density(300)).all())  # whole 64-key ranges, not single diagonals
    got = official.attend(q, k, v, scale=0.125, backend="torch")
    torch.testing.assert_close(got, block_column_attention(q, k, v, expected, scale=0.125, backend="torch"))
    with pytest.raises(ConfigError, match="unknown kernel_semantics 'exact'; allowed: official, token_union"):
        VerticalSlashSelector(kernel_semantics="exact")
    with pytest.raises(ValueError, match="kernel_semantics 'official' needs the index built by block_column_index"):
        VerticalSlashPlan(official.vertical_indices, official.slash_offsets)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_compiled_kernel_matches_reference_on_cuda(dtype):
    q, k, v = (t.cuda() for t in _qkv(1, 8, 2, 2047, 128, dtype, seed=11))
    selector = VerticalSlashSelector(vertical_size=100, slash_size=300, kernel_semantics="token_union")
    plan = selector(q, k, key_perm=None, segment_size=None, scale=128**-0.5)
    got = plan.attend(q, k, v, scale=128**-0.5, backend="triton")
    expected = plan.attend(q, k, v, scale=128**-0.5, backend="torch")
    torch.testing.assert_close(got.float(), expected.float(), atol=2e-2, rtol=2e-2)
    assert 0.0 < plan.density(2047).max().item() < 0.5
