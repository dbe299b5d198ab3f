"""XAttention's Triton antidiagonal estimate against the torch reference it replaces on CUDA.

On CPU the kernels run in the Triton interpreter (tests/conftest.py), so shapes are small; small
tiles make them span several row and column tiles.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from src.attention.kernels import TileConfig
from src.attention.kernels.antidiagonal import (
    antidiagonal_block_mass_reference,
    antidiagonal_block_mass_triton,
    antidiagonal_block_masses,
    triton_unsupported,
)
from src.attention.kernels.backends import resolve_backend
from src.attention.key_order import KeyOrder
from src.attention.select.antidiagonal import AntidiagonalSelector
from src.attention.testing import assert_close, random_qkv, random_segment_permutation
from src.registry import ConfigError

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
SMALL_TILE = TileConfig(block_m=16, block_n=16, num_warps=4, num_stages=1)
# Key blocks whose every logit underflows get log2(0) = -inf on purpose; NumPy warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:divide by zero encountered in log2")


@dataclass(frozen=True)
class Case:
    batch: int
    q_heads: int
    kv_heads: int
    length: int
    head_dim: int
    block_size: int
    stride: int
    perm_heads: str | None  # "q" (one permutation per query head), "kv" (per kv head) or None
    segment_size: int = 64


def case_inputs(case: Case, seed: int, dtype: torch.dtype = torch.float32):
    """Random q, k and the case's key permutation (None, or random inside each segment)."""
    gen = torch.Generator().manual_seed(seed)
    q, k, _ = random_qkv(case.batch, case.q_heads, case.kv_heads, case.length, case.head_dim, seed=gen, dtype=dtype, device=DEVICE)
    if case.perm_heads is None:
        return q, k, None
    heads = case.q_heads if case.perm_heads == "q" else case.kv_heads
    return q, k, random_segment_permutation(case.batch, heads, case.length, case.segment_size, seed=gen, device=DEVICE)


def case_order(case: Case, perm: torch.Tensor | None) -> KeyOrder:
    return KeyOrder() if perm is None else KeyOrder(perm, case.segment_size)


CASES = [
    # GQA, batch 2, a tail shorter than a block and than a stride (250 = 7 * 32 + 26, 26 = 6 * 4 + 2).
    (Case(2, 4, 2, 250, 16, 32, 4, None), SMALL_TILE, slice(0, 8)),
    (Case(2, 4, 2, 250, 16, 32, 4, None), None, slice(3, 6)),
    # Odd stride, head dim padded to a power of two, one kv head, a chunk ending at the tail.
    (Case(1, 2, 1, 101, 24, 24, 3, None), SMALL_TILE, slice(2, 5)),
    # Permuted keys: one permutation per query head, and one per kv head shared by its group.
    (Case(2, 4, 2, 250, 16, 32, 4, "q"), SMALL_TILE, slice(0, 8)),
    (Case(1, 4, 2, 203, 16, 16, 2, "kv", segment_size=32), TileConfig(32, 16, 4, 1), slice(4, 13)),
]


