"""LongBench (v1) metrics on hand-derived cases and the official scorers' quirks."""
from __future__ import annotations

import pytest

from src.data import longbench as lb
from src.data.base import Sample
from src.data.longbench_prompts import TASKS
from src.metrics import get_metric
from src.metrics import longbench as m


def _sample(metric: str, all_classes: list[str] | None = None) -> Sample:
    return Sample(id="t/0", task="t", prompt="", references=[], metric=metric, max_new_tokens=8,
                  meta={"all_classes": all_classes})


def _score(metric: str, prediction: str, references: list[str], all_classes: list[str] | None = None) -> float:
    return get_metric(metric)(prediction, references, _sample(metric, all_classes))


# ----------------------------------------------------------------------------- QA F1


def test_qa_f1_exact_match_after_normalisation() -> None:
    # lower-case, punctuation and the article "The" removed: both become "eiffel tower"
    assert _score("longbench_qa_f1", "The Eiffel Tower!", ["eiffel tower"]) == 1.0


def test_qa_f1_partial_overlap_by_hand() -> None:
    # prediction tokens [red, fox, jumped] (3), reference [red, fox, ran, away] (4), 2 shared:
    # P = 2/3, R = 2/4, F1 = 2PR / (P + R) = 4/7
    assert m.qa_f1("the red fox jumped", "a red fox ran away") == pytest.approx(4 / 7, abs=1e-12)
    assert m.qa_f1("nothing shared", "red fox") == 0.0


def test_qa_f1_takes_the_best_reference() -> None:
    # references score 0 ("London"), 4/7 (as above) and 1/2 ("red": P = 1/3, R = 1); the best is 4/7
    score = _score("longbench_qa_f1", "the red fox jumped", ["London", "a red fox ran away", "red"])
    assert score == pytest.approx(4 / 7, abs=1e-12)
    assert _score("longbench_qa_f1", "anything", []) == 0.0


def test_qa_f1_zh_uses_jieba_words() -> None:
    # jieba: 北京是中国的首都 -> [北京, 是, 中国, 的, 首都]; the reordered sentence has the same words
    assert _score("longbench_qa_f1_zh", "北京是中国的首都", ["中国的首都是北京"]) == 1.0
    # [我, 爱, 北京] vs [北京, 很大]: 1 shared, P = 1/3, R = 1/2, F1 = 0.4
    assert m.qa_f1_zh("我爱北京", "北京很大") == pytest.approx(0.4, abs=1e-12)
    # Chinese punctuation is a word of its own and is dropped after normalisation
    assert m.qa_f1_zh("北京。", "北京") == 1.0


# ----------------------------------------------------------------------------- ROUGE-L


def test_rouge_l_by_hand_on_one_sentence() -> None:
    # words: hyp [the cat sat on the mat], ref [the cat lay on the mat]; LCS "the cat on the mat"
    # has the distinct words {the, cat, on, mat} = 4; distinct words: ref 5, hyp 5
    expected = 2.0 * ((4 / 5 * 4 / 5) / (4 / 5 + 4 / 5 + 1e-8))
    assert m.rouge_l("the cat sat on the mat", "the cat lay on the mat") == pytest.approx(expected, abs=1e-15)


def test_rouge_l_is_summary_level_over_sentences() -> None:
    # sentences split on ".": hyp [a b], [c d]; ref [a c], [b d]; the union of the per-pair LCS
    # word sets is {a, b, c, d}, so recall = precision = 1 although the word order differs
    assert m.rouge_l("a b. c d", "a c. b d") == pytest.approx(2 / (2 + 1e-8), abs=1e-15)


def test_rouge_l_zh_by_hand() -> None:
    # jieba: hyp [会议 决定 推迟 上市 时间] (5 distinct), ref [会议 决定 上市 时间 推迟 到 五月] (7);
    # the LCS is 会议 决定 上市 时间 (4 words)
    p, r = 4 / 5, 4 / 7
    expected = 2.0 * ((p * r) / (p + r + 1e-8))
    assert _score("longbench_rouge_zh", "会议决定推迟上市时间", ["会议决定上市时间推迟到五月"]) == pytest.approx(
        expected, abs=1e-15
    )


def test_rouge_l_empty_prediction_scores_zero() -> None:
    assert m.rouge_l("", "a reference") == 0.0
    assert m.rouge_l("...", "a reference") == 0.0


def test_rouge_l_long_sentence_hits_the_official_recursion_limit() -> None:
    # identical single sentences of k distinct words need k + 1 nested reconstruction calls:
    # 990 words still score ~1, 991 overflow in the official scorer and score 0 (989/990 for zh)
    words = [f"w{i}" for i in range(991)]
    assert m.rouge_l(" ".join(words[:990]), " ".join(words[:990])) == pytest.approx(1.0, abs=1e-8)
    assert m.rouge_l(" ".join(words), " ".join(words)) == 0.0
    assert m.rouge_l_zh(" ".join(words[:989]), " ".join(words[:989])) == pytest.approx(1.0, abs=1e-8)
    assert m.rouge_l_zh(" ".join(words[:990]), " ".join(words[:990])) == 0.0


