"""Greedy generation with a separately timed prefill: the loop every benchmark goes through.

Each prompt is prefilled alone (batch 1: the only forward the sparse method sees, timed on its
own). Decoding then continues with dense attention on the KV caches of a *group* of up to
`DecodeLimits.batch_size` prefilled samples at once: their caches left-padded to a common width
into one batched cache, a 2-D attention mask with zeros on the padding, each sample's own
positions, greedy argmax, each sample stopping at its own end-of-sequence token or token budget.

Why groups: decoding a small model token by token is bound by Python and kernel launches (one
forward of every layer per token), not by the GPU; a group of 64 pays that once per 64 tokens.
A group of one is the plain token-by-token loop (no mask, the positions transformers would use).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import DynamicCache, PreTrainedModel
from transformers.cache_utils import DynamicLayer

from src.data.base import Sample
from src.data.decoding import decode_text
from src.data.prompting import model_input_text
from src.registry import ConfigError

KVLayers = list[tuple[torch.Tensor, torch.Tensor] | None]


@dataclass(frozen=True)
class DecodeLimits:
    """How many prefilled samples decode together, and how many bytes of KV cache their batched
    cache may take at its largest (a sample over the budget still decodes, alone)."""

    batch_size: int = 1
    cache_bytes: float = 16e9


@dataclass
class Generation:
    """One sample's greedy answer and its timings.

    decode_s: this sample's share of its group's decode wall time, in proportion to the decode
        forwards it took part in (the whole time for a group of one).
    decode_batch: how many samples were decoded in its group, itself included.
    """

    sample: Sample
    tokens: list[int]
    text: str
    input_tokens: int
    prefill_s: float
    decode_s: float
    decode_batch: int

    @property
    def output_tokens(self) -> int:
        return len(self.tokens)


@dataclass
class Prefill:
    """A prefilled prompt waiting for its group's decode: its per-layer keys and values
    ([1, kv_heads, tokens, head_dim]; emptied when the group's batched cache takes them) and the
    greedy token after the prompt, still on the device."""

    sample: Sample
    layers: KVLayers
    first_token: torch.Tensor
    input_tokens: int
    prefill_s: float

    def cache_bytes(self, tokens: int) -> float:
        """Bytes of this sample's KV cache at `tokens` tokens (measured on its prefill cache)."""
        held = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in filter(None, self.layers))
        return held / self.input_tokens * tokens


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def stop_ids(model: PreTrainedModel, tokenizer: object) -> set[int]:
    """Token ids that end an answer: the model's generation EOS ids and the tokenizer's EOS."""
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def prompt_ids(tokenizer: object, sample: Sample) -> torch.Tensor:
    """The token ids ([1, tokens], on the CPU) the model reads for `sample`."""
    text = model_input_text(sample, tokenizer)
    templated = sample.use_chat_template and tokenizer.chat_template
    input_ids = tokenizer(text, return_tensors="pt", add_special_tokens=not templated)["input_ids"]
    if sample.keep_last_tokens is not None:
        input_ids = input_ids[:, -sample.keep_last_tokens :]
    return input_ids


def answer_text(tokenizer: object, sample: Sample, tokens: list[int]) -> str:
    """The generated tokens as the prediction text that gets scored (decoded as the sample's
    harness decodes)."""
    return decode_text(tokenizer, tokens, sample.decoding)


@torch.inference_mode()
def prefill(model: PreTrainedModel, sample: Sample, input_ids: torch.Tensor) -> Prefill:
    """One timed forward over the whole prompt (batch 1), keeping its KV cache for decoding."""
    device = model.device
    input_ids = input_ids.to(device)
    cache = DynamicCache(config=model.config)
    _sync(device)
    start = time.perf_counter()
    logits = model(input_ids=input_ids, past_key_values=cache, use_cache=True, logits_to_keep=1).logits
    first_token = logits[:, -1].argmax(-1)
    _sync(device)
    prefill_s = time.perf_counter() - start
    layers: KVLayers = [(keys, values) for keys, values, *_ in cache]
    return Prefill(sample, layers, first_token, int(input_ids.shape[1]), prefill_s)


