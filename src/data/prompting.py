"""How a sample's text becomes the model's input; shared by the generation loop and by datasets
that size their prompts in tokens, so both count exactly what the model reads."""
from __future__ import annotations

from typing import Any


def wrap_prompt(prompt: str, tokenizer: Any, use_chat_template: bool, answer_prefix: str) -> str:
    """The prompt in the tokenizer's chat template (when asked and available), plus the answer prefix."""
    if use_chat_template and tokenizer.chat_template:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
    return prompt + answer_prefix