# ----------------------------------------------------------------------------- classification


def test_classification_exact_and_shared_matches() -> None:
    classes = ["Date", "Reason", "City"]
    assert _score("longbench_classification", "Reason", ["Reason"], classes) == 1.0
    # two class names appear and neither is a substring of the reference: 1/2 if the reference is one
    assert _score("longbench_classification", "City or Date", ["Date"], classes) == 0.5


def test_classification_removal_while_iterating_quirk() -> None:
    # matches in class order: [A, AB, ABC]; "A" is a substring of the reference "ABC" and is
    # removed, which makes the loop skip "AB"; [AB, ABC] remain, so the score is 1/2, not 1
    assert m.classification("A AB ABC", "ABC", ["A", "AB", "ABC", "X"]) == 0.5
    # with the TREC-like names: "Other" is removed, "Other number" is kept -> 1.0
    assert m.classification("Other number", "Other number", ["Other", "Other number", "Date"]) == 1.0


def test_classification_fallback_never_runs() -> None:
    # no class name in the prediction: the difflib fallback would pick "Date"; the official code scores 0
    assert _score("longbench_classification", "Dat", ["Date"], ["Date", "City"]) == 0.0


def test_classification_without_classes_is_an_error() -> None:
    with pytest.raises(ValueError, match="all_classes"):
        _score("longbench_classification", "Date", ["Date"], None)


# ----------------------------------------------------------------------------- count, retrieval, code


def test_count_is_the_share_of_right_numbers() -> None:
    # numbers [3, 4, 3]: two of three equal the reference
    assert _score("longbench_count", "There are 3 unique paragraphs, not 4 but 3", ["3"]) == pytest.approx(2 / 3)
    assert _score("longbench_count", "I do not know", ["3"]) == 0.0


def test_retrieval_paragraph_ids() -> None:
    assert _score("longbench_retrieval", "Paragraph 3", ["Paragraph 3"]) == 1.0
    # numbers [3, 13]: one of two is right
    assert _score("longbench_retrieval", "Paragraph 3 or Paragraph 13", ["Paragraph 3"]) == 0.5
    assert _score("longbench_retrieval", "The answer is Paragraph 12", ["Paragraph 3"]) == 0.0
    assert _score("longbench_retrieval_zh", "答案是段落2", ["段落2"]) == 1.0
    with pytest.raises(ValueError, match="paragraph id"):
        m.retrieval_score("3", "no id here")


def test_code_sim_skips_comment_and_fence_lines() -> None:
    prediction = "\n```python\n# add them\n// not python\nreturn a + b\nprint(x)\n"
    assert m.first_code_line(prediction) == "return a + b"
    assert _score("longbench_code_sim", prediction, ["return a + b"]) == 1.0
    # only comment lines: the compared line is empty, which fuzz.ratio scores 0
    assert _score("longbench_code_sim", "# just a comment", ["x = 1"]) == 0.0


def test_code_sim_fuzz_ratio_backends_by_hand() -> None:
    # "x = 1" vs "x = 2": 4 of 5 characters match in order, ratio 2*4/10 = 0.8 in both backends
    assert m.code_sim("x = 1", "x = 2") == 0.8
    assert m.code_sim("x = 1", "x = 2", m.indel_similarity) == 0.8
    # "aba" vs "bca": difflib matches the first "a" with the last "a" and stops (2*1/6 -> 33%),
    # the InDel ratio uses the longest common subsequence "ba" (2*2/6 -> 67%)
    assert _score("longbench_code_sim", "aba", ["bca"]) == 0.33
    assert _score("longbench_code_sim_opencompass", "aba", ["bca"]) == 0.67


def test_fuzz_ratio_edge_cases() -> None:
    assert m.fuzz_ratio("", "", m.difflib_similarity) == 100
    assert m.fuzz_ratio("", "x", m.difflib_similarity) == 0
    # 2 * 2 / 6 = 0.667 -> 66.67 -> rounds to 67
    assert m.fuzz_ratio("abc", "abd", m.difflib_similarity) == 67


def test_every_fixture_task_scores_its_own_reference() -> None:
    samples = lb.load(tokenizer=None, max_length=4096, source="fixture")
    assert {s.task for s in samples} == set(TASKS)
    for sample in samples:
        score = get_metric(sample.metric)(sample.references[0], sample.references, sample)
        assert 0.999 <= score <= 1.0, (sample.task, score)
        assert 0.0 <= get_metric(sample.metric)("zzz", sample.references, sample) < 0.5