class ReservedLayer(DynamicLayer):
    """A full-attention cache layer for a decode group: the rows' keys and values right-aligned
    (zeros on the left padding) in a buffer with room for `capacity` tokens, so each decode step
    writes its column in place where transformers' DynamicLayer copies the whole layer
    (torch.cat). keys / values are views of the filled part, as DynamicLayer's tensors are."""

    def __init__(self, rows: list[tuple[torch.Tensor, torch.Tensor]], width: int, capacity: int) -> None:
        super().__init__()
        first_keys, first_values = rows[0]
        self.lazy_initialization(first_keys, first_values)
        self.buffers = [
            first.new_zeros(len(rows), first.shape[1], capacity, first.shape[-1]) for first in (first_keys, first_values)
        ]
        for row, states in enumerate(rows):
            for buffer, tensor in zip(self.buffers, states):
                buffer[row, :, width - tensor.shape[-2] : width] = tensor[0]
        self._fill_to(width)

    def _fill_to(self, length: int) -> None:
        self.keys, self.values = (buffer[:, :, :length] for buffer in self.buffers)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
        start = self.keys.shape[-2]
        end = start + key_states.shape[-2]
        for buffer, states in zip(self.buffers, (key_states, value_states)):
            buffer[:, :, start:end] = states
        self._fill_to(end)
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        length = self.keys.shape[-2]
        self.buffers = [buffer[indices] for buffer in self.buffers]
        self._fill_to(length)


def batched_cache(model: PreTrainedModel, group: list[Prefill], width: int, capacity: int) -> DynamicCache:
    """One cache holding the group's caches as rows, each left-padded to `width` tokens (its
    tokens right-aligned, as left-padded batched generation expects), with room for `capacity`
    tokens in its full-attention layers. Each sample's own layer tensors are released as soon as
    they are copied, so the peak stays near one copy. A sliding-window layer stays transformers'
    own (padded to the full width, so that its window and mask line up with the other layers)."""
    cache = DynamicCache(config=model.config)
    for layer_idx, layer in enumerate(cache.layers):
        rows = [p.layers[layer_idx] for p in group]
        for p in group:
            p.layers[layer_idx] = None
        if layer.is_sliding:
            keys, values = (torch.cat([F.pad(t, (0, 0, width - t.shape[-2], 0)) for t in part]) for part in zip(*rows))
            cache.update(keys, values, layer_idx)
        else:
            cache.layers[layer_idx] = ReservedLayer(rows, width, capacity)
    return cache


@torch.inference_mode()
def decode_group(model: PreTrainedModel, tokenizer: object, group: list[Prefill]) -> list[Generation]:
    """Greedy-decode every prefilled sample of `group` together, each up to its own
    `max_new_tokens` or end-of-sequence token; finished rows leave the batch at once."""
    device = model.device
    stop = stop_ids(model, tokenizer)
    lengths = [p.input_tokens for p in group]
    width = max(lengths)
    padded = width > min(lengths)
    cache = batched_cache(model, group, width, width + max(p.sample.max_new_tokens for p in group))
    positions = torch.tensor(lengths, device=device)
    mask = (torch.arange(width, device=device) >= width - positions[:, None]).long() if padded else None
    tokens = torch.cat([p.first_token for p in group])
    generated: list[list[int]] = [[] for _ in group]
    forwards = [0] * len(group)
    rows = list(range(len(group)))  # the group index of each batch row

    _sync(device)
    start = time.perf_counter()
    while rows:
        still = []
        for row, (index, token) in enumerate(zip(rows, tokens.tolist())):
            budget = group[index].sample.max_new_tokens
            if budget == 0 or token in stop:
                continue
            generated[index].append(token)
            if len(generated[index]) < budget:
                still.append(row)
        if len(still) < len(rows):
            if not still:
                break
            keep = torch.tensor(still, device=device)
            for layer in cache.layers:
                layer.batch_select_indices(keep)
            tokens, positions = tokens[keep], positions[keep]
            mask = mask[keep] if mask is not None else None
            rows = [rows[row] for row in still]
        for index in rows:
            forwards[index] += 1
        if mask is not None:
            mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
        logits = model(
            input_ids=tokens[:, None], attention_mask=mask, position_ids=positions[:, None],
            past_key_values=cache, use_cache=True,
        ).logits
        tokens = logits[:, -1].argmax(-1)
        positions = positions + 1
    _sync(device)
    decode_s = time.perf_counter() - start

    total = sum(forwards)
    return [
        Generation(
            sample=p.sample,
            tokens=tokens_i,
            text=answer_text(tokenizer, p.sample, tokens_i),
            input_tokens=p.input_tokens,
            prefill_s=p.prefill_s,
            decode_s=decode_s * (n / total if total else 1 / len(group)),
            decode_batch=len(group),
        )
        for p, tokens_i, n in zip(group, generated, forwards)
    ]


