"""Greedy generation with a separately timed prefill: the loop every benchmark goes through.

The prefill is one forward over the whole prompt (where the sparse method runs); decoding then
continues token by token on the KV cache with dense attention.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

from src.data.base import Sample
from src.data.decoding import decode_text
from src.data.prompting import model_input_text


@dataclass
class Generation:
    text: str
    input_tokens: int
    prefill_s: float
    decode_s: float


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _stop_ids(model: Any, tokenizer: Any) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


@torch.inference_mode()
def generate(model: Any, tokenizer: Any, sample: Sample) -> Generation:
    """Greedy-decode up to `sample.max_new_tokens` tokens after a timed prefill."""
    text = model_input_text(sample, tokenizer)
    templated = sample.use_chat_template and tokenizer.chat_template
    input_ids = tokenizer(text, return_tensors="pt", add_special_tokens=not templated)["input_ids"]
    if sample.keep_last_tokens is not None:
        input_ids = input_ids[:, -sample.keep_last_tokens :]
    device = model.device
    input_ids = input_ids.to(device)
    cache = DynamicCache(config=model.config)
    stop = _stop_ids(model, tokenizer)

    _sync(device)
    start = time.perf_counter()
    logits = model(input_ids=input_ids, past_key_values=cache, use_cache=True, logits_to_keep=1).logits
    next_token = logits[:, -1].argmax(-1)
    _sync(device)
    prefill_s = time.perf_counter() - start

    generated: list[int] = []
    start = time.perf_counter()
    for _ in range(sample.max_new_tokens):
        token = int(next_token.item())
        if token in stop:
            break
        generated.append(token)
        if len(generated) == sample.max_new_tokens:
            break
        logits = model(input_ids=next_token[:, None], past_key_values=cache, use_cache=True).logits
        next_token = logits[:, -1].argmax(-1)
    decode_s = time.perf_counter() - start
    return Generation(
        text=decode_text(tokenizer, generated, sample.decoding),
        input_tokens=int(input_ids.shape[1]),
        prefill_s=prefill_s,
        decode_s=decode_s,
    )
