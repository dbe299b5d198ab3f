"""MInference's per-head patterns: the offline search, the config file, and per-head plans."""
from __future__ import annotations

import json

import pytest
import torch

from src.attention.kernels.vertical_slash import vertical_slash_token_mask
from src.attention.select.minference_patterns import (
    HeadPattern,
    candidate_selection,
    attention_recall,
    block_sparse_pattern,
    default_candidates,
    load_patterns,
    save_patterns,
    search_patterns,
)
from src.attention.plan import BlockSparsePlan, VerticalSlashPlan
from src.attention.select.vertical_slash import VerticalSlashSelector
from src.attention.testing import random_qkv
from src.registry import ConfigError


def _qk(batch=1, q_heads=4, kv_heads=2, length=200, head_dim=16, seed=0):
    q, k, _ = random_qkv(batch, q_heads, kv_heads, length, head_dim, seed=seed)
    return q, k


def _token_mask(candidate, b, h, length):
    """The candidate's [L, L] token mask for one head, written out from its tables or blocks."""
    if candidate.block_mask is not None:
        positions = torch.arange(length) // 64
        blocks = candidate.block_mask[b, h][positions][:, positions]
        return blocks & torch.ones(length, length, dtype=torch.bool).tril()
    columns, slashes = candidate.token_mask
    return vertical_slash_token_mask(columns[b, h].nonzero().flatten(), slashes[b, h].nonzero().flatten(), length)