class DecodeGroups:
    """Collects prefilled samples in arrival order and decodes them as a group when the group is
    full (`limits.batch_size` samples) or the next sample would push its batched cache (every row
    at the longest prompt plus the largest token budget) over `limits.cache_bytes`."""

    def __init__(self, model: PreTrainedModel, tokenizer: object, limits: DecodeLimits) -> None:
        self.model, self.tokenizer, self.limits = model, tokenizer, limits
        self.pending: list[Prefill] = []

    def _fits(self, group: list[Prefill]) -> bool:
        width = max(p.input_tokens for p in group) + max(p.sample.max_new_tokens for p in group)
        return len(group) <= self.limits.batch_size and len(group) * max(p.cache_bytes(width) for p in group) <= self.limits.cache_bytes

    def add(self, prefilled: Prefill) -> list[Generation]:
        """Queue `prefilled`; the generations of any group this completes."""
        done = self.flush() if self.pending and not self._fits([*self.pending, prefilled]) else []
        self.pending.append(prefilled)
        if len(self.pending) >= self.limits.batch_size:
            done += self.flush()
        return done

    def flush(self) -> list[Generation]:
        """Decode whatever is queued."""
        group, self.pending = self.pending, []
        return decode_group(self.model, self.tokenizer, group) if group else []


def check_prompt_lengths(samples: Iterable[Sample], inputs: Iterable[torch.Tensor], max_tokens: int) -> None:
    """ConfigError naming the first sample whose prompt is longer than the model's context."""
    for sample, ids in zip(samples, inputs):
        if ids.shape[1] > max_tokens:
            raise ConfigError(
                f"sample {sample.id} has {ids.shape[1]} tokens, over model.max_length "
                f"{max_tokens}; lower the dataset length or extend the model's context (RoPE scaling)"
            )


def generate_all(
    model: PreTrainedModel,
    tokenizer: object,
    samples: list[Sample],
    limits: DecodeLimits,
    *,
    max_input_tokens: int | None = None,
    on_prefill: Callable[[Sample], None] | None = None,
) -> Iterator[Generation]:
    """Every sample's generation, yielded group by group as each group finishes decoding.

    All prompts are tokenized (and checked against `max_input_tokens`) before the first prefill;
    `on_prefill(sample)` runs right after each sample's prefill, before the next one starts
    (where the caller reads the attention method's statistics of that prefill).
    """
    inputs = [prompt_ids(tokenizer, sample) for sample in samples]
    if max_input_tokens is not None:
        check_prompt_lengths(samples, inputs, max_input_tokens)
    groups = DecodeGroups(model, tokenizer, limits)
    for sample, ids in zip(samples, inputs):
        prefilled = prefill(model, sample, ids)
        if on_prefill is not None:
            on_prefill(sample)
        yield from groups.add(prefilled)
    yield from groups.flush()
