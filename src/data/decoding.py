"""How generated token ids become text, as each benchmark's official run decoded them.

The official LongBench and OpenCompass runs used transformers 4.x, whose fast-tokenizer `decode`
ends with `clean_up_tokenization` whenever the tokenizer's config sets
`clean_up_tokenization_spaces` (verified in the 4.45.0 source). Llama-3.1-8B-Instruct's config
set it `true` (transformers#35175; transformers#44914, 2026, proposes `false` on the Hub), Qwen2.5
and Qwen3 set `false`, and the bundled SmolLM2 has `true` (transformers' GGUF converter sets it
for tokenizers of the Llama-3 kind). The clean-up removes the space before . , ? ! and a few
English contractions, so a generated code line `if x != y:` is scored as `if x!= y:`.
transformers 5 skips it for BPE tokenizers (every model here), so `Decoding` states what a
harness did and `decode_text` does that on any transformers version:

- `PLAIN` (special tokens skipped, no clean-up): vLLM's detokenizer, behind LongBench v2's
  `pred.py` (a vLLM server) and RULER's vLLM runs; also transformers 5's decode of BPE tokenizers.
- `TRANSFORMERS4`: THUDM/LongBench `pred.py`, `tokenizer.decode(ids, skip_special_tokens=True)`
  under 4.x; also its middle truncation (`src.data.truncation`).
- `TRANSFORMERS4_WITH_SPECIAL`: OpenCompass's `HuggingFacewithChatTemplate`, `batch_decode(outputs)`
  with special tokens kept, then cut at the first stop word (the generation loop stops before the
  end-of-turn token, so there is nothing left to cut).

transformers 4.45 also cleaned up when the config lacked the key (its default was `True`);
transformers 5 reads a missing key as `False`, so such tokenizers are not cleaned up here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# transformers 4.x PreTrainedTokenizerBase.clean_up_tokenization: these replacements, in this order.
CLEAN_UP_REPLACEMENTS: tuple[tuple[str, str], ...] = (
    (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
    (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
)


@dataclass(frozen=True)
class Decoding:
    """How a harness turned generated token ids into the text it scored.

    skip_special_tokens: drop special tokens from the text.
    tokenizer_clean_up: apply transformers 4.x's `clean_up_tokenization` when the tokenizer's config
        asks for it (`tokenizer.clean_up_tokenization_spaces`), as 4.x's `decode` did.
    """

    skip_special_tokens: bool = True
    tokenizer_clean_up: bool = False


PLAIN = Decoding()
TRANSFORMERS4 = Decoding(tokenizer_clean_up=True)
TRANSFORMERS4_WITH_SPECIAL = Decoding(skip_special_tokens=False, tokenizer_clean_up=True)


def clean_up_tokenization(text: str) -> str:
    """transformers 4.x's clean-up of English tokenization artifacts (spaces before punctuation)."""
    for old, new in CLEAN_UP_REPLACEMENTS:
        text = text.replace(old, new)
    return text


def decode_text(tokenizer: Any, ids: list[int], decoding: Decoding) -> str:
    """`ids` as text, decoded the way `decoding` says, whatever transformers version is installed."""
    text = tokenizer.decode(ids, skip_special_tokens=decoding.skip_special_tokens, clean_up_tokenization_spaces=False)
    if decoding.tokenizer_clean_up and getattr(tokenizer, "clean_up_tokenization_spaces", False):
        text = clean_up_tokenization(text)
    return text