def test_recall_is_the_kept_attention_mass():
    q, k = _qk(length=150)
    scale, first = 0.25, 40
    candidates = [candidate_selection(q, k, HeadPattern(*triple), scale=scale, last_q=64) for triple in default_candidates(60)]
    recall = attention_recall(q, k, candidates, scale=scale, first_query=first, chunk_size=32)
    for c, candidate in enumerate(candidates):
        for h in range(4):
            logits = (q[0, h] * scale) @ k[0, h // 2].T
            probs = torch.softmax(logits.masked_fill(~torch.ones(150, 150, dtype=torch.bool).tril(), float("-inf")), -1)
            kept = (probs * _token_mask(candidate, 0, h, 150))[first:].sum(-1).mean()
            assert recall[c, 0, h].item() == pytest.approx(kept.item(), abs=1e-5)


def _structured_layer(length=400):
    """Heads 0, 1 attend along diagonals 16 apart; heads 2, 3 attend a few fixed columns."""
    generator = torch.Generator().manual_seed(3)
    q = torch.randn(1, 4, length, 16, generator=generator) * 0.1
    k = torch.randn(1, 2, length, 16, generator=generator) * 0.1
    periodic = torch.nn.functional.one_hot(torch.arange(length) % 16, 16).float() * 6.0
    q[0, :2] += periodic
    k[0, 0] += periodic
    k[0, 1, [50, 120, 200, 260, 333]] += 3.0
    q[0, 2:] += 1.0
    return q, k


def test_search_picks_each_heads_best_pattern_and_round_trips(tmp_path):
    random_layer, structured = _qk(length=220), _structured_layer()
    found = search_patterns({0: random_layer, 3: structured}, budget=160)
    assert set(found) == {0, 3} and all(len(layer) == 4 for layer in found.values())
    assert [(found[3][h].vertical_size, found[3][h].slash_size) for h in range(4)] == [(6, 154)] * 2 + [(154, 6)] * 2
    patterns = [HeadPattern(*triple) for triple in default_candidates(160)]
    for layer, (q, k) in ((0, random_layer), (3, structured)):
        masks = [candidate_selection(q, k, p, scale=0.25, last_q=64) for p in patterns]
        recall = attention_recall(q, k, masks, scale=0.25, first_query=q.shape[2] // 2)[:, 0]
        for head, chosen in found[layer].items():
            best = patterns[int(recall[:, head].argmax())]
            assert (chosen.name, chosen.vertical_size, chosen.slash_size) == (best.name, best.vertical_size, best.slash_size)
            assert chosen.score == pytest.approx(recall[:, head].max().item(), abs=1e-6)
    path = tmp_path / "patterns.json"
    save_patterns(found, path)
    stored = json.loads(path.read_text())
    assert len(stored) == 4 and stored[1] == {} and len(stored[3]["0"]) == 4
    assert load_patterns(path) == {0: found[0], 1: {}, 2: {}, 3: found[3]}


def test_loads_minferences_own_format_and_rejects_bad_files(tmp_path):
    path = tmp_path / "official.json"
    path.write_text(json.dumps([{"0": ["vertical_and_slash", 1000, 6096, 0.96], "1": ["vertical_and_slash", 3500, 100, 0.81]}]))
    assert load_patterns(path) == {0: {0: HeadPattern("vertical_and_slash", 1000, 6096, 0.96), 1: HeadPattern("vertical_and_slash", 3500, 100, 0.81)}}
    path.write_text(json.dumps([{"0": ["dilated", 1, 2, 0.5]}]))
    with pytest.raises(ConfigError, match="unknown MInference pattern 'dilated'; allowed: vertical_and_slash, stream_llm, block_sparse"):
        load_patterns(path)
    path.write_text(json.dumps({"0": ["vertical_and_slash", 1, 2, 0.5]}))
    with pytest.raises(ConfigError, match="must be a JSON list"):
        load_patterns(path)
    path.write_text(json.dumps([{"0": ["vertical_and_slash", 1]}]))
    with pytest.raises(ConfigError, match=r"layer 0 head '0': expected \[pattern, v, s, score\]"):
        load_patterns(path)
    with pytest.raises(ConfigError, match="budget must be a positive int"):
        search_patterns([], budget=0)


def test_per_head_config_mixing_vertical_slash_and_a_shape(tmp_path):
    q, k = _qk(length=180, seed=1)
    path = tmp_path / "mixed.json"
    save_patterns({1: {0: HeadPattern("stream_llm", 4, 16), 2: HeadPattern("vertical_and_slash", 40, 60)}}, path)
    selector = VerticalSlashSelector(vertical_size=50, slash_size=70, pattern_config=str(path))
    plan = selector(q, k, scale=0.25, layer_idx=1)
    assert isinstance(plan, VerticalSlashPlan)
    head0_columns = plan.vertical_indices[0, 0]
    assert sorted(head0_columns[head0_columns >= 0].tolist()) == [0, 1, 2, 3]
    head0_slashes = plan.slash_offsets[0, 0]
    assert sorted(head0_slashes[head0_slashes >= 0].tolist()) == list(range(16))
    counts = [(plan.vertical_indices[0, h] >= 0).sum().item() for h in range(4)]
    assert counts == [4, 50, 40, 50]
    with pytest.raises(ValueError, match="call the selector with layer_idx"):
        selector(q, k, scale=0.25)


def test_block_sparse_heads_turn_the_layer_into_a_block_plan(tmp_path):
    q, k = _qk(length=300, seed=2)
    path = tmp_path / "blocks.json"
    save_patterns({0: {1: HeadPattern("block_sparse", 2, 0)}}, path)
    selector = VerticalSlashSelector(vertical_size=30, slash_size=50, pattern_config=str(path))
    plan = selector(q, k, scale=0.25, layer_idx=0)
    assert isinstance(plan, BlockSparsePlan) and plan.block_size == 64
    # The block-sparse head: per query block the 2 causal key blocks of largest pooled q.k.
    pooled = [torch.nn.functional.pad(x, (0, 0, 0, 20)).view(5, 64, 16).mean(1) for x in (q[0, 1], k[0, 0])]
    scores = pooled[0] @ pooled[1].T
    for i in range(5):
        top = scores[i, : i + 1].topk(min(2, i + 1)).indices.tolist()
        assert sorted(plan.block_mask[0, 1, i].nonzero().flatten().tolist()) == sorted(top)
    assert torch.equal(plan.block_mask[:, 1], block_sparse_pattern(q, k, [0, 2, 0, 0])[:, 1])
    # The other heads keep every block holding a pair of their vertical-slash pattern.
    vertical_plan = VerticalSlashSelector(vertical_size=30, slash_size=50)(q, k, scale=0.25)
    positions = torch.arange(300) // 64
    for h in (0, 2, 3):
        pairs = vertical_slash_token_mask(vertical_plan.vertical_indices[0, h], vertical_plan.slash_offsets[0, h], 300)
        covered = plan.block_mask[0, h][positions][:, positions]
        assert not (pairs & ~covered).any()
        assert plan.block_mask[0, h].sum() < 15
