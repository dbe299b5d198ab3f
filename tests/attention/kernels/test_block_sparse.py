"""Permuted block-sparse attention backends against the dense-mask reference and dense SDPA.

On CPU the Triton kernel runs in the Triton interpreter (tests/conftest.py), so shapes are small.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
import torch

from src.attention.kernels import TileConfig, block_sparse_attention, block_sparse_attention_reference
from src.attention.kernels.block_sparse.layout import causal_kv_lists, compact_kv_blocks
from src.attention.kernels.block_sparse.naive import token_mask
from src.attention.kernels.block_sparse.triton import (
    KernelOptions,
    block_sparse_attention_triton,
    causal_kv_lists_triton,
    permute_kv,
    run_block_sparse_kernel,
)
from src.attention.testing import (
    assert_close,
    block_token_masks,
    masked_attention,
    random_block_mask,
    random_qkv,
    random_segment_permutation,
)

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class Case:
    batch: int
    q_heads: int
    kv_heads: int
    length: int
    head_dim: int
    block_size: int
    segment_size: int | None
    perm_heads: str | None  # "q" (one permutation per query head), "kv" (per kv head) or None
    dtype: torch.dtype = torch.float32


def qkv(case: Case, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return random_qkv(case.batch, case.q_heads, case.kv_heads, case.length, case.head_dim, seed=gen, dtype=case.dtype, device=DEVICE)


def case_perm(case: Case, gen: torch.Generator) -> torch.Tensor | None:
    if case.perm_heads is None:
        return None
    heads = case.q_heads if case.perm_heads == "q" else case.kv_heads
    return random_segment_permutation(case.batch, heads, case.length, case.segment_size or case.block_size, seed=gen, device=DEVICE)


def random_mask(case: Case, gen: torch.Generator, density: float = 0.5) -> torch.Tensor:
    """Random bool [B, Hq, nb, nb] over all blocks (future ones too), one query block left empty."""
    mask = random_block_mask(case.batch, case.q_heads, case.length, case.block_size, density=density, seed=gen, causal=False)
    mask[0, 0, mask.shape[-1] // 2] = False
    return mask.to(DEVICE)


def causal_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    group = q.shape[1] // k.shape[1]
    k, v = (t.float().repeat_interleave(group, dim=1) for t in (k, v))
    return torch.nn.functional.scaled_dot_product_attention(q.float(), k, v, is_causal=True)


def assert_matches_16bit_truth(out: torch.Tensor, case: Case, q, k, v, mask, perm, scale: float) -> None:
    """A 16-bit result against fp32 attention over the same token mask, within twice the error of
    torch attention at the same precision (FlashAttention's rule)."""
    allowed = block_token_masks(mask, perm, block_size=case.block_size, length=case.length)
    expected = masked_attention(q.float(), k.float(), v.float(), allowed, scale=scale)
    assert_close(out, expected, baseline=masked_attention(q, k, v, allowed, scale=scale))


def run(case: Case, q, k, v, mask, perm, backend: str, **extra) -> torch.Tensor:
    return block_sparse_attention(
        q, k, v, mask, block_size=case.block_size, key_perm=perm, segment_size=case.segment_size,
        backend=backend, **extra,
    )


CPU_CASES = [
    Case(2, 4, 2, 37, 64, 16, 32, "q"),
    Case(1, 4, 1, 130, 128, 32, 64, "kv"),
    Case(2, 2, 2, 257, 64, 32, 128, None),
    Case(1, 2, 2, 257, 64, 32, 96, "q"),
    Case(2, 4, 1, 61, 64, 16, 48, "q"),
    Case(1, 2, 1, 70, 128, 16, None, "kv"),
]


@pytest.mark.parametrize("case", CPU_CASES, ids=str)
def test_triton_matches_reference_fp32(case: Case) -> None:
    gen = torch.Generator().manual_seed(case.length)
    q, k, v = qkv(case, gen)
    mask, perm = random_mask(case, gen), case_perm(case, gen)
    ref = block_sparse_attention_reference(q, k, v, mask, block_size=case.block_size, key_perm=perm)
    out = run(case, q, k, v, mask, perm, "triton")
    assert out.shape == q.shape and out.dtype == q.dtype
    assert_close(out, ref)


def test_triton_fp16_and_scale_match_reference() -> None:
    """16-bit inputs on CPU use fp16: Triton 3.6's interpreter multiplies bf16 tiles as raw bits
    (bf16 is checked by the gpu tests)."""
    case = Case(1, 2, 1, 100, 64, 16, 32, "q", torch.float16)
    gen = torch.Generator().manual_seed(5)
    q, k, v = qkv(case, gen)
    mask, perm = random_mask(case, gen), case_perm(case, gen)
    out = run(case, q, k, v, mask, perm, "triton", scale=0.3)
    assert out.dtype == torch.float16
    assert_matches_16bit_truth(out, case, q, k, v, mask, perm, scale=0.3)


def test_triton_sub_tiles_match_reference() -> None:
    """Query and key tiles smaller than the block (several programs and tiles per block)."""
    case = Case(1, 2, 1, 90, 64, 32, 64, "kv")
    gen = torch.Generator().manual_seed(7)
    q, k, v = qkv(case, gen)
    mask, perm = random_mask(case, gen), case_perm(case, gen)
    ref = block_sparse_attention_reference(q, k, v, mask, block_size=32, key_perm=perm)
    tiles = TileConfig(block_m=16, block_n=16, num_warps=4, num_stages=2)
    out = block_sparse_attention_triton(q, k, v, mask, block_size=32, key_perm=perm, segment_size=64, config=tiles)
    assert_close(out, ref)


def test_triton_reads_strided_inputs() -> None:
    """q/k/v as transformers hands them over: [B, L, H, D] storage viewed as [B, H, L, D]."""
    case = Case(2, 4, 2, 45, 64, 16, 32, "kv")
    gen = torch.Generator().manual_seed(3)
    q, k, v = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in qkv(case, gen))
    assert not q.is_contiguous()
    mask, perm = random_mask(case, gen), case_perm(case, gen)
    ref = block_sparse_attention_reference(q, k, v, mask, block_size=16, key_perm=perm)
    assert_close(run(case, q, k, v, mask, perm, "triton"), ref)


