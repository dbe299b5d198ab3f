"""Each baseline's selector against a reference of its official code's rule (issue 12), and the
switches against the earlier rule.

The references are written here, loop by loop, from what the official code does (not copied):
    MeanPooling   pbs-attn baselines/MeanPooling.py + src/utils.py (block_pooled_attn, select_blocks)
    PBS           pbs-attn src/pbs.py (permuted_block_selection) + src/permute_states.py
    XAttention    x-attention xattn_estimate / find_blocks_chunked
    FlexPrefill   flex_prefill_attention's min_budget=None (test_flexprefill's _reference)
Inputs: random, a sink key, a local band, GQA, odd lengths.
"""
from __future__ import annotations

import math

import pytest
import torch

from src.attention.kernels.antidiagonal.naive import xattention_chunk_size
from src.attention.permute.segmented_key import SegmentedKeyPermuter
from src.attention.select.antidiagonal import AntidiagonalSelector
from src.attention.select.flexprefill import FlexPrefillSelector
from src.attention.select.meanpool import MeanPoolSelector
from src.attention.testing import random_qkv
from src.configs import compose_config
from src.registry import ConfigError
from tests.attention.select.test_flexprefill import _inputs as flex_inputs
from tests.attention.select.test_flexprefill import _reference as flex_reference
from tests.attention.select.test_meanpool import BLOCK, SCALE, brute_mask

Q_HEADS, KV_HEADS, DIM = 4, 2, 16


