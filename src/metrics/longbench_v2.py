"""LongBench v2 per-sample metrics: the four-choice answer letter, read as the official scorers read it.

Official (LongBench v2's `pred.py`, metric `longbench_v2_choice`): the letter is read from "The
correct answer is (X)" or, failing that, "The correct answer is X" after removing "*"; no match
scores 0. OpenCompass's LongBench v2 config instead reads the letter with its
`first_option_postprocess` (a cascade of Chinese and English answer patterns, then any option
letter): `longbench_v2_choice_opencompass`.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from src.metrics.registry import register_metric

if TYPE_CHECKING:
    from src.data.base import Sample


def extract_choice(response: str) -> str | None:
    """LongBench v2's answer letter: '(X)' after 'The correct answer is', else a bare letter."""
    response = response.replace("*", "")
    match = re.search(r"The correct answer is \(([A-D])\)", response) or re.search(
        r"The correct answer is ([A-D])", response
    )
    return match.group(1) if match else None


def _option_patterns(options: str) -> list[str]:
    """OpenCompass first_option_postprocess patterns, in its order (main branch, 2025).

    The missing comma after the '故选' pattern in OpenCompass fuses it with the next one; kept.
    """
    o = options
    return [
        rf"答案是?\s*([{o}])", rf"答案是?\s*：\s*([{o}])", rf"答案是?\s*:\s*([{o}])",
        rf"答案选项应?该?是\s*([{o}])", rf"答案选项应?该?为\s*([{o}])", rf"答案应该?是\s*([{o}])",
        rf"答案应该?选\s*([{o}])", rf"答案选项为?\s*：\s*([{o}])",
        rf"答案选项为?\s+\(?\*?\*?([{o}])\*?\*?\)?", rf"答案选项是?\s*:\s*([{o}])",
        rf"答案为\s*([{o}])", rf"答案选\s*([{o}])", rf"选择?\s*([{o}])",
        rf"故选?\s*([{o}])" rf"只有选?项?\s?([{o}])\s?是?对",
        rf"只有选?项?\s?([{o}])\s?是?错", rf"只有选?项?\s?([{o}])\s?不?正确",
        rf"只有选?项?\s?([{o}])\s?错误", rf"说法不?对选?项?的?是\s?([{o}])",
        rf"说法不?正确选?项?的?是\s?([{o}])", rf"说法错误选?项?的?是\s?([{o}])",
        rf"([{o}])\s?是正确的", rf"([{o}])\s?是正确答案", rf"选项\s?([{o}])\s?正确",
        rf"所以答\s?([{o}])", rf"所以\s?([{o}][.。$]?$)", rf"所有\s?([{o}][.。$]?$)",
        rf"[\s，：:,]([{o}])[。，,\.]?$", rf"[\s，,：:][故即]([{o}])[。\.]?$",
        rf"[\s，,：:]因此([{o}])[。\.]?$", rf"[是为。]\s?([{o}])[。\.]?$",
        rf"因此\s?([{o}])[。\.]?$", rf"显然\s?([{o}])[。\.]?$",
        r"答案是\s?(\S+)(?:。|$)", r"答案应该是\s?(\S+)(?:。|$)", r"答案为\s?(\S+)(?:。|$)",
        rf"(?i)ANSWER\s*:\s*([{o}])",
        rf"[Tt]he answer is:?\s+\(?([{o}])\)?",
        rf"[Tt]he answer is:?\s+\(?\*?\*?([{o}])\*?\*?\)?",
        rf"[Tt]he answer is option:?\s+\(?([{o}])\)?",
        rf"[Tt]he correct answer is:?\s+\(?([{o}])\)?",
        rf"[Tt]he correct answer is option:?\s+\(?([{o}])\)?",
        rf"[Tt]he correct answer is:?.*?boxed{{([{o}])}}",
        rf"[Tt]he correct option is:?.*?boxed{{([{o}])}}",
        rf"[Tt]he correct answer option is:?.*?boxed{{([{o}])}}",
        rf"[Tt]he answer to the question is:?\s+\(?([{o}])\)?",
        rf"^选项\s?([{o}])", rf"^([{o}])\s?选?项", rf"(\s|^)[{o}][\s。，,：:\.$]",
        r"1.\s?(.*?)$", rf"1.\s?([{o}])[.。$]?$",
        rf"([{o}]):", rf"([{o}])",
    ]


def first_option(text: str, options: str = "ABCD") -> str:
    """OpenCompass's first_option_postprocess (cushion on): the first pattern whose capture holds
    an option letter decides; the letter returned is the first of `options` found in it; '' if none.
    """
    text = text.strip()
    for pattern in _option_patterns(options):
        match = re.search(pattern, text, re.DOTALL)
        if match is None:
            continue
        captured = match.group(1) or match.group(0)
        for option in options:
            if option in captured:
                return option
    return ""


@register_metric("longbench_v2_choice")
def _v2_choice(prediction: str, references: list[str], sample: Sample) -> float:
    return float(extract_choice(prediction) == references[0])


@register_metric("longbench_v2_choice_opencompass")
def _v2_choice_opencompass(prediction: str, references: list[str], sample: Sample) -> float:
    return float(first_option(prediction) == references[0])