KERNEL_OPTIONS = [KernelOptions(kv_loads="tma"), KernelOptions(kv_loads="gather")]


@pytest.mark.parametrize("options", KERNEL_OPTIONS, ids=lambda o: o.kv_loads)
@pytest.mark.parametrize(
    "case", [CPU_CASES[0], CPU_CASES[2], Case(1, 7, 1, 83, 64, 16, 32, "q"), Case(2, 7, 1, 50, 64, 16, None, None)], ids=str
)
def test_kernel_options_match_reference(case: Case, options: KernelOptions) -> None:
    """Both ways of reading K/V, on sub-block tiles; GQA groups of 2 and 7 (not a power of two)."""
    gen = torch.Generator().manual_seed(case.length + 3)
    q, k, v = qkv(case, gen)
    mask, perm = random_mask(case, gen), case_perm(case, gen)
    ref = block_sparse_attention_reference(q, k, v, mask, block_size=case.block_size, key_perm=perm)
    out = run_block_sparse_kernel(
        q, k, v, mask, block_size=case.block_size, key_perm=perm, segment_size=case.segment_size, scale=None,
        config=TileConfig(block_m=16, block_n=16, num_warps=4, num_stages=2), options=options,
    )
    assert_close(out, ref)


@pytest.mark.parametrize(("kv_heads", "perm_heads"), [(2, 4), (2, 2), (1, 3)])
def test_permute_kv_copies_rows_in_permuted_order(kv_heads: int, perm_heads: int) -> None:
    """out[b, p, slot] = in[b, p // (P / Hkv), key_perm[b, p, slot]], from strided inputs too."""
    gen = torch.Generator().manual_seed(perm_heads)
    k, v = (torch.randn(2, 70, kv_heads, 64, generator=gen).to(DEVICE).transpose(1, 2) for _ in range(2))
    perm = random_segment_permutation(2, perm_heads, 70, 32, seed=gen, device=DEVICE)
    k_out, v_out = permute_kv(k, v, perm)
    assert k_out.is_contiguous() and k_out.shape == (2, perm_heads, 70, 64)
    head = torch.arange(perm_heads, device=DEVICE) * kv_heads // perm_heads
    for got, source in ((k_out, k), (v_out, v)):
        expected = source[:, head].gather(2, perm[..., None].expand(-1, -1, -1, 64))
        assert torch.equal(got, expected)


def test_triton_copies_rows_no_descriptor_can_address() -> None:
    """Rows 65 fp32 apart (260 bytes, not a multiple of 16) are copied before the descriptors."""
    case = Case(1, 2, 1, 40, 64, 16, 32, "q")
    gen = torch.Generator().manual_seed(41)
    q, k, v = (torch.randn(1, h, 40, 65, generator=gen).to(DEVICE)[..., :64] for h in (2, 1, 1))
    mask, perm = random_mask(case, gen), case_perm(case, gen)
    ref = block_sparse_attention_reference(q, k, v, mask, block_size=16, key_perm=perm)
    assert_close(run(case, q, k, v, mask, perm, "triton"), ref)


