"""LongBench (v1) and LongBench-E as samples: prompts and settings per harness, loading sources, summaries."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from src.data import DATASETS, hub
from src.data import longbench as lb
from src.data.decoding import TRANSFORMERS4, TRANSFORMERS4_WITH_SPECIAL
from src.data.longbench_prompts import CATEGORIES, E_TASKS, TASKS
from src.registry import ConfigError


# ----------------------------------------------------------------------------- prompts and samples

_MULTI_DOC = (
    "Answer the question based on the given passages. Only give me the answer and do not output any other words."
)
EXPECTED = {
    # dataset2prompt.json word for word, its "asconcisely" (twice) included
    "narrativeqa": lambda c, i: (
        "You are given a story, which can be either a novel or a movie script, and a question. Answer the question "
        "asconcisely as you can, using a single phrase if possible. Do not provide any explanation.\n\nStory: "
        f"{c}\n\nNow, answer the question based on the story asconcisely as you can, using a single phrase if "
        f"possible. Do not provide any explanation.\n\nQuestion: {i}\n\nAnswer:"
    ),
    "qasper": lambda c, i: (
        "You are given a scientific article and a question. Answer the question as concisely as you can, using a "
        "single phrase or sentence if possible. If the question cannot be answered based on the information in the "
        'article, write "unanswerable". If the question is a yes/no question, answer "yes", "no", or '
        f'"unanswerable". Do not provide any explanation.\n\nArticle: {c}\n\n Answer the question based on the '
        "above article as concisely as you can, using a single phrase or sentence if possible. If the question "
        'cannot be answered based on the information in the article, write "unanswerable". If the question is a '
        f'yes/no question, answer "yes", "no", or "unanswerable". Do not provide any explanation.\n\nQuestion: {i}'
        "\n\nAnswer:"
    ),
    "multifieldqa_en": lambda c, i: (
        f"Read the following text and answer briefly.\n\n{c}\n\nNow, answer the following question based on the "
        f"above text, only give me the answer and do not output any other words.\n\nQuestion: {i}\nAnswer:"
    ),
    "multifieldqa_zh": lambda c, i: (
        f"阅读以下文字并用中文简短回答：\n\n{c}\n\n现在请基于上面的文章回答下面的问题，只告诉我答案，不要输出任何其他字词。\n\n"
        f"问题：{i}\n回答："
    ),
    "hotpotqa": lambda c, i: (
        f"{_MULTI_DOC}\n\nThe following are given passages.\n{c}\n\n{_MULTI_DOC}\n\nQuestion: {i}\nAnswer:"
    ),
    "dureader": lambda c, i: f"请基于给定的文章回答下述问题。\n\n文章：{c}\n\n请基于上述文章回答下面的问题。\n\n问题：{i}\n回答：",
    "gov_report": lambda c, i: (
        "You are given a report by a government agency. Write a one-page summary of the report.\n\nReport:\n"
        f"{c}\n\nNow, write a one-page summary of the report.\n\nSummary:"
    ),
    "qmsum": lambda c, i: (
        "You are given a meeting transcript and a query containing a question or instruction. Answer the query in "
        f"one or more sentences.\n\nTranscript:\n{c}\n\nNow, answer the query based on the above meeting transcript "
        f"in one or more sentences.\n\nQuery: {i}\nAnswer:"
    ),
    "multi_news": lambda c, i: (
        "You are given several news passages. Write a one-page summary of all news. \n\nNews:\n"
        f"{c}\n\nNow, write a one-page summary of all the news.\n\nSummary:"
    ),
    "vcsum": lambda c, i: f"下面有一段会议记录，请你阅读后，写一段总结，总结会议的内容。\n会议记录：\n{c}\n\n会议总结：",
    "trec": lambda c, i: (
        f"Please determine the type of the question below. Here are some examples of questions.\n\n{c}\n{i}"
    ),
    "triviaqa": lambda c, i: (
        "Answer the question based on the given passage. Only give me the answer and do not output any other "
        f"words. The following are some examples.\n\n{c}\n\n{i}"
    ),
    "samsum": lambda c, i: (
        f"Summarize the dialogue into a few short sentences. The following are some examples.\n\n{c}\n\n{i}"
    ),
    "lsht": lambda c, i: f"请判断给定新闻的类别，下面是一些例子。\n\n{c}\n{i}",
    "passage_count": lambda c, i: (
        "There are some paragraphs below sourced from Wikipedia. Some of them may be duplicates. Please carefully "
        "read these paragraphs and determine how many unique paragraphs there are after removing duplicates. In "
        f"other words, how many non-repeating paragraphs are there in total?\n\n{c}\n\nPlease enter the final count "
        "of unique paragraphs after removing duplicates. The output format should only contain the number, such as "
        "1, 2, 3, and so on.\n\nThe final answer is: "
    ),
    "passage_retrieval_en": lambda c, i: (
        "Here are 30 paragraphs from Wikipedia, along with an abstract. Please determine which paragraph the "
        f"abstract is from.\n\n{c}\n\nThe following is an abstract.\n\n{i}\n\nPlease enter the number of the "
        'paragraph that the abstract is from. The answer format must be like "Paragraph 1", "Paragraph 2", etc.'
        "\n\nThe answer is: "
    ),
    "passage_retrieval_zh": lambda c, i: (
        f"以下是若干段落文字，以及其中一个段落的摘要。请确定给定的摘要出自哪一段。\n\n{c}\n\n下面是一个摘要\n\n{i}\n\n"
        '请输入摘要所属段落的编号。答案格式必须是"段落1"，"段落2"等格式\n\n答案是：'
    ),
    "lcc": lambda c, i: f"Please complete the code given below. \n{c}Next line of code:\n",
    "repobench-p": lambda c, i: f"Please complete the code given below. \n{c}{i}Next line of code:\n",
}
EXPECTED["2wikimqa"] = EXPECTED["musique"] = EXPECTED["hotpotqa"]

SETTINGS = {  # task: (max new tokens, chat template, first line only, metric)
    "narrativeqa": (128, True, False, "longbench_qa_f1"),
    "qasper": (128, True, False, "longbench_qa_f1"),
    "multifieldqa_en": (64, True, False, "longbench_qa_f1"),
    "multifieldqa_zh": (64, True, False, "longbench_qa_f1_zh"),
    "hotpotqa": (32, True, False, "longbench_qa_f1"),
    "2wikimqa": (32, True, False, "longbench_qa_f1"),
    "musique": (32, True, False, "longbench_qa_f1"),
    "dureader": (128, True, False, "longbench_rouge_zh"),
    "gov_report": (512, True, False, "longbench_rouge"),
    "qmsum": (512, True, False, "longbench_rouge"),
    "multi_news": (512, True, False, "longbench_rouge"),
    "vcsum": (512, True, False, "longbench_rouge_zh"),
    "trec": (64, False, True, "longbench_classification"),
    "triviaqa": (32, False, True, "longbench_qa_f1"),
    "samsum": (128, False, True, "longbench_rouge"),
    "lsht": (64, False, True, "longbench_classification"),
    "passage_count": (32, True, False, "longbench_count"),
    "passage_retrieval_en": (32, True, False, "longbench_retrieval"),
    "passage_retrieval_zh": (32, True, False, "longbench_retrieval_zh"),
    "lcc": (64, False, False, "longbench_code_sim"),
    "repobench-p": (64, False, False, "longbench_code_sim"),
}


def _fixture_record(name: str) -> dict:
    line = (hub.FIXTURES / "longbench" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()[0]
    return json.loads(line)


@pytest.mark.parametrize("task", TASKS)
def test_prompt_and_settings_per_task(task: str) -> None:
    record = _fixture_record(task)
    sample = lb.load(tokenizer=None, tasks=[task], max_samples=1, max_length=3000, source="fixture")[0]
    assert sample.prompt == EXPECTED[task](record["context"], record["input"])
    settings = (sample.max_new_tokens, sample.use_chat_template, sample.first_line_only, sample.metric)
    assert settings == SETTINGS[task]
    assert sample.truncate_to == 3000
    assert sample.id == f"{task}/{record['_id']}" and sample.task == task
    assert sample.references == record["answers"]
    assert sample.meta["length"] == record["length"] and sample.meta["all_classes"] == record["all_classes"]


def test_opencompass_harness_differences() -> None:
    record = _fixture_record("qasper")
    official, = lb.load(tokenizer=None, tasks=["qasper"], max_samples=1, max_length=500, source="fixture")
    compass, = lb.load(tokenizer=None, tasks=["qasper"], max_samples=1, max_length=500, source="fixture",
                       harness="opencompass")
    assert compass.prompt == EXPECTED["hotpotqa"](record["context"], record["input"]) != official.prompt
    assert (compass.max_new_tokens, official.max_new_tokens) == (32, 128)
    assert compass.truncate_to is None and compass.keep_last_tokens == 500
    news = _fixture_record("multi_news")
    news_sample, = lb.load(tokenizer=None, tasks=["multi_news"], max_samples=1, max_length=500, source="fixture",
                           harness="opencompass")
    assert news_sample.prompt == EXPECTED["multi_news"](news["context"], news["input"]) + "\n"
    lcc, = lb.load(tokenizer=None, tasks=["lcc"], max_length=500, source="fixture", harness="opencompass")[:1]
    assert lcc.use_chat_template and lcc.metric == "longbench_code_sim_opencompass"
    story = _fixture_record("narrativeqa")
    narrative, = lb.load(tokenizer=None, tasks=["narrativeqa"], max_samples=1, max_length=500, source="fixture",
                         harness="opencompass")
    # OpenCompass's narrativeqa config reads "as concisely"; everything else is the official text
    assert narrative.prompt == EXPECTED["narrativeqa"](story["context"], story["input"]).replace(
        "asconcisely", "as concisely")
    assert narrative.prompt.count("as concisely") == 2 and "asconcisely" not in narrative.prompt


def test_decoding_per_harness() -> None:
    official = lb.load(tokenizer=None, max_samples=1, max_length=500, source="fixture")
    compass = lb.load(tokenizer=None, max_samples=1, max_length=500, source="fixture", harness="opencompass")
    # pred.py: decode(ids, skip_special_tokens=True); HuggingFacewithChatTemplate: batch_decode(outputs); both 4.x
    assert {s.decoding for s in official} == {TRANSFORMERS4}
    assert {s.decoding for s in compass} == {TRANSFORMERS4_WITH_SPECIAL}


def test_opencompass_fills_input_then_context_then_blanks_the_output_column() -> None:
    # LongBench*Dataset rows are {input, context, answers}; safe_format replaces "{key}" in that order and
    # GenInferencer sets the output column to "". pred.py's str.format never looks inside the values.
    record = {"context": "def f(): return f'{input}{answers}'", "input": "x = {context}"}
    assert lb.task_prompt("repobench-p", record) == (
        "Please complete the code given below. \ndef f(): return f'{input}{answers}'x = {context}Next line of code:\n"
    )
    assert lb.task_prompt("repobench-p", record, "opencompass") == (
        "Please complete the code given below. \ndef f(): return f'{input}'x = def f(): return f'{input}'"
        "Next line of code:\n"
    )
    # trec's output column is all_labels: "{answers}" in its text is left alone, "{all_labels}" blanked
    trec = {"context": "Q: {answers}? {all_labels}", "input": "{input}"}
    assert lb.task_prompt("trec", trec, "opencompass").endswith("\n\nQ: {answers}? \n{input}")


def test_longbench_e_samples_and_task_checks() -> None:
    samples = lb.load(tokenizer=None, max_length=4096, source="fixture", e=True)
    assert {s.task for s in samples} == {f"{t}_e" for t in E_TASKS}
    assert all(s.id.startswith(f"{s.task}/") for s in samples)
    with pytest.raises(ConfigError, match="allowed: qasper"):
        lb.load(tokenizer=None, tasks=["narrativeqa"], max_length=4096, source="fixture", e=True)
    with pytest.raises(ConfigError, match="unknown LongBench task.*'nq'.*allowed: narrativeqa, qasper"):
        lb.load(tokenizer=None, tasks=["nq"], max_length=4096, source="fixture")
    with pytest.raises(ConfigError, match="harness"):
        lb.load(tokenizer=None, max_length=4096, source="fixture", harness="helm")
    with pytest.raises(ConfigError, match="source"):
        lb.load(tokenizer=None, max_length=4096, source="web")
    assert len(lb.load(tokenizer=None, max_samples=1, max_length=4096, source="fixture")) == len(TASKS)


# ----------------------------------------------------------------------------- loading sources


def test_auto_offline_uses_the_fixture_and_hub_offline_is_one_clear_error(offline) -> None:
    samples = DATASETS.build("longbench", {"tasks": ["trec"], "max_length": 4096}).load(None)
    assert [s.references for s in samples] == [["Reason"], ["Country"]]
    with pytest.raises(ConfigError, match="offline .HF_HUB_OFFLINE=1. and not in the local hub cache"):
        lb.load(tokenizer=None, tasks=["trec"], max_length=4096, source="hub", hub_id="nobody/not-cached")


def test_hub_zip_is_extracted_once_and_read(monkeypatch, tmp_path: Path, online) -> None:
    record = {**_fixture_record("trec"), "answers": ["Date"]}
    archive = tmp_path / "snapshot" / "data.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("data/trec.jsonl", json.dumps(record) + "\n")
    calls = []
    monkeypatch.setattr(hub, "hf_hub_download", lambda **kw: calls.append(kw) or str(archive))
    for _ in range(2):
        sample, = lb.load(tokenizer=None, tasks=["trec"], max_length=4096, source="hub", hub_id="me/LongBench")
        assert sample.references == ["Date"]
    assert calls[0] == {"repo_id": "me/LongBench", "filename": "data.zip", "repo_type": "dataset", "local_files_only": False}
    assert (archive.parent / "data.zip.extracted" / "data" / "trec.jsonl").is_file()


def test_local_directory_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "lcc.jsonl").write_text(json.dumps(_fixture_record("lcc")) + "\n", encoding="utf-8")
    sample, = lb.load(tokenizer=None, tasks=["lcc"], max_length=4096, local_dir=str(tmp_path))
    assert sample.references == _fixture_record("lcc")["answers"]
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "trec.jsonl")):
        lb.load(tokenizer=None, tasks=["trec"], max_length=4096, local_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="local_dir"):
        lb.load(tokenizer=None, tasks=["trec"], max_length=4096, source="local")


# ----------------------------------------------------------------------------- summaries


def _rows(scores: dict[str, list[float]], lengths: dict[str, list[int]] | None = None) -> pd.DataFrame:
    rows = []
    for task, values in scores.items():
        for k, value in enumerate(values):
            length = (lengths or {}).get(task, [1000] * len(values))[k]
            rows.append({"id": f"{task}/{k}", "task": task, "score": value, "meta_length": length})
    return pd.DataFrame(rows)


def _value(summary: pd.DataFrame, level: str, name: str, bucket: str = "all") -> tuple[float, int]:
    row = summary[(summary.level == level) & (summary.name == name) & (summary.length_bucket == bucket)]
    assert len(row) == 1, (level, name, bucket)
    return float(row.score.iloc[0]), int(row.n.iloc[0])


def test_summary_categories_average_and_missing() -> None:
    summary = lb.summarize_longbench(_rows({
        "narrativeqa": [0.2, 0.4],  # 30
        "qasper": [0.5],  # 50
        "hotpotqa": [1.0, 0.0, 0.5],  # 50
        "trec": [0.1],  # 10
        "lsht": [0.3],  # 30
        "passage_count": [1.0],  # 100
    }))
    assert list(summary.columns) == ["level", "name", "length_bucket", "score", "n"]
    assert _value(summary, "task", "narrativeqa") == pytest.approx((30.0, 2))
    assert _value(summary, "task", "hotpotqa") == pytest.approx((50.0, 3))
    assert _value(summary, "category", "Single-Doc QA") == pytest.approx((40.0, 2))
    assert _value(summary, "category", "Multi-Doc QA") == pytest.approx((50.0, 1))
    assert _value(summary, "category", "Few-shot") == pytest.approx((20.0, 2))
    assert _value(summary, "category", "Synthetic") == pytest.approx((100.0, 1))
    assert _value(summary, "average", "average") == pytest.approx(((40 + 50 + 20 + 100) / 4, 4))
    # categories none of whose tasks ran (Summarization, Code) have no row
    ran = [category.name for category in CATEGORIES if category.name not in ("Summarization", "Code")]
    assert list(summary[summary.level == "category"].name) == ran


def test_summary_longbench_e_length_buckets() -> None:
    summary = lb.summarize_longbench(_rows(
        {"qasper_e": [1.0, 0.0, 0.5, 0.25], "lcc_e": [0.2, 0.6]},
        {"qasper_e": [3999, 4000, 7999, 12000], "lcc_e": [100, 9000]},
    ))
    assert _value(summary, "task", "qasper_e") == pytest.approx((43.75, 4))
    assert _value(summary, "task", "qasper_e", "0-4k") == pytest.approx((100.0, 1))
    assert _value(summary, "task", "qasper_e", "4-8k") == pytest.approx((25.0, 2))
    assert _value(summary, "task", "qasper_e", "8k+") == pytest.approx((25.0, 1))
    assert _value(summary, "task", "lcc_e", "0-4k") == pytest.approx((20.0, 1))
    assert _value(summary, "category", "Code", "8k+") == pytest.approx((60.0, 1))
    # 0-4k: Single-Doc QA 100, Code 20 -> 60 over two categories
    assert _value(summary, "average", "average", "0-4k") == pytest.approx((60.0, 2))
    assert [lb.length_bucket(x) for x in (0, 3999, 4000, 7999, 8000)] == ["0-4k", "0-4k", "4-8k", "4-8k", "8k+"]
