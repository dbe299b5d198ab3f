"""RULER's texts (scripts/data/synthetic/constants.py, template.py): each task family's prompt
template, the answer prefix that follows the model turn and its generation budget, and the
model templates a prompt can be wrapped in.

RULER's "base" is the bare task text; here it means "no RULER template", the prompt then going
through the tokenizer's own chat template (what models RULER has no template for get, and what
SmolLM2 and the Qwen models get: `ruler_template` in `conf/model/*.yaml`). Every other name is
RULER's text, used instead of the chat template, e.g. "meta-llama3" for Llama-3.1 (no system block).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskText:
    """A task's prompt template, the answer prefix that follows the model turn, and its generation budget."""

    template: str
    answer_prefix: str
    tokens_to_generate: int


NIAH_TEXT = TaskText(
    "Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize it. "
    "I will quiz you about the {type_needle_v} afterwards.\n{context}\n"
    "What are all the special magic {type_needle_v} for {query} mentioned in the provided text?",
    " The special magic {type_needle_v} for {query} mentioned in the provided text are",
    128,
)
VT_TEXT = TaskText(
    "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n{context}\n"
    "Question: Find all variables that are assigned the value {query} in the text above.",
    " Answer: According to the chain(s) of variable assignment in the text above, {num_v} variables are "
    "assigned the value {query}, they are: ",
    30,
)
CWE_TEXT = TaskText(
    "Below is a numbered list of words. In these words, some appear more often than others. "
    "Memorize the ones that appear most often.\n{context}\nQuestion: What are the 10 most common words in the above list?",
    " Answer: The top 10 words that appear most often in the list are:",
    120,
)
FWE_TEXT = TaskText(
    "Read the following coded text and track the frequency of each coded word. Find the three most frequently "
    "appeared coded words. {context}\nQuestion: Do not provide any explanation. Please ignore the dots '....'. "
    "What are the three most frequently appeared words in the above coded text?",
    " Answer: According to the coded text above, the three most frequently appeared words are:",
    50,
)
QA_TEXT = TaskText(
    "Answer the question based on the given documents. Only give me the answer and do not output any other words."
    "\n\nThe following are given documents.\n\n{context}\n\n"
    "Answer the question based on the given documents. Only give me the answer and do not output any other words."
    "\n\nQuestion: {query}",
    " Answer:",
    32,
)

MODEL_TEMPLATES = {
    "base": "{task_template}",
    "meta-chat": "[INST] {task_template} [/INST]",
    "meta-llama3": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{task_template}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "vicuna-chat": "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
    "helpful, detailed, and polite answers to the user's questions. USER: {task_template} ASSISTANT:",
    "Phi3": "<|user|>\n{task_template}<|end|>\n<|assistant|>\n",
}