@pytest.mark.parametrize("backend", ["triton", "flex", "torch"])
def test_full_mask_identity_equals_causal_sdpa(backend: str) -> None:
    case = Case(2, 4, 2, 75, 64, 16, None, None)
    gen = torch.Generator().manual_seed(11)
    q, k, v = qkv(case, gen)
    mask = torch.ones(2, 4, 5, 5, dtype=torch.bool, device=DEVICE)
    assert_close(run(case, q, k, v, mask, None, backend), causal_sdpa(q, k, v))


@pytest.mark.parametrize("backend", ["triton", "flex"])
@pytest.mark.parametrize("perm_heads", ["q", "kv"])
def test_permutation_alone_changes_nothing(backend: str, perm_heads: str) -> None:
    """Paper Theorem 3.3: permuting keys inside segments, with every causal block computed,
    gives exactly causal attention."""
    case = Case(1, 4, 2, 100, 64, 16, 48, perm_heads)
    gen = torch.Generator().manual_seed(13)
    q, k, v = qkv(case, gen)
    perm = case_perm(case, gen)
    assert not torch.equal(perm, torch.arange(100, device=DEVICE).expand_as(perm))
    mask = torch.ones(1, 4, 7, 7, dtype=torch.bool, device=DEVICE)
    assert_close(run(case, q, k, v, mask, perm, backend), causal_sdpa(q, k, v))


@pytest.mark.parametrize("backend", ["triton", "flex", "torch"])
def test_rows_without_visible_keys_are_zero(backend: str) -> None:
    """Query block 0 selects nothing; block 2 selects only a block inside its own segment that
    the permutation filled with later keys, so its first queries see nothing either."""
    case = Case(1, 1, 1, 64, 64, 16, 64, "q")
    gen = torch.Generator().manual_seed(17)
    q, k, v = qkv(case, gen)
    perm = torch.arange(64).view(1, 1, 64).clone()
    perm[0, 0, 48:64] = torch.arange(32, 48)
    perm[0, 0, 32:48] = torch.arange(48, 64)
    perm = perm.to(DEVICE)
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.bool, device=DEVICE)
    mask[0, 0, 1, :2] = True
    mask[0, 0, 2, 2] = True
    out = run(case, q, k, v, mask, perm, backend)
    ref = block_sparse_attention_reference(q, k, v, mask, block_size=16, key_perm=perm)
    assert torch.isfinite(out).all()
    assert torch.equal(out[0, 0, :16], torch.zeros_like(out[0, 0, :16]))
    assert torch.equal(out[0, 0, 32:48], torch.zeros_like(out[0, 0, 32:48]))
    assert out[0, 0, 16:32].abs().sum() > 0
    assert_close(out, ref)


@pytest.mark.parametrize("case", [CPU_CASES[0], CPU_CASES[1], CPU_CASES[5]], ids=str)
def test_flex_matches_reference(case: Case) -> None:
    gen = torch.Generator().manual_seed(case.length + 1)
    q, k, v = qkv(case, gen)
    mask, perm = random_mask(case, gen), case_perm(case, gen)
    ref = block_sparse_attention_reference(q, k, v, mask, block_size=case.block_size, key_perm=perm)
    assert_close(run(case, q, k, v, mask, perm, "flex"), ref)


