"""How text becomes a prompt and a prompt the model's input.

`fill_fields` fills a benchmark's template from a record the way official harnesses do
(`fill_opencompass_row` the way OpenCompass does);
`model_input_text` is the exact text the generation loop feeds the model, shared with datasets
that size their prompts in tokens and with benchmarks, so all count exactly what the model reads.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from src.data.truncation import middle_truncate

if TYPE_CHECKING:
    from src.data.base import Sample


def fill_fields(
    template: str, record: Mapping[str, Any], placeholders: Iterable[tuple[str, str]], *, strip: bool = False
) -> str:
    """`template` with each (placeholder, field) replaced by the record's field as text, one
    after another (so a field's text that contains a later placeholder is replaced too, as in
    the official harnesses); `strip` strips each field first."""
    for placeholder, name in placeholders:
        value = str(record[name])
        template = template.replace(placeholder, value.strip() if strip else value)
    return template


def fill_opencompass_row(template: str, record: Mapping[str, Any], keys: Iterable[str], output_column: str) -> str:
    """OpenCompass's prompt for one test row (`PromptTemplate.generate_item`, `safe_format`): "{key}"
    replaced by the row's value as text for each of `keys`, the row's own key order, with the
    output column's value "" (GenInferencer's `gen_field_replace_token`, so the answer never leaks)."""
    row = {**record, output_column: ""}
    return fill_fields(template, row, [(f"{{{key}}}", key) for key in keys])


def wrap_prompt(prompt: str, tokenizer: Any, use_chat_template: bool, answer_prefix: str) -> str:
    """The prompt in the tokenizer's chat template (when asked and available), plus the answer prefix."""
    if use_chat_template and tokenizer.chat_template:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
    return prompt + answer_prefix


def model_input_text(sample: Sample, tokenizer: Any) -> str:
    """The exact text fed to the model: truncated prompt, chat template if asked, answer prefix."""
    prompt = sample.prompt
    if sample.truncate_to is not None:
        prompt = middle_truncate(prompt, tokenizer, sample.truncate_to)
    return wrap_prompt(prompt, tokenizer, sample.use_chat_template, sample.answer_prefix)
