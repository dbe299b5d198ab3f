"""Decode groups (src/eval/generate.py) against plain token-by-token greedy decoding, on tiny
random models in fp32 on the CPU: the same tokens for groups of 1, 4 and 8 samples of different
prompt lengths and token budgets, each stopping at its own end-of-sequence token; the same
logits row by row while a group is padded; on Llama and on Qwen2 with a sliding-window layer.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from transformers import DynamicCache

from src.attention.integration import install_method
from src.attention.methods import build_method
from src.configs import compose_config
from src.data.base import Sample
from src.data.decoding import decode_text
from src.eval.generate import DecodeLimits, generate_all, prefill, prompt_ids, stop_ids
from src.models.loader import LoadedModel, load_model
from src.registry import ConfigError

MODELS = {
    "llama": ("tiny_llama", []),
    # Qwen2 with its first layer full and its second a 48-token sliding window
    "qwen2_sliding": ("tiny_qwen2", [
        "+model.config_overrides.use_sliding_window=true",
        "+model.config_overrides.sliding_window=48", "+model.config_overrides.max_window_layers=1",
    ]),
}
# Larger random weights than the default init give varied greedy words rather than one repeated
# token (so the token test compares real answers); but their attention is so sharp that masked
# pads change nothing, so the logits test keeps the default init, where an unmasked pad or a
# wrong position moves the logits by ~1 (measured: 1.2) against ~1e-6 when right.
VARIED = "+model.config_overrides.initializer_range=0.3"
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda".split()
# (prompt words, max_new_tokens): prompts from ~30 to ~190 tokens, budgets 0 to 8
SHAPES = [(50, 8), (160, 4), (4, 7), (110, 1), (30, 0), (80, 6)]


def sample(index: int, words: int, max_new_tokens: int) -> Sample:
    prompt = " ".join(WORDS[(index + j * 7) % len(WORDS)] for j in range(words))
    return Sample(id=f"s{index}", task="t", prompt=prompt, references=["x"], metric="string_match_all",
                  max_new_tokens=max_new_tokens)


SAMPLES = [sample(i, words, budget) for i, (words, budget) in enumerate(SHAPES)]


@torch.inference_mode()
def token_by_token(loaded: LoadedModel, item: Sample) -> list[int]:
    """Greedy decoding exactly as the loop did before decode groups (main @ a0fb867)."""
    model = loaded.model
    cache = DynamicCache(config=model.config)
    logits = model(input_ids=prompt_ids(loaded.tokenizer, item), past_key_values=cache, use_cache=True, logits_to_keep=1).logits
    next_token = logits[:, -1].argmax(-1)
    stop = stop_ids(model, loaded.tokenizer)
    generated: list[int] = []
    for _ in range(item.max_new_tokens):
        token = int(next_token.item())
        if token in stop:
            break
        generated.append(token)
        if len(generated) == item.max_new_tokens:
            break
        logits = model(input_ids=next_token[:, None], past_key_values=cache, use_cache=True).logits
        next_token = logits[:, -1].argmax(-1)
    return generated


@dataclass
class Tiny:
    loaded: LoadedModel
    method_calls: list[int]
    reference: list[list[int]]


def patched_tiny(model: str, overrides: list[str]) -> Tiny:
    """A tiny model behind the attention patch (dense method, its calls counted)."""
    cfg = compose_config({"model": model}, overrides)
    loaded = load_model(cfg.model)
    method = build_method(cfg.method)
    calls: list[int] = []
    original = method.prefill

    def counted(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(1)
        return original(*args, **kwargs)

    method.prefill = counted  # type: ignore[method-assign]
    install_method(loaded.model, method)
    return Tiny(loaded, calls, [])


@pytest.fixture(scope="module", params=list(MODELS))
def tiny(request: pytest.FixtureRequest) -> Tiny:
    """A varied-weights tiny model with one of its own mid-answer tokens added to the stop ids,
    so that some samples end early, and the token-by-token answers of SAMPLES."""
    model, overrides = MODELS[request.param]
    tiny = patched_tiny(model, [*overrides, VARIED])
    first_answer = token_by_token(tiny.loaded, SAMPLES[0])
    tiny.loaded.model.generation_config.eos_token_id = [tiny.loaded.tokenizer.eos_token_id, first_answer[3]]
    tiny.reference = [token_by_token(tiny.loaded, s) for s in SAMPLES]
    return tiny


@pytest.fixture(scope="module", params=list(MODELS))
def plain(request: pytest.FixtureRequest) -> Tiny:
    """A default-init tiny model, whose attention output depends on every key it is shown."""
    return patched_tiny(*MODELS[request.param])


@pytest.mark.parametrize(
    ("limits", "group_sizes"),
    [
        (DecodeLimits(batch_size=1), [1] * 6),
        (DecodeLimits(batch_size=4), [4] * 4 + [2] * 2),
        (DecodeLimits(batch_size=8), [6] * 6),
        (DecodeLimits(batch_size=8, cache_bytes=1), [1] * 6),  # over the memory budget: alone
    ],
    ids=["one", "four", "eight", "budget"],
)
def test_decode_groups_give_the_token_by_token_answers(tiny: Tiny, limits: DecodeLimits, group_sizes: list[int]) -> None:
    results = list(generate_all(tiny.loaded.model, tiny.loaded.tokenizer, SAMPLES, limits))
    assert [r.sample.id for r in results] == [s.id for s in SAMPLES]
    assert [r.decode_batch for r in results] == group_sizes
    assert [r.tokens for r in results] == tiny.reference
    lengths = {len(tokens) for tokens in tiny.reference}
    assert len(lengths) >= 4 and any(len(t) < s.max_new_tokens for t, s in zip(tiny.reference, SAMPLES))
    for result, reference in zip(results, tiny.reference):
        assert result.text == decode_text(tiny.loaded.tokenizer, reference, result.sample.decoding)
        assert result.output_tokens == len(reference) and result.prefill_s > 0 and result.decode_s >= 0
        assert result.input_tokens == prompt_ids(tiny.loaded.tokenizer, result.sample).shape[1]


def test_padded_group_logits_match_each_sample_alone(plain: Tiny) -> None:
    """Row by row, the logits of a left-padded group (masked pads, own positions) are those of the
    sample decoded alone, while every row is still in the batch; the method sees only prefills."""
    model = plain.loaded.model
    samples = [sample(i, words, 4) for i, (words, _) in enumerate(SHAPES)]
    captured: list[torch.Tensor] = []
    hook = model.lm_head.register_forward_hook(lambda module, args, out: captured.append(out[:, -1].clone()))
    try:
        plain.method_calls.clear()
        for item in samples:
            prefill(model, item, prompt_ids(plain.loaded.tokenizer, item))
        prefill_calls = len(plain.method_calls)
        alone = []
        for item in samples:
            captured.clear()
            list(generate_all(model, plain.loaded.tokenizer, [item], DecodeLimits()))
            alone.append(captured[1:])  # decode steps after the prefill's
        captured.clear()
        plain.method_calls.clear()
        list(generate_all(model, plain.loaded.tokenizer, samples, DecodeLimits(batch_size=len(samples))))
    finally:
        hook.remove()
    assert len(plain.method_calls) == prefill_calls > 0
    full_steps = [step for step in captured[len(samples):] if step.shape[0] == len(samples)]
    assert len(full_steps) >= 2
    for step, batched in enumerate(full_steps):
        for row, steps in enumerate(alone):
            torch.testing.assert_close(batched[row], steps[step][0], rtol=1e-5, atol=1e-5)


def test_prompt_over_the_context_is_a_config_error_before_any_prefill(tiny: Tiny) -> None:
    tiny.method_calls.clear()
    with pytest.raises(ConfigError, match=r"sample s1 has \d+ tokens, over model.max_length 100"):
        list(generate_all(tiny.loaded.model, tiny.loaded.tokenizer, SAMPLES, DecodeLimits(), max_input_tokens=100))
    assert tiny.method_calls == []
