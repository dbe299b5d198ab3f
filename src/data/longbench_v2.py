"""LongBench v2 (503 four-choice questions, THUDM/LongBench-v2 data.json) as samples.

harness="longbench" follows LongBench v2's `pred.py`:
- prompt: `prompts/0shot.txt` with $DOC$, $Q$, $C_A$..$C_D$ replaced (in that order) by the
  stripped fields; 128 new tokens; the chat template is applied (pred.py queries a chat API);
- truncation: the prompt is cut in the middle to `max_length` tokens (`Sample.truncate_to`, done
  by the loop with `src.data.truncation.middle_truncate`; pred.py uses 120000 for 128K models);
- decoding: as vLLM's server returned it (special tokens skipped, no clean-up, `PLAIN` in
  `src.data.decoding`); the middle truncation decodes with pred.py's transformers 4.45 tokenizer;
- scoring: the letter from "The correct answer is (X)" or "The correct answer is X"
  (metric `longbench_v2_choice`). pred.py writes no result for an empty output (`if output ==
  '': continue`) and result.py divides by the results written, so the summary leaves samples
  with an empty prediction out of every score and n and counts them in `dropped_empty`.
  pred.py samples at temperature 0.1; the loop decodes greedily.
- `cot=True`: pred.py's chain of thought takes two generations (the `0shot_cot.txt` prompt with
  1024 new tokens, then `0shot_cot_ans.txt` holding that reasoning, 128 new tokens). One Sample
  holds one generation, so here cot is a single pass: the first-step prompt with 1024 new tokens,
  scored by the same answer extraction on the reasoning itself. Models that end their reasoning
  with "The correct answer is (X)" score as in pred.py; others score lower than it would.

harness="opencompass" follows OpenCompass's `longbenchv2_gen` (what the PBS-Attn paper ran):
its own one-turn chain-of-thought prompt filled by successive "{field}" replacement (no strip),
2048 new tokens (the paper's model `max_out_len`), decoding as its `HuggingFacewithChatTemplate`
(`TRANSFORMERS4_WITH_SPECIAL`), the letter read by OpenCompass's `first_option_postprocess`
(metric `longbench_v2_choice_opencompass`; an empty output scores 0), and no middle truncation:
OpenCompass keeps the last `max_seq_len` tokens of the chat-templated prompt
(`Sample.keep_last_tokens`, see `src.data.longbench`). `cot` does not apply to it.

Filters: `difficulty` (easy|hard) and `length` (short|medium|long); then the first `max_samples`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from src.data import hub
from src.data.base import Sample, register_dataset
from src.data.decoding import PLAIN, TRANSFORMERS4_WITH_SPECIAL
from src.data.longbench import HARNESSES
from src.data.longbench_prompts import (
    V2_COT_MAX_NEW_TOKENS,
    V2_MAX_NEW_TOKENS,
    V2_OPENCOMPASS_FIELDS,
    V2_OPENCOMPASS_MAX_NEW_TOKENS,
    V2_OPENCOMPASS_OUTPUT_COLUMN,
    V2_OPENCOMPASS_PROMPT,
    V2_PROMPT,
    V2_PROMPT_COT,
)
from src.data.prompting import fill_fields, fill_opencompass_row
from src.registry import ConfigError

DIFFICULTIES = ("easy", "hard")
LENGTHS = ("short", "medium", "long")
_PLACEHOLDERS = (
    ("$DOC$", "context"), ("$Q$", "question"),
    ("$C_A$", "choice_A"), ("$C_B$", "choice_B"), ("$C_C$", "choice_C"), ("$C_D$", "choice_D"),
)


def official_prompt(template: str, record: dict[str, Any], cot_response: str | None = None) -> str:
    """A LongBench v2 template filled as pred.py does: stripped fields, replaced one after another.

    `cot_response` fills $COT$ of the second chain-of-thought step (`V2_PROMPT_COT_ANSWER`).
    """
    prompt = fill_fields(template, record, _PLACEHOLDERS, strip=True)
    if cot_response is not None:
        prompt = prompt.replace("$COT$", cot_response)
    return prompt


def opencompass_prompt(record: dict[str, Any]) -> str:
    """OpenCompass's LongBench v2 prompt: each "{field}" replaced in the order of its dataset's rows."""
    return fill_opencompass_row(V2_OPENCOMPASS_PROMPT, record, V2_OPENCOMPASS_FIELDS, V2_OPENCOMPASS_OUTPUT_COLUMN)


def to_sample(record: dict[str, Any], *, cot: bool, harness: str, max_length: int) -> Sample:
    """One LongBench v2 item as a Sample under the given harness."""
    official = harness == "longbench"
    meta: dict[str, Any] = {key: record[key] for key in ("domain", "sub_domain", "difficulty", "length")}
    meta["harness"] = harness
    if official:
        prompt = official_prompt(V2_PROMPT_COT if cot else V2_PROMPT, record)
        max_new_tokens = V2_COT_MAX_NEW_TOKENS if cot else V2_MAX_NEW_TOKENS
    else:
        prompt = opencompass_prompt(record)
        max_new_tokens = V2_OPENCOMPASS_MAX_NEW_TOKENS
    return Sample(
        id=record["_id"],
        task="longbench_v2_cot" if cot else "longbench_v2",
        prompt=prompt,
        references=[record["answer"]],
        metric="longbench_v2_choice" if official else "longbench_v2_choice_opencompass",
        max_new_tokens=max_new_tokens,
        use_chat_template=True,
        truncate_to=max_length if official else None,
        keep_last_tokens=None if official else max_length,
        decoding=PLAIN if official else TRANSFORMERS4_WITH_SPECIAL,
        meta=meta,
    )


def _check_choice(kind: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise ConfigError(f"unknown LongBench v2 {kind} {value!r}; allowed: {', '.join(allowed)}")


def _local_file(local_dir: Path) -> Path:
    return local_dir / "data.json" if local_dir.is_dir() else local_dir


SUMMARY_COLUMNS = ["level", "name", "score", "n", "dropped_empty"]


def dropped_by_pred_py(rows: pd.DataFrame) -> pd.Series:
    """Rows official pred.py writes no result for: an empty prediction under harness "longbench".

    Rows without `meta_harness` (runs made before it was recorded) are all kept.
    """
    if "meta_harness" not in rows or "prediction" not in rows:
        return pd.Series(False, index=rows.index)
    return (rows["meta_harness"] == "longbench") & (rows["prediction"] == "")


def _summary_row(level: str, name: str, rows: pd.DataFrame, in_group: pd.Series, dropped: pd.Series) -> dict[str, Any]:
    scores = rows.loc[in_group & ~dropped, "score"]
    return {"level": level, "name": name, "score": 100 * scores.mean() if len(scores) else math.nan,
            "n": len(scores), "dropped_empty": int((in_group & dropped).sum())}


def summarize_longbench_v2(rows: pd.DataFrame) -> pd.DataFrame:
    """Accuracy x100 overall, by difficulty (easy, hard) and by length (short, medium, long).

    Needs columns `score`, `meta_difficulty` and `meta_length`; also reports each `meta_domain`
    present. Columns out: level (overall|difficulty|length|domain), name, score, n, dropped_empty:
    the group's samples left out of score and n because official pred.py drops them
    (`dropped_by_pred_py`). A group none of whose samples ran has no row; one whose samples were
    all dropped has score NaN and n 0.
    """
    dropped = dropped_by_pred_py(rows)
    table = [_summary_row("overall", "overall", rows, pd.Series(True, index=rows.index), dropped)]
    groups = [("difficulty", "meta_difficulty", DIFFICULTIES), ("length", "meta_length", LENGTHS)]
    if "meta_domain" in rows:
        groups.append(("domain", "meta_domain", tuple(sorted(rows["meta_domain"].dropna().unique()))))
    for level, column, names in groups:
        table += [_summary_row(level, name, rows, rows[column] == name, dropped) for name in names if (rows[column] == name).any()]
    return pd.DataFrame(table, columns=SUMMARY_COLUMNS)


@register_dataset("longbench_v2", summarize=summarize_longbench_v2)
def load(
    *,
    tokenizer: Any,
    max_samples: int | None = None,
    max_length: int = 128000,
    source: str = "auto",
    local_dir: str | None = None,
    cot: bool = False,
    hub_id: str = "THUDM/LongBench-v2",
    difficulty: str | None = None,
    length: str | None = None,
    harness: str = "longbench",
) -> list[Sample]:
    """LongBench v2 samples after the difficulty/length filters, the first `max_samples` of them.

    `tokenizer` is not needed here: truncation to `max_length` happens in the generation loop.
    Sources: hub (`hub_id`'s data.json), local (`local_dir/data.json` or a file path), fixture, auto.
    """
    if harness not in HARNESSES:
        raise ConfigError(f"unknown LongBench v2 harness {harness!r}; allowed: {', '.join(HARNESSES)}")
    if cot and harness != "longbench":
        raise ConfigError(f"LongBench v2 cot=true needs harness 'longbench', got {harness!r} (its prompt is CoT)")
    if max_length < 2:
        raise ConfigError(f"LongBench v2 max_length must be >= 2 tokens, got {max_length}")
    if max_samples is not None and max_samples < 1:
        raise ConfigError(f"LongBench v2 max_samples must be a positive integer or null, got {max_samples}")
    _check_choice("difficulty", difficulty, DIFFICULTIES)
    _check_choice("length", length, LENGTHS)
    data_file = hub.load_from_source(
        benchmark="LongBench v2",
        source=source,
        local_dir=local_dir,
        from_local=_local_file,
        from_hub=lambda: hub.hub_file(hub_id, "data.json"),
        from_fixture=lambda: hub.FIXTURES / "longbench_v2" / "data.json",
    )
    records = [
        record
        for record in hub.read_records(data_file)
        if difficulty in (None, record["difficulty"]) and length in (None, record["length"])
    ]
    return [to_sample(record, cot=cot, harness=harness, max_length=max_length) for record in records[:max_samples]]
