"""Offline RULER: lengths, needle depths, answers re-derived from the prompts, determinism, errors."""
from __future__ import annotations

import json
import logging
import math
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from src.configs import compose_config
from src.data import DATASETS
from src.data.base import TokenCounter
from src.data.prompting import model_input_text
from src.data.ruler import load
from src.data.ruler.haystack import largest_fitting_size, split_sentences
from src.data.ruler.loader import InputMeter
from src.data.ruler.niah import NIAH_CONFIGS
from src.data.ruler.task import Context
from src.data.ruler.templates import CWE_TEXT, MODEL_TEMPLATES
from src.data.ruler.words import CommonWords, riemann_zeta
from src.registry import ConfigError

SYNTHETIC = [*NIAH_CONFIGS, "vt", "cwe", "fwe"]
TOKENS_TO_GENERATE = {"vt": 30, "cwe": 120, "fwe": 50, **{name: 128 for name in NIAH_CONFIGS}}


def model_tokens(sample: Any, tokenizer: Any) -> int:
    """Tokens of the exact text the generation loop feeds the model."""
    return len(tokenizer(model_input_text(sample, tokenizer), add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize("length", [1024, 4096])
@pytest.mark.parametrize("task", ["niah_single_1", "niah_multivalue", "vt", "cwe", "fwe"])
def test_prompt_plus_generation_fills_the_length_within_3_percent(tokenizer: Any, task: str, length: int) -> None:
    samples = load(tokenizer=tokenizer, tasks=[task], length=length, num_samples=2)
    assert len(samples) == 2
    for sample in samples:
        tokens = model_tokens(sample, tokenizer)
        assert sample.meta["length"] == tokens
        assert 0.97 * length <= tokens + sample.max_new_tokens <= length


def test_registered_loader_is_this_module(tokenizer: Any) -> None:
    ruler = DATASETS.build("ruler", {"tasks": ["niah_single_1"], "length": 1024, "num_samples": 1})
    samples = ruler.load(tokenizer)
    assert samples[0].task == "niah_single_1" and samples[0].metric == "ruler_string_match_all"


def test_noise_needle_sits_at_the_requested_depth(tokenizer: Any) -> None:
    depths = [0, 25, 50, 75, 100]
    samples = load(tokenizer=tokenizer, tasks=["niah_single_1"], length=4096, num_samples=5, depth_percent=depths)
    for sample, depth in zip(samples, depths):
        context = sample.prompt[sample.prompt.index("\n") + 1 : sample.prompt.rindex("\n")]
        position = context.index("One of the special magic numbers")
        assert abs(100 * position / len(context) - depth) <= 2
        assert abs(sample.meta["depth"][0] - depth) <= 1


def test_essay_needle_sits_at_the_requested_depth_and_essay_file_is_used(tokenizer: Any, tmp_path: Path) -> None:
    rng = random.Random(3)
    sentences = [f"Sentence {i} mentions {rng.choice(['rivers', 'hills', 'roads'])} and weather." for i in range(400)]
    essay = tmp_path / "essays.json"
    essay.write_text(json.dumps({"text": " ".join(sentences)}))
    samples = load(tokenizer=tokenizer, tasks=["niah_single_2"], length=4096, num_samples=3,
                   depth_percent=[20, 60], essay_path=str(essay))
    for sample, depth in zip(samples, [20, 60, 20]):
        context = sample.prompt[sample.prompt.index("\n") + 1 : sample.prompt.rindex("\n")]
        assert context.startswith("Sentence 0 mentions")
        assert abs(100 * context.index("One of the special magic") / len(context) - depth) <= 3
        assert sample.meta["haystack"] == "essays.json"


def test_missing_essay_is_replaced_by_our_prose_and_said_so(tokenizer: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        sample = load(tokenizer=tokenizer, tasks=["niah_single_3"], length=1024, num_samples=1)[0]
    assert "no essay_path given" in caplog.text
    assert sample.meta["haystack"] == "substitute"
    assert "Most of the useful things I have learned" in sample.prompt


def test_same_seed_same_samples_other_seed_other_samples(tokenizer: Any) -> None:
    tasks = ["niah_multikey_2", "vt", "cwe", "fwe"]
    first = load(tokenizer=tokenizer, tasks=tasks, length=1024, num_samples=2, seed=7)
    again = load(tokenizer=tokenizer, tasks=tasks, length=1024, num_samples=2, seed=7)
    other = load(tokenizer=tokenizer, tasks=tasks, length=1024, num_samples=2, seed=8)
    assert [(s.id, s.prompt, s.answer_prefix, s.references) for s in first] == [
        (s.id, s.prompt, s.answer_prefix, s.references) for s in again
    ]
    assert all(a.references != b.references for a, b in zip(first, other))
    assert len({tuple(s.references) for s in first}) == len(first)  # samples differ from each other


def _niah_answers(sample: Any) -> list[str]:
    """Values of the queried keys, read back from the needles in the prompt."""
    question = sample.prompt[sample.prompt.rindex("\n") + 1 :]
    keys = re.search(r"special magic \w+ for (.+) mentioned in", question).group(1)
    keys = [k.strip() for k in re.split(r", and |, ", keys)]
    kind = "uuids" if "uuid" in question else "numbers"
    return [
        value for key in keys
        for value in re.findall(rf"One of the special magic {kind} for {re.escape(key)} is: ([\w-]+)\.", sample.prompt)
    ]


def _vt_answers(sample: Any) -> list[str]:
    """Variables bound to the queried value, by following the assignments of the question part."""
    question = sample.prompt[sample.prompt.rindex("Memorize and track") :]
    value = re.search(r"assigned the value (\d+) in the text above", question).group(1)
    bound = re.findall(rf"VAR (\w+) = {value}\b", question)
    edges = re.findall(r"VAR (\w+) = VAR (\w+)", question)
    while grown := [a for a, b in edges if b in bound and a not in bound]:
        bound += grown
    return bound


def _cwe_answers(sample: Any) -> list[str]:
    """The 10 most frequent words of the last numbered list."""
    listing = sample.prompt[sample.prompt.rindex("Memorize the ones that appear most often.\n") :].split("\n")[1]
    counts = Counter(re.findall(r"\d+\. (\S+)", listing))
    assert counts.most_common(10)[-1][1] > counts.most_common(11)[-1][1]  # a strict top 10
    return [word for word, _ in counts.most_common(10)]


def _fwe_answers(sample: Any) -> list[str]:
    """The three most frequent coded words, dots excluded."""
    text = sample.prompt[: sample.prompt.rindex("\nQuestion:")].split("coded words. ", 1)[1]
    counts = Counter(w for w in text.split() if w != "...")
    return [word for word, _ in counts.most_common(3)]


ANSWERS = {"vt": _vt_answers, "cwe": _cwe_answers, "fwe": _fwe_answers, **{n: _niah_answers for n in NIAH_CONFIGS}}


def test_every_synthetic_task_builds_at_1024_with_answers_rederived_from_its_prompt(tokenizer: Any) -> None:
    samples = load(tokenizer=tokenizer, tasks=SYNTHETIC, length=1024, num_samples=1)
    assert [s.task for s in samples] == SYNTHETIC
    for sample in samples:
        assert sample.max_new_tokens == TOKENS_TO_GENERATE[sample.task]
        assert sample.metric == "ruler_string_match_all" and sample.use_chat_template
        assert sample.meta["length"] + sample.max_new_tokens <= 1024
        assert sorted(ANSWERS[sample.task](sample)) == sorted(sample.references), sample.task
    by_task = {s.task: s for s in samples}
    assert len(by_task["niah_multivalue"].references) == 4 and len(by_task["niah_multiquery"].references) == 4
    assert by_task["niah_single_1"].answer_prefix.endswith("mentioned in the provided text is")
    assert by_task["niah_multiquery"].answer_prefix.endswith("mentioned in the provided text are")
    assert re.fullmatch(r"[0-9a-f-]{36}", by_task["niah_single_3"].references[0])
    assert by_task["vt"].answer_prefix.startswith(" Answer: According to the chain(s) of variable assignment")
    assert by_task["vt"].prompt.count("Memorize and track") == 2  # one solved example, then the question
    assert by_task["cwe"].answer_prefix == " Answer: The top 10 words that appear most often in the list are:"


def _squad(path: Path) -> list[str]:
    rng = random.Random(0)
    words = ["harbor", "lantern", "meadow", "copper", "violin", "glacier", "orchard", "falcon"]
    paragraphs = []
    for i in range(40):
        text = " ".join(f"The {rng.choice(words)} of town {i} is {rng.choice(words)}." for _ in range(8))
        qas = [{"question": f"What is the code of town {i}?", "answers": [{"text": f"code-{i}"}], "is_impossible": False}]
        paragraphs.append({"context": f"{text} The code of town {i} is code-{i}.", "qas": qas})
    path.write_text(json.dumps({"data": [{"paragraphs": paragraphs[:20]}, {"paragraphs": paragraphs[20:]}]}))
    return [p["context"] for p in paragraphs]


def test_qa_1_hides_the_gold_paragraph_among_others(tokenizer: Any, tmp_path: Path) -> None:
    contexts = _squad(tmp_path / "squad.json")
    samples = load(tokenizer=tokenizer, tasks=["qa_1"], length=1024, num_samples=3, squad_path=str(tmp_path / "squad.json"))
    for sample in samples:
        town = int(re.search(r"code of town (\d+)\?", sample.prompt).group(1))
        assert sample.references == [f"code-{town}"]
        assert contexts[town] in sample.prompt
        assert sample.prompt.count("Document ") >= 3
        assert sample.metric == "ruler_string_match_part" and sample.max_new_tokens == 32
        assert 0.9 * 1024 <= sample.meta["length"] + 32 <= 1024


def test_qa_2_hides_both_hotpotqa_supporting_documents(tokenizer: Any, tmp_path: Path) -> None:
    items = [
        {
            "question": f"Which river flows past bridge {i}?",
            "answer": f"river-{i}",
            "context": [[f"Bridge {i}", [f"Bridge {i} spans a valley. ", f"It crosses river-{i}."]],
                        [f"Valley {i}", [f"Valley {i} is wide and green. " * 3]]],
        }
        for i in range(30)
    ]
    (tmp_path / "hotpot.json").write_text(json.dumps(items))
    sample = load(tokenizer=tokenizer, tasks=["qa_2"], length=1024, num_samples=1,
                  hotpotqa_path=str(tmp_path / "hotpot.json"))[0]
    assert sample.references == ["river-0"] and "Question: Which river flows past bridge 0?" in sample.prompt
    assert "Bridge 0\nBridge 0 spans a valley. It crosses river-0." in sample.prompt
    assert "Valley 0\nValley 0 is wide and green." in sample.prompt
    assert sample.prompt.count("Document ") > 2


def test_qa_without_its_file_is_skipped_with_a_message(tokenizer: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        samples = load(tokenizer=tokenizer, tasks=["qa_2", "niah_single_1"], length=1024, num_samples=1)
    assert [s.task for s in samples] == ["niah_single_1"]
    assert "skipping qa_2" in caplog.text and "hotpotqa_path" in caplog.text


def test_unknown_task_lists_the_valid_ones(tokenizer: Any) -> None:
    with pytest.raises(ConfigError, match=r"not_a_task.*allowed: niah_single_1.*qa_2"):
        load(tokenizer=tokenizer, tasks=["niah_single_1", "not_a_task"], length=1024, num_samples=1)


@pytest.mark.parametrize("task", ["niah_single_1", "vt", "cwe"])
def test_too_short_length_is_a_clear_error(tokenizer: Any, task: str) -> None:
    with pytest.raises(ValueError, match=rf"length 200 is too small for RULER task {task}"):
        load(tokenizer=tokenizer, tasks=[task], length=200, num_samples=1)


def test_search_finds_the_largest_fitting_size_like_brute_force() -> None:
    rng = random.Random(11)
    for _ in range(30):
        steps = [rng.randint(1, 60) for _ in range(3000)]
        totals = [rng.randint(0, 500)]
        for step in steps:
            totals.append(totals[-1] + step)
        low, budget = rng.randint(0, 20), rng.randint(600, totals[-1] - 1)
        expected = max(n for n in range(len(totals)) if totals[n] <= budget)
        calls: list[int] = []
        found = largest_fitting_size(lambda n: calls.append(n) or totals[n], budget, low, rng.randint(low, 2000))
        if totals[low] > budget:
            assert found is None
        else:
            assert found == (expected, totals[expected]) and len(calls) <= 40


def test_zeta_and_sentence_split() -> None:
    assert riemann_zeta(2.0) == pytest.approx(math.pi**2 / 6, abs=1e-9)
    assert riemann_zeta(3.0) == pytest.approx(1.2020569031595942, abs=1e-9)
    assert split_sentences("It rained. Then? 3 dogs ran! ok. Fine") == ["It rained.", "Then?", "3 dogs ran! ok.", "Fine"]


def _ruler_cwe_input(model_template: str, shot_context: str, shot_answer: str, context: str) -> tuple[str, str]:
    """RULER's cwe input and answer prefix, as prepare.py and common_words_extraction.py build them."""
    template = MODEL_TEMPLATES[model_template].format(task_template=CWE_TEXT.template) + CWE_TEXT.answer_prefix
    few_shot = template.format(context=shot_context) + " " + shot_answer
    text = few_shot + "\n" + template.format(context=context)
    cut = text.rfind(CWE_TEXT.answer_prefix[:10])
    return text[:cut], text[cut:]


@pytest.mark.parametrize("model_template", ["base", "meta-llama3", "meta-chat"])
def test_cwe_wraps_its_solved_example_in_the_model_template_as_ruler_does(tokenizer: Any, model_template: str) -> None:
    draft = CommonWords("cwe", Context(seed=42, length=4096, counter=TokenCounter(tokenizer))).draft(60, 0)
    (shot_question, shot_answer), = draft.examples
    shot_context, context = (re.search(r"most often\.\n(.*)\nQuestion:", text, re.S).group(1)
                             for text in (shot_question, draft.body))
    numbered = shot_answer.removeprefix(CWE_TEXT.answer_prefix + " ")
    expected_input, expected_prefix = _ruler_cwe_input(model_template, shot_context, numbered, context)
    assert InputMeter(tokenizer, model_template).prompt(draft) == expected_input
    assert draft.answer_prefix == expected_prefix


def test_a_non_base_template_replaces_the_chat_template_and_repeats_around_the_cwe_example(tokenizer: Any) -> None:
    cwe, niah = load(tokenizer=tokenizer, tasks=["cwe", "niah_single_1"], length=1024, num_samples=1,
                     template="meta-llama3")
    header = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
    turn_end = "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    assert not cwe.use_chat_template and not niah.use_chat_template
    assert niah.prompt.startswith(header + "A special magic number is hidden") and niah.prompt.endswith(turn_end)
    assert niah.prompt.count(header) == 1
    # the solved example is a turn of its own, its answer after the assistant header, then the question's turn
    assert cwe.prompt.startswith(header + "Below is a numbered list of words.") and cwe.prompt.endswith(turn_end)
    assert cwe.prompt.count(header) == 2 and cwe.prompt.count(turn_end) == 2
    assert f"{turn_end} Answer: The top 10 words that appear most often in the list are: 1. " in cwe.prompt
    assert f"\n{header}Below is a numbered list of words." in cwe.prompt


def test_model_configs_pick_rulers_template_for_their_family() -> None:
    picked = {model: compose_config({"model": model}).dataset.template
              for model in ("llama3.1-8b", "qwen2.5-7b-1m", "qwen3-8b", "smollm2", "smollm2_rope4x", "tiny_llama")}
    # RULER's config_models.sh: llama3.1-8b-chat -> meta-llama3; it has no Qwen or SmolLM template
    assert picked == {"llama3.1-8b": "meta-llama3", "qwen2.5-7b-1m": "base", "qwen3-8b": "base", "smollm2": "base",
                      "smollm2_rope4x": "base", "tiny_llama": "base"}
    assert compose_config({"model": "llama3.1-8b"}, ["dataset.template=base"]).dataset.template == "base"