@pytest.mark.parametrize(("case", "config", "rows"), CASES)
def test_triton_block_mass_matches_reference(case: Case, config: TileConfig | None, rows: slice) -> None:
    q, k, perm = case_inputs(case, seed=case.length + rows.start)
    kwargs = dict(block_size=case.block_size, stride=case.stride, scale=case.head_dim**-0.5, row_blocks=rows)
    expected = antidiagonal_block_mass_reference(q, k, perm, **kwargs)
    got = antidiagonal_block_mass_triton(q, k, perm, config=config, **kwargs)
    assert_close(got, expected, atol=2e-5, rtol=1e-4)
    # Each real strided row's softmax sums to one; nothing lands above the block diagonal.
    real_rows = -(-case.length // case.stride)
    per_block = case.block_size // case.stride
    starts = torch.arange(rows.start, rows.stop, device=DEVICE) * per_block
    torch.testing.assert_close(got.sum(-1), (real_rows - starts).clamp(0, per_block).float().expand_as(got[..., 0]))
    query_blocks = torch.arange(rows.start, rows.stop, device=DEVICE)
    future = torch.arange(got.shape[-1], device=DEVICE)[None, :] > query_blocks[:, None]
    assert (got[..., future] == 0).all()


@pytest.mark.parametrize(
    "dtype",
    # The Triton 3.6 interpreter multiplies bf16 tiles as raw integers, so bf16 needs a GPU.
    [torch.float16, pytest.param(torch.bfloat16, marks=pytest.mark.gpu)],
)
def test_16bit_block_mass_is_close_to_reference(dtype: torch.dtype) -> None:
    """The kernel keeps 16-bit logits in fp32: no further from the fp32 truth than twice the
    reference run at 16 bits, which rounds its logits to 16 bits."""
    case = Case(1, 4, 2, 180, 32, 32, 4, "q")
    q, k, perm = case_inputs(case, seed=3, dtype=dtype)
    kwargs = dict(block_size=32, stride=4, scale=32**-0.5, row_blocks=slice(0, 6))
    expected = antidiagonal_block_mass_reference(q.float(), k.float(), perm, **kwargs)
    got = antidiagonal_block_mass_triton(q, k, perm, config=SMALL_TILE, **kwargs)
    assert_close(got, expected, baseline=antidiagonal_block_mass_reference(q, k, perm, **kwargs))


@pytest.mark.parametrize("perm_heads", [None, "q"])
def test_selector_plans_agree_across_backends(perm_heads: str | None) -> None:
    case = Case(2, 4, 2, 250, 16, 32, 4, perm_heads)
    q, k, perm = case_inputs(case, seed=7)
    plans = [
        AntidiagonalSelector(block_size=32, stride=4, threshold=0.8, chunk_size=96, backend=backend)(
            q, k, key_order=case_order(case, perm), scale=0.25
        )
        for backend in ("torch", "triton")
    ]
    assert torch.equal(plans[0].block_mask, plans[1].block_mask)
    assert plans[1].block_mask.float().mean() < 0.9


def test_overridden_tile_gives_the_default_block_mass() -> None:
    """The selector's chunked estimate (what bench_attention.py --xattn-tiles times) is the same
    mass at any valid tile, two chunks of query blocks included."""
    case = Case(1, 4, 2, 250, 16, 32, 4, "kv")
    q, k, perm = case_inputs(case, seed=5)
    selector = AntidiagonalSelector(block_size=32, stride=4, chunk_size=128, backend="triton")

    def chunks(config: TileConfig | None) -> list[tuple[slice, torch.Tensor]]:
        return list(selector.block_masses(q, k, key_order=case_order(case, perm), scale=0.25, config=config))

    default = chunks(None)
    assert [rows for rows, _ in default] == [slice(0, 4), slice(4, 8)]
    for (rows, expected), (tile_rows, got) in zip(default, chunks(TileConfig(32, 16, 2, 1)), strict=True):
        assert tile_rows == rows
        assert_close(got, expected, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize(
    ("config", "backend", "message"),
    [
        (TileConfig(48, 16, 4, 1), "triton", "block_m 48 must be a power of two >= 16"),
        (TileConfig(16, 8, 4, 1), "triton", "block_n 8 must be a power of two >= 16"),
        (TileConfig(16, 16, 4, 1), "triton", "multiple of block_size / stride = 32"),
        (TileConfig(16, 32, 3, 1), "triton", "num_warps 3 must be a power of two"),
        (TileConfig(16, 32, 4, 0), "triton", "num_stages 0 must be >= 1"),
        (SMALL_TILE, "torch", "triton backend only"),
    ],
)
def test_bad_tile_is_refused(config: TileConfig, backend: str, message: str) -> None:
    q = torch.zeros(1, 2, 256, 16, device=DEVICE)
    with pytest.raises(ValueError, match=message):
        antidiagonal_block_masses(q, q, None, block_size=128, stride=4, scale=0.25, backend=backend, config=config)


def test_backend_choice_and_errors() -> None:
    q = torch.zeros(1, 2, 64, 16)

    def resolve(backend: str, k: torch.Tensor, block_size: int, stride: int) -> str:
        return resolve_backend("antidiagonal estimate", backend, q, triton_unsupported(q, k, block_size, stride))

    assert resolve("auto", q, 32, 4) == ("triton" if q.is_cuda else "torch")
    assert resolve("torch", q, 32, 4) == "torch"
    with pytest.raises(ValueError, match="power of two"):
        resolve("triton", q, 96, 8)
    with pytest.raises(ValueError, match="share one dtype"):
        resolve("triton", q.half(), 32, 4)
    with pytest.raises(ConfigError, match="unknown antidiagonal estimate backend 'cuda'"):
        resolve("cuda", q, 32, 4)
    with pytest.raises(ConfigError, match="unknown backend"):
        AntidiagonalSelector(backend="cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("perm_heads", [None, "q", "kv"])
def test_cuda_default_tiles_match_reference(perm_heads: str | None) -> None:
    """The H100 tile shapes on a realistic head dim, block and stride, over several chunks."""
    case = Case(1, 8, 2, 4000, 128, 128, 8, perm_heads, segment_size=256)
    q, k, perm = case_inputs(case, seed=11, dtype=torch.bfloat16)
    for rows in (slice(0, 12), slice(12, 32)):
        kwargs = dict(block_size=128, stride=8, scale=128**-0.5, row_blocks=rows)
        expected = antidiagonal_block_mass_reference(q.float(), k.float(), perm, **kwargs)
        got = antidiagonal_block_mass_triton(q, k, perm, **kwargs)
        assert_close(got, expected, baseline=antidiagonal_block_mass_reference(q, k, perm, **kwargs))