def structured_qk(kind: str, length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """q [2, 4, L, 16], k [2, 2, L, 16] (GQA): "random", "sink" (key 0 aligned with every query)
    or "band" (each key close to the queries just after it: a local band)."""
    q, k, _ = random_qkv(2, Q_HEADS, KV_HEADS, length, DIM, seed=seed, std=2.0)
    if kind == "sink":
        k[:, :, 0] += 1.5 * q[:, ::2].mean(2)
    elif kind == "band":
        k = k * 0.3 + q[:, ::2].roll(-3, dims=2)
    return q, k


def pooled(x: torch.Tensor, block: int) -> torch.Tensor:
    """Zero-padded block means over block tokens, float64 [..., nb, D] (block_pooled_attn)."""
    nb = math.ceil(x.shape[-2] / block)
    x = torch.nn.functional.pad(x.double(), (0, 0, 0, nb * block - x.shape[-2]))
    return x.unflatten(-2, (nb, block)).mean(-2)


def select_blocks(probs: torch.Tensor, threshold: float) -> torch.Tensor:
    """pbs-attn's select_blocks on one row: sorted prefix through the first cumsum >= threshold."""
    values, order = probs.sort(descending=True)
    reached = (values.cumsum(0) >= threshold).nonzero()
    keep = torch.zeros_like(probs, dtype=torch.bool)
    if len(reached):
        keep[order[: int(reached[0]) + 1]] = True
    return keep


def official_pooled_selection(
    q: torch.Tensor, k: torch.Tensor, perm: torch.Tensor | None, *, block: int, segment: int | None, threshold: float
) -> torch.Tensor:
    """MeanPooling (perm None, segment None: current block scored and forced, block 0 forced) or
    PBS (segment blocks left out of the estimate and forced, the block holding token 0 forced),
    per (batch, head, query block), K/V repeated per query head as the authors' patch does."""
    batch, heads, length, _ = q.shape
    group = heads // k.shape[1]
    nb = math.ceil(length / block)
    per_segment = 1 if segment is None else segment // block
    rows = torch.arange(nb)[:, None]
    cols = torch.arange(nb)[None, :]
    causal = cols <= rows
    own_segment = rows // per_segment == cols // per_segment
    mask = torch.zeros(batch, heads, nb, nb, dtype=torch.bool)
    for b in range(batch):
        for h in range(heads):
            order = torch.arange(length) if perm is None else perm[b, h * perm.shape[1] // heads]
            keys = k[b, h // group][order]
            scored = causal & ~own_segment if segment is not None else causal
            logits = (pooled(q[b, h], block) @ pooled(keys, block).T) / math.sqrt(q.shape[-1])
            probs = torch.softmax(logits.masked_fill(~scored, float("-inf")), -1).nan_to_num(0.0)
            for i in range(nb):
                mask[b, h, i] = select_blocks(probs[i], threshold)
            padded_order = torch.cat([order, torch.arange(length, nb * block)])
            sink = (padded_order.view(nb, block) == 0).any(-1)
            mask[b, h] |= sink[None, :] | (own_segment if segment is not None else torch.eye(nb, dtype=torch.bool))
    return mask


def method_selector(name: str, **overrides):
    """A method's selector (and permuter) as conf/method/<name>.yaml composes it, with overrides."""
    from experiments.analysis_coverage import build_parts

    return build_parts(name, {"block_size": BLOCK, "estimate_backend": "torch", **overrides})


CASES = [("random", 300), ("sink", 256), ("band", 301), ("random", 40)]


@pytest.mark.parametrize(("kind", "length"), CASES)
@pytest.mark.parametrize("threshold", [0.5, 0.9])
def test_meanpooling_config_selects_what_the_official_code_selects(kind: str, length: int, threshold: float) -> None:
    q, k = structured_qk(kind, length)
    method = method_selector("meanpooling", threshold=threshold)
    assert (method.selector.score_diagonal, method.selector.last_block_pooling) == (True, "zero_padded")
    mask = method.plan(q, k, scale=SCALE).block_mask
    assert torch.equal(mask, official_pooled_selection(q, k, None, block=BLOCK, segment=None, threshold=threshold))


@pytest.mark.parametrize(("kind", "length"), CASES)
def test_meanpooling_switches_give_the_earlier_rule(kind: str, length: int) -> None:
    """score_diagonal false + last_block_pooling mean: the diagonal left out and forced, the short
    last block averaged over its tokens (the rule before issue 12; brute_mask writes it out)."""
    q, k = structured_qk(kind, length, seed=1)
    method = method_selector("meanpooling", threshold=0.8, score_diagonal=False, last_block_pooling="mean")
    assert torch.equal(method.plan(q, k, scale=SCALE).block_mask, brute_mask(q, k, None, None, 0.8))


def authors_key_order(q: torch.Tensor, k: torch.Tensor, *, segment: int, last: int) -> torch.Tensor:
    """last_block_attn_sorting per query head: the last queries' mean softmax over the keys of
    full segments (nothing masked), each full segment sorted descending, the tail in place."""
    batch, heads, length, _ = q.shape
    group = heads // k.shape[1]
    full = (length // segment) * segment
    perm = torch.arange(length).repeat(batch, heads, 1)
    for b in range(batch):
        for h in range(heads):
            probs = torch.softmax(q[b, h, -last:].double() @ k[b, h // group, :full].double().T * SCALE, -1)
            scores = probs.mean(0)
            for start in range(0, full, segment):
                perm[b, h, start : start + segment] = start + scores[start : start + segment].argsort(descending=True)
    return perm


@pytest.mark.parametrize(("kind", "length", "segment"), [("random", 256, 64), ("sink", 276, 64), ("band", 200, 96), ("band", 160, 64)])
def test_pbs_authors_scoring_and_selection_match_the_official_code(kind: str, length: int, segment: int) -> None:
    q, k = structured_qk(kind, length, seed=2)
    method = method_selector("pbs", segment_size=segment, permutation_scoring="full_segments")
    order = method.permuter(q, k, scale=SCALE)
    expected_perm = authors_key_order(q, k, segment=segment, last=BLOCK)
    assert torch.equal(order.key_perm, expected_perm)
    # Tails here span at most one block; MeanPoolSelector's docstring says why longer ones differ.
    mask = method.selector(q, k, key_order=order, scale=SCALE).block_mask
    assert torch.equal(mask, official_pooled_selection(q, k, expected_perm, block=BLOCK, segment=segment, threshold=0.9))


def test_pbs_default_scoring_is_ours_and_the_triton_backend_refuses_the_authors() -> None:
    q, k = structured_qk("random", 256, seed=3)
    ours = method_selector("pbs", segment_size=64).permuter
    assert ours.scoring == "causal"
    assert not torch.equal(ours(q, k, scale=SCALE).key_perm, authors_key_order(q, k, segment=64, last=BLOCK))
    with pytest.raises(ConfigError, match="permutation scoring 'full_segments' has no triton backend"):
        SegmentedKeyPermuter(segment_size=64, scoring="full_segments", backend="triton")


def find_blocks_chunked_row(x: torch.Tensor, row: int, chunk_start: int, chunk_blocks: int, threshold: float) -> torch.Tensor:
    """x-attention's find_blocks_chunked for one query block (causal prefill), float64 masses x [N]:
    block 0 forced, then the chunk's diagonal written over columns chunk_start.. (so in the first
    chunk block 0 is forced only on its own row), the cumulative sum laid out for two forced
    blocks, and the unselected slots scattered to column 0."""
    n = x.shape[0]
    forced = torch.zeros(n, dtype=torch.bool)
    forced[0] = True
    forced[chunk_start : chunk_start + chunk_blocks] = torch.arange(chunk_blocks) == row - chunk_start
    required = x.sum() * threshold
    others = x.masked_fill(forced, 0.0).sort(descending=True).values
    laid_out = torch.cat([x.new_zeros(1), x[forced].sum()[None], others[:-2]])
    mass_before = torch.cat([x.new_zeros(1), laid_out[:-1]]).cumsum(0)
    ranking = torch.where(forced, 100000 * (1 + x), x).argsort(descending=True, stable=True)
    keep = torch.zeros(n, dtype=torch.bool)
    chosen = mass_before < required
    keep[ranking[chosen]] = True
    if not chosen.all():
        keep[0] = True
    keep[row + 1 :] = False  # the final causal tril
    return keep


def official_xattention(masses: torch.Tensor, chunk_blocks: int, threshold: float) -> torch.Tensor:
    """The official block mask from estimated masses [B, H, nb, nb], rows and columns padded to
    whole chunks as xattn_estimate pads its inputs."""
    batch, heads, nb, _ = masses.shape
    padded = math.ceil(nb / chunk_blocks) * chunk_blocks
    x = torch.nn.functional.pad(masses.double(), (0, padded - nb, 0, padded - nb))
    mask = torch.zeros(batch, heads, nb, nb, dtype=torch.bool)
    for b in range(batch):
        for h in range(heads):
            for i in range(nb):
                start = i // chunk_blocks * chunk_blocks
                mask[b, h, i] = find_blocks_chunked_row(x[b, h, i], i, start, chunk_blocks, threshold)[:nb]
    return mask


def uniform_xattention(masses: torch.Tensor, threshold: float) -> torch.Tensor:
    """The earlier rule in every row: block 0 and the diagonal counted first, then the largest
    causal blocks while the mass before them is below threshold of the row's."""
    batch, heads, nb, _ = masses.shape
    mask = torch.zeros(batch, heads, nb, nb, dtype=torch.bool)
    for b in range(batch):
        for h in range(heads):
            for i in range(nb):
                row = masses[b, h, i, : i + 1].double()
                forced = {0, i}
                kept, mass = set(forced), sum(row[j].item() for j in forced)
                for j in row.argsort(descending=True).tolist():
                    if j not in forced and mass < threshold * row.sum().item():
                        kept.add(j)
                        mass += row[j].item()
                mask[b, h, i, sorted(kept)] = True
    return mask


XATTN_CASES = [("random", 301, 128), ("sink", 256, 64), ("band", 520, 128), ("random", 300, None)]


@pytest.mark.parametrize(("kind", "length", "chunk"), XATTN_CASES)
@pytest.mark.parametrize("threshold", [0.6, 0.9])
def test_xattention_config_selects_what_find_blocks_chunked_selects(kind: str, length: int, chunk: int | None, threshold: float) -> None:
    q, k = structured_qk(kind, length, seed=4)
    method = method_selector("xattention", stride=4, threshold=threshold)
    selector: AntidiagonalSelector = method.selector
    assert selector.first_chunk == "official"
    selector.chunk_size = chunk
    masses = torch.cat([mass for _, mass in selector.block_masses(q, k, scale=SCALE)], dim=2)
    chunk_blocks = (chunk or xattention_chunk_size(length, BLOCK)) // BLOCK
    mask = selector(q, k, scale=SCALE).block_mask
    assert torch.equal(mask, official_xattention(masses, chunk_blocks, threshold))
    if chunk_blocks < math.ceil(length / BLOCK):  # later chunks: the uniform rule
        later = slice(chunk_blocks, None)
        assert torch.equal(mask[:, :, later], uniform_xattention(masses, threshold)[:, :, later])


@pytest.mark.parametrize(("kind", "length"), [("random", 301), ("band", 256)])
def test_xattention_uniform_switch_gives_the_earlier_rule(kind: str, length: int) -> None:
    q, k = structured_qk(kind, length, seed=5)
    method = method_selector("xattention", stride=4, threshold=0.8, first_chunk="uniform")
    masses = torch.cat([mass for _, mass in method.selector.block_masses(q, k, scale=SCALE)], dim=2)
    mask = method.plan(q, k, scale=SCALE).block_mask
    assert torch.equal(mask, uniform_xattention(masses, 0.8))
    official = method_selector("xattention", stride=4, threshold=0.8).plan(q, k, scale=SCALE).block_mask
    assert not torch.equal(mask, official) and (mask <= official).all()


@pytest.mark.parametrize("seed", [0])
def test_flexprefill_config_uses_the_papers_min_budget(seed: int) -> None:
    """The PBS paper's configs pass no min_budget: 1 token, one block; 1024 stays an override."""
    assert compose_config({"method": "flexprefill"}).method.min_budget is None
    q, k, _ = flex_inputs(length=231, seed=seed)
    block, gamma, tau, scale = 16, 0.9, 0.1, 0.25
    official = method_selector("flexprefill", block_size=block, gamma=gamma, tau=tau).selector
    assert official.min_budget == 1
    expected, _ = flex_reference(q, k, block=block, gamma=gamma, tau=tau, min_blocks=1, scale=scale)
    assert torch.equal(official(q, k, scale=scale).block_mask, expected)
    override = method_selector("flexprefill", block_size=block, gamma=gamma, tau=tau, min_budget=4 * block).selector
    expected, _ = flex_reference(q, k, block=block, gamma=gamma, tau=tau, min_blocks=4, scale=scale)
    assert torch.equal(override(q, k, scale=scale).block_mask, expected)
    assert isinstance(FlexPrefillSelector(min_budget=1024).min_budget, int)