def test_reference_token_mask_from_definition() -> None:
    """Key j visible to query i iff j <= i and perm^-1(j) // bs is selected for i // bs."""
    gen = torch.Generator().manual_seed(19)
    perm = torch.randperm(24, generator=gen)
    block_mask = torch.rand(3, 3, generator=gen) < 0.6
    allowed = token_mask(block_mask, perm, block_size=8, length=24)
    for i in range(24):
        for slot in range(24):
            j = perm[slot].item()
            assert allowed[i, j] == (j <= i and bool(block_mask[i // 8, slot // 8]))


def test_compact_kv_blocks_lists_selected_blocks_first() -> None:
    gen = torch.Generator().manual_seed(23)
    mask = torch.rand(2, 3, 5, 7, generator=gen) < 0.4
    num, indices = compact_kv_blocks(mask)
    assert num.dtype == torch.int32 and indices.dtype == torch.int32
    for b in range(2):
        for h in range(3):
            for i in range(5):
                selected = mask[b, h, i].nonzero().flatten().tolist()
                unselected = (~mask[b, h, i]).nonzero().flatten().tolist()
                assert num[b, h, i].item() == len(selected)
                assert indices[b, h, i].tolist() == selected + unselected


def test_causal_kv_lists_hand_example() -> None:
    """L=100, block 16, segment 32: segments [0,32) [32,64) [64,96), tail block 6 = [96,100).
    Query block 3 ([48,64)) sees blocks 0-1 fully, 2-3 partly, 4-6 not at all."""
    mask = torch.ones(1, 1, 7, 7, dtype=torch.bool)
    mask[0, 0, 3, 1] = False
    lists = causal_kv_lists(mask, block_size=16, segment_size=32, length=100)
    assert lists.num_full[0, 0].tolist() == [0, 0, 2, 1, 4, 4, 6]
    assert lists.num_live[0, 0].tolist() == [2, 2, 4, 3, 6, 6, 7]
    assert lists.kv_indices[0, 0, 3, :3].tolist() == [0, 2, 3]


def test_causal_kv_lists_split_is_sound() -> None:
    """Under a random in-segment permutation, listed-full blocks are entirely visible and selected
    blocks past num_live hold no visible key."""
    length, bs, segment = 150, 16, 48
    gen = torch.Generator().manual_seed(29)
    perm = random_segment_permutation(1, 1, length, segment, seed=gen)[0, 0]
    mask = torch.rand(1, 1, 10, 10, generator=gen) < 0.7
    lists = causal_kv_lists(mask, block_size=bs, segment_size=segment, length=length)
    visible = token_mask(torch.ones(10, 10, dtype=torch.bool), perm, block_size=bs, length=length)
    slot_of_key = torch.empty_like(perm).scatter_(0, perm, torch.arange(length))
    for qb in range(10):
        rows = visible[qb * bs : (qb + 1) * bs]
        selected = lists.kv_indices[0, 0, qb, : mask[0, 0, qb].sum()].tolist()
        assert lists.num_full[0, 0, qb] <= lists.num_live[0, 0, qb] <= len(selected)
        for n, kb in enumerate(selected):
            keys = (slot_of_key // bs) == kb
            if n < lists.num_full[0, 0, qb]:
                assert rows[:, keys].all()
            elif n >= lists.num_live[0, 0, qb]:
                assert not rows[:, keys].any()


@pytest.mark.parametrize(("length", "block_size", "segment_size"), [(100, 16, 32), (257, 32, None), (150, 16, 48)])
def test_triton_layout_kernel_matches_torch_layout(length: int, block_size: int, segment_size: int | None) -> None:
    nb = -(-length // block_size)
    gen = torch.Generator().manual_seed(length)
    mask = (torch.rand(2, 3, nb, nb, generator=gen) < 0.4).to(DEVICE)
    expected = causal_kv_lists(mask, block_size=block_size, segment_size=segment_size, length=length)
    got = causal_kv_lists_triton(mask, block_size=block_size, segment_size=segment_size, length=length)
    assert torch.equal(got.kv_indices, expected.kv_indices)
    assert torch.equal(got.num_full, expected.num_full)
    assert torch.equal(got.num_live, expected.num_live)


BAD_INPUTS = [
    ({"backend": "cuda"}, "unknown block-sparse attention backend 'cuda'; allowed: auto, triton, flex, torch"),
    ({"block_mask": torch.ones(1, 2, 3, 4, dtype=torch.bool)}, "block_mask must be bool"),
    ({"block_mask": torch.ones(1, 2, 4, 4)}, "block_mask must be bool"),
    ({"key_perm": torch.zeros(1, 3, 64, dtype=torch.long)}, "key_perm must be int"),
    ({"key_perm": torch.zeros(1, 2, 64)}, "key_perm must be int"),
    ({"block_size": 24, "block_mask": torch.ones(1, 2, 3, 3, dtype=torch.bool)}, "block_size 24 (allowed: powers of two >= 16); use backend 'auto' or 'flex' or 'torch'"),
    ({"block_size": 8, "block_mask": torch.ones(1, 2, 8, 8, dtype=torch.bool)}, "the triton block-sparse attention cannot run: block_size 8"),
    ({"segment_size": 40}, "segment_size 40 must be a positive multiple"),
    ({"q": torch.randn(1, 2, 64, 32), "k": torch.randn(1, 1, 64, 32), "v": torch.randn(1, 1, 64, 32)}, "head dim 32 (allowed: 64, 128)"),
    ({"k": torch.randn(1, 3, 64, 64), "v": torch.randn(1, 3, 64, 64)}, "Hq a multiple of Hkv"),
    ({"q": torch.randn(1, 2, 0, 64), "k": torch.randn(1, 1, 0, 64), "v": torch.randn(1, 1, 0, 64),
      "block_mask": torch.ones(1, 2, 0, 0, dtype=torch.bool)}, "sequence length must be >= 1"),
    ({"v": torch.randn(1, 1, 64, 64, dtype=torch.float16)}, "must share one dtype"),
]


@pytest.mark.parametrize(("override", "message"), BAD_INPUTS, ids=lambda x: x if isinstance(x, str) else "")
def test_bad_inputs_raise_clear_errors(override: dict, message: str) -> None:
    args = {
        "q": torch.randn(1, 2, 64, 64), "k": torch.randn(1, 1, 64, 64), "v": torch.randn(1, 1, 64, 64),
        "block_mask": torch.ones(1, 2, 4, 4, dtype=torch.bool), "block_size": 16, "backend": "triton",
    } | override
    q, k, v, mask = (args.pop(n) for n in ("q", "k", "v", "block_mask"))
    with pytest.raises(ValueError, match=re.escape(message)):
        block_sparse_attention(q, k, v, mask, **args)


@pytest.mark.gpu
@pytest.mark.parametrize(
    "case",
    [
        Case(2, 8, 2, 1500, 128, 128, 256, "q", torch.bfloat16),
        Case(1, 8, 2, 2100, 128, 128, 256, "kv", torch.bfloat16),
        Case(1, 4, 4, 1000, 64, 64, 128, None, torch.float16),
        Case(1, 4, 1, 1300, 128, 256, 512, "q", torch.bfloat16),
    ],
    ids=str,
)
@pytest.mark.parametrize("backend", ["triton", "flex"])
def test_gpu_backends_match_reference_16bit(case: Case, backend: str) -> None:
    gen = torch.Generator().manual_seed(case.length)
    q, k, v = qkv(case, gen)
    mask, perm = random_mask(case, gen, density=0.4), case_perm(case, gen)
    out = run(case, q, k, v, mask, perm, backend)
    assert out.dtype == case.dtype and torch.isfinite(out).all()
    assert_matches_16bit_truth(out, case, q, k, v, mask, perm, scale=case.head_dim**-0.5)


GPU_VARIANTS = {  # the table's launch, the other K/V path, and tiles of one and two warpgroups
    "default": (None, None),
    "gather": (None, KernelOptions(kv_loads="gather")),
    "tma_128x128": (TileConfig(128, 128, 8, 3), KernelOptions(kv_loads="tma")),
    "tma_64x64": (TileConfig(64, 64, 4, 2), KernelOptions(kv_loads="tma")),
}


@pytest.mark.gpu
@pytest.mark.parametrize(
    "case",
    [
        Case(2, 8, 2, 1500, 128, 128, 256, "q", torch.bfloat16),
        Case(1, 14, 2, 2100, 128, 128, 256, "kv", torch.bfloat16),
        Case(2, 7, 1, 1000, 128, 128, 256, None, torch.bfloat16),
        Case(1, 28, 4, 1777, 128, 128, 256, "q", torch.bfloat16),
        Case(1, 4, 4, 1000, 64, 64, 128, None, torch.float16),
    ],
    ids=str,
)
@pytest.mark.parametrize("variant", GPU_VARIANTS, ids=str)
def test_gpu_kernel_variants_within_16bit_error(case: Case, variant: str) -> None:
    """Every K/V load path and launch shape against an fp32 reference, within twice torch's own
    16-bit error on these inputs: odd lengths, batch 2, GQA groups of 4 and 7, permuted and not."""
    tile, options = GPU_VARIANTS[variant]
    gen = torch.Generator().manual_seed(case.length)
    q, k, v = qkv(case, gen)
    mask, perm = random_mask(case, gen, density=0.4), case_perm(case, gen)
    poison = torch.full_like(q, float("nan"))  # the allocator hands this block to the output next
    del poison
    out = run_block_sparse_kernel(
        q, k, v, mask, block_size=case.block_size, key_perm=perm, segment_size=case.segment_size, scale=None,
        config=tile if tile is not None and case.block_size % tile.block_m == 0 else None, options=options,
    )
    assert out.dtype == case.dtype and torch.isfinite(out).all()
    assert_matches_16bit_truth(out, case, q, k, v, mask, perm, scale=case.head_dim**-0.5)
