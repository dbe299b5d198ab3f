"""LongBench v2 as samples: official prompt, OpenCompass variant, filters, loading, summary."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from src.data import DATASETS, hub
from src.data import longbench_v2 as v2
from src.data.decoding import PLAIN, TRANSFORMERS4_WITH_SPECIAL
from src.data.longbench_prompts import V2_PROMPT_COT_ANSWER
from src.metrics import get_metric
from src.registry import ConfigError

RECORD = {
    "_id": "x1", "domain": "Single-Document QA", "sub_domain": "Literary", "difficulty": "hard", "length": "short",
    "question": "  Who wrote the letters? ", "choice_A": "Tomas ", "choice_B": " Bram", "choice_C": "Mira",
    "choice_D": "Harriet", "answer": "A", "context": "\n The letters were signed T. \n",
}


def _fixture() -> list[dict]:
    return json.loads((hub.FIXTURES / "longbench_v2" / "data.json").read_text(encoding="utf-8"))


def test_official_prompt_strips_and_fills_fields() -> None:
    expected = (
        "Please read the following text and answer the question below.\n\n<text>\nThe letters were signed T.\n"
        "</text>\n\nWhat is the correct answer to this question: Who wrote the letters?\nChoices:\n(A) Tomas\n"
        "(B) Bram\n(C) Mira\n(D) Harriet\n\n"
        'Format your response as follows: "The correct answer is (insert answer here)".'
    )
    sample = v2.to_sample(RECORD, cot=False, harness="longbench", max_length=1000)
    assert sample.prompt == expected
    assert (sample.max_new_tokens, sample.truncate_to, sample.use_chat_template) == (128, 1000, True)
    assert (sample.metric, sample.references, sample.task) == ("longbench_v2_choice", ["A"], "longbench_v2")
    assert sample.meta == {"domain": "Single-Document QA", "sub_domain": "Literary", "difficulty": "hard",
                           "length": "short", "harness": "longbench"}
    # pred.py reads the answer through a vLLM server: special tokens skipped, no 4.x clean-up
    assert sample.decoding == PLAIN


def test_placeholders_are_replaced_one_after_another() -> None:
    # pred.py replaces $DOC$ first, so a "$Q$" inside the document becomes the question too
    record = {**RECORD, "context": "see $Q$"}
    assert "<text>\nsee Who wrote the letters?\n</text>" in v2.official_prompt(v2.V2_PROMPT, record)


def test_cot_prompts() -> None:
    sample = v2.to_sample(RECORD, cot=True, harness="longbench", max_length=1000)
    assert sample.prompt.endswith("(D) Harriet\n\nLet\u2019s think step by step:")
    assert sample.prompt.startswith("Please read the following text and answer the questions below.\n\n<text>\n")
    assert (sample.max_new_tokens, sample.task) == (1024, "longbench_v2_cot")
    answer_prompt = v2.official_prompt(V2_PROMPT_COT_ANSWER, RECORD, cot_response="Tomas signed as T.")
    assert answer_prompt == (
        "Please read the following text and answer the questions below.\n\nThe text is too long and omitted here."
        "\n\nWhat is the correct answer to this question: Who wrote the letters?\nChoices:\n(A) Tomas\n(B) Bram\n"
        "(C) Mira\n(D) Harriet\n\nLet\u2019s think step by step: Tomas signed as T.\n\nBased on the above, what is "
        'the single, most likely answer choice? Format your response as follows: "The correct answer is (insert '
        'answer here)".'
    )


def test_opencompass_prompt_and_settings() -> None:
    sample = v2.to_sample(RECORD, cot=False, harness="opencompass", max_length=131072)
    assert sample.prompt == (
        "Please read the following text and answer the questions below.\n <text> \n \n The letters were signed T. \n"
        " \n </text> \n \n What is the correct answer to this question:   Who wrote the letters?  \n \n Choices: \n "
        "(A) Tomas  \n (B)  Bram \n (C) Mira \n (D) Harriet \n Let\u2019s think step by step. Based on the above, "
        "what is the single, most likely answer choice? Format your response as follows: "
        '"The correct answer is (insert answer here)'
    )
    assert (sample.max_new_tokens, sample.truncate_to) == (2048, None)
    assert sample.metric == "longbench_v2_choice_opencompass"
    assert sample.keep_last_tokens == 131072
    assert sample.decoding == TRANSFORMERS4_WITH_SPECIAL and sample.meta["harness"] == "opencompass"


def test_opencompass_fills_fields_in_the_order_of_its_dataset_rows() -> None:
    # LongBenchv2Dataset rows are {question, context, answer, choice_A..D, difficulty, length}; safe_format
    # replaces "{key}" in that order, the output column "answer" by "": a "{context}" inside the question
    # becomes the document, a "{question}" inside the document stays, and "{answer}" is blanked.
    record = {**RECORD, "question": "Is {context} signed?", "context": "A {question} {answer} {choice_A}"}
    prompt = v2.opencompass_prompt(record)
    assert "<text> \n A {question}  Tomas  \n </text>" in prompt
    assert "this question: Is A {question}  Tomas  signed? \n" in prompt


def test_fixture_covers_difficulties_and_lengths_and_filters() -> None:
    samples = v2.load(tokenizer=None, source="fixture")
    assert len(samples) == 12
    assert {(s.meta["difficulty"], s.meta["length"]) for s in samples} == {
        (d, n) for d in ("easy", "hard") for n in ("short", "medium", "long")
    }
    hard_long = v2.load(tokenizer=None, source="fixture", difficulty="hard", length="long")
    expected = [r["_id"] for r in _fixture() if (r["difficulty"], r["length"]) == ("hard", "long")]
    assert [s.id for s in hard_long] == expected and len(expected) == 2
    assert len(v2.load(tokenizer=None, source="fixture", max_samples=5)) == 5
    for sample, record in zip(samples, _fixture()):
        response = f"The correct answer is ({record['answer']})"
        assert get_metric(sample.metric)(response, sample.references, sample) == 1.0


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="difficulty 'medium'; allowed: easy, hard"):
        v2.load(tokenizer=None, source="fixture", difficulty="medium")
    with pytest.raises(ConfigError, match="length 'tiny'; allowed: short, medium, long"):
        v2.load(tokenizer=None, source="fixture", length="tiny")
    with pytest.raises(ConfigError, match="cot"):
        v2.load(tokenizer=None, source="fixture", cot=True, harness="opencompass")
    with pytest.raises(ConfigError, match="harness"):
        v2.load(tokenizer=None, source="fixture", harness="lm-eval")


def test_auto_offline_uses_the_fixture(offline) -> None:
    samples = DATASETS.build("longbench_v2", {"max_samples": 3}).load(None)
    assert [s.id for s in samples] == [r["_id"] for r in _fixture()[:3]]


def test_hub_and_local_files(monkeypatch, tmp_path: Path, online) -> None:
    data = tmp_path / "data.json"
    data.write_text(json.dumps([RECORD]), encoding="utf-8")
    monkeypatch.setattr(hub, "hf_hub_download", lambda **kw: str(data))
    assert [s.id for s in v2.load(tokenizer=None, source="hub")] == ["x1"]
    assert [s.id for s in v2.load(tokenizer=None, local_dir=str(tmp_path))] == ["x1"]
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "missing" / "data.json")):
        (tmp_path / "missing").mkdir()
        v2.load(tokenizer=None, local_dir=str(tmp_path / "missing"))


def test_summary_leaves_out_empty_outputs_under_the_official_harness_only() -> None:
    # pred.py: `if output == '': continue`, so result.py's denominators never see them; OpenCompass scores them 0
    rows = pd.DataFrame({
        "id": ["a", "b", "c", "d", "e", "f"],
        "task": "longbench_v2",
        "prediction": ["The correct answer is (A)", "", "no letter", "", " ", ""],
        "score": [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        "meta_harness": ["longbench"] * 5 + ["opencompass"],
        "meta_difficulty": ["easy", "easy", "hard", "hard", "hard", "hard"],
        "meta_length": ["short"] * 6,
    })
    summary = v2.summarize_longbench_v2(rows).set_index(["level", "name"])
    assert list(summary.columns) == ["score", "n", "dropped_empty"]
    # kept: a (1), c (0), e (a space is not empty), f (OpenCompass) -> 1/4
    assert summary.loc[("overall", "overall")].tolist() == pytest.approx([25.0, 4, 2])
    assert summary.loc[("difficulty", "easy")].tolist() == pytest.approx([100.0, 1, 1])
    assert summary.loc[("difficulty", "hard")].tolist() == pytest.approx([0.0, 3, 1])
    only_empty = v2.summarize_longbench_v2(rows.iloc[[1]]).set_index(["level", "name"]).loc[("overall", "overall")]
    assert math.isnan(only_empty.score) and (only_empty.n, only_empty.dropped_empty) == (0, 1)


def test_summary_overall_difficulty_length() -> None:
    rows = pd.DataFrame({
        "id": [f"q{k}" for k in range(5)],
        "task": "longbench_v2",
        "score": [1.0, 0.0, 1.0, 1.0, 0.0],
        "meta_difficulty": ["easy", "easy", "hard", "hard", "hard"],
        "meta_length": ["short", "short", "short", "long", "long"],
        "meta_domain": ["Code Repository Understanding"] * 2 + ["Single-Document QA"] * 3,
    })
    summary = v2.summarize_longbench_v2(rows).set_index(["level", "name"])
    assert summary.loc[("overall", "overall")].tolist() == pytest.approx([60.0, 5, 0])
    assert summary.loc[("difficulty", "easy")].tolist() == pytest.approx([50.0, 2, 0])
    assert summary.loc[("difficulty", "hard")].tolist() == pytest.approx([200 / 3, 3, 0])
    assert summary.loc[("length", "short")].tolist() == pytest.approx([200 / 3, 3, 0])
    assert summary.loc[("length", "long")].tolist() == pytest.approx([50.0, 2, 0])
    assert ("length", "medium") not in summary.index  # no medium sample ran: no row
    assert summary.loc[("domain", "Single-Document QA")].tolist() == pytest.approx([200 / 3, 3, 0])
