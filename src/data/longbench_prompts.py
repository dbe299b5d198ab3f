"""LongBench (v1) and LongBench v2 evaluation settings, as data: prompt templates, generation
lengths, chat-template exceptions, metrics and the paper's task categories.

Sources (THUDM/LongBench): `LongBench/config/dataset2prompt.json` (word for word, including
narrativeqa's "asconcisely", twice; OpenCompass's copy reads "as concisely"),
`config/dataset2maxlen.json`, `pred.py` (the tasks that skip
the chat template), `eval.py` (metric per task, first-line post-processing), LongBench v2
`prompts/0shot*.txt` and `pred.py` (128 new tokens, 1024 for the chain-of-thought step).
OpenCompass (open-compass/opencompass, `configs/datasets/longbench*/`, what the PBS-Attn paper ran):
see `src/data/longbench.py` for how its LongBench configs differ; its LongBench v2 config uses
its own single-turn chain-of-thought prompt and the model's `max_out_len` (2048 in the paper's
model configs).
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

# The 21 LongBench tasks in the official order (pred.py), and the 13 that have a LongBench-E file.
TASKS: tuple[str, ...] = (
    "narrativeqa", "qasper", "multifieldqa_en", "multifieldqa_zh", "hotpotqa", "2wikimqa", "musique",
    "dureader", "gov_report", "qmsum", "multi_news", "vcsum", "trec", "triviaqa", "samsum", "lsht",
    "passage_count", "passage_retrieval_en", "passage_retrieval_zh", "lcc", "repobench-p",
)
E_TASKS: tuple[str, ...] = (
    "qasper", "multifieldqa_en", "hotpotqa", "2wikimqa", "gov_report", "multi_news", "trec",
    "triviaqa", "samsum", "passage_count", "passage_retrieval_en", "lcc", "repobench-p",
)

# hotpotqa, 2wikimqa and musique share one official template (dataset2prompt.json repeats it
# word for word), so it is written once.
_MULTI_DOC_QA = (
    "Answer the question based on the given passages. Only give me the answer and do "
    "not output any other words.\n\n"
    "The following are given passages.\n"
    "{context}\n\n"
    "Answer the question based on the given passages. Only give me the answer and do "
    "not output any other words.\n\n"
    "Question: {input}\n"
    "Answer:"
)

# Official prompt templates, filled with str.format(**record) (record fields: context, input, ...).
PROMPTS = MappingProxyType({
    "narrativeqa": (
        "You are given a story, which can be either a novel or a movie script, and a "
        "question. Answer the question asconcisely as you can, using a single phrase if "
        "possible. Do not provide any explanation.\n\n"
        "Story: {context}\n\n"
        "Now, answer the question based on the story asconcisely as you can, using a "
        "single phrase if possible. Do not provide any explanation.\n\n"
        "Question: {input}\n\n"
        "Answer:"
    ),
    "qasper": (
        "You are given a scientific article and a question. Answer the question as "
        "concisely as you can, using a single phrase or sentence if possible. If the "
        "question cannot be answered based on the information in the article, write "
        '"unanswerable". If the question is a yes/no question, answer "yes", "no", or '
        '"unanswerable". Do not provide any explanation.\n\n'
        "Article: {context}\n\n"
        " Answer the question based on the above article as concisely as you can, using "
        "a single phrase or sentence if possible. If the question cannot be answered "
        'based on the information in the article, write "unanswerable". If the question '
        'is a yes/no question, answer "yes", "no", or "unanswerable". Do not provide any '
        "explanation.\n\n"
        "Question: {input}\n\n"
        "Answer:"
    ),
    "multifieldqa_en": (
        "Read the following text and answer briefly.\n\n"
        "{context}\n\n"
        "Now, answer the following question based on the above text, only give me the "
        "answer and do not output any other words.\n\n"
        "Question: {input}\n"
        "Answer:"
    ),
    "multifieldqa_zh": (
        "阅读以下文字并用中文简短回答：\n\n"
        "{context}\n\n"
        "现在请基于上面的文章回答下面的问题，只告诉我答案，不要输出任何其他字词。\n\n"
        "问题：{input}\n"
        "回答："
    ),
    "hotpotqa": _MULTI_DOC_QA,
    "2wikimqa": _MULTI_DOC_QA,
    "musique": _MULTI_DOC_QA,
    "dureader": (
        "请基于给定的文章回答下述问题。\n\n"
        "文章：{context}\n\n"
        "请基于上述文章回答下面的问题。\n\n"
        "问题：{input}\n"
        "回答："
    ),
    "gov_report": (
        "You are given a report by a government agency. Write a one-page summary of the report.\n\n"
        "Report:\n"
        "{context}\n\n"
        "Now, write a one-page summary of the report.\n\n"
        "Summary:"
    ),
    "qmsum": (
        "You are given a meeting transcript and a query containing a question or "
        "instruction. Answer the query in one or more sentences.\n\n"
        "Transcript:\n"
        "{context}\n\n"
        "Now, answer the query based on the above meeting transcript in one or more sentences.\n\n"
        "Query: {input}\n"
        "Answer:"
    ),
    "multi_news": (
        "You are given several news passages. Write a one-page summary of all news. \n\n"
        "News:\n"
        "{context}\n\n"
        "Now, write a one-page summary of all the news.\n\n"
        "Summary:"
    ),
    "vcsum": (
        "下面有一段会议记录，请你阅读后，写一段总结，总结会议的内容。\n"
        "会议记录：\n"
        "{context}\n\n"
        "会议总结："
    ),
    "trec": (
        "Please determine the type of the question below. Here are some examples of questions.\n\n"
        "{context}\n"
        "{input}"
    ),
    "triviaqa": (
        "Answer the question based on the given passage. Only give me the answer and do "
        "not output any other words. The following are some examples.\n\n"
        "{context}\n\n"
        "{input}"
    ),
    "samsum": (
        "Summarize the dialogue into a few short sentences. The following are some examples.\n\n"
        "{context}\n\n"
        "{input}"
    ),
    "lsht": (
        "请判断给定新闻的类别，下面是一些例子。\n\n"
        "{context}\n"
        "{input}"
    ),
    "passage_count": (
        "There are some paragraphs below sourced from Wikipedia. Some of them may be "
        "duplicates. Please carefully read these paragraphs and determine how many "
        "unique paragraphs there are after removing duplicates. In other words, how many "
        "non-repeating paragraphs are there in total?\n\n"
        "{context}\n\n"
        "Please enter the final count of unique paragraphs after removing duplicates. "
        "The output format should only contain the number, such as 1, 2, 3, and so on.\n\n"
        "The final answer is: "
    ),
    "passage_retrieval_en": (
        "Here are 30 paragraphs from Wikipedia, along with an abstract. Please determine "
        "which paragraph the abstract is from.\n\n"
        "{context}\n\n"
        "The following is an abstract.\n\n"
        "{input}\n\n"
        "Please enter the number of the paragraph that the abstract is from. The answer "
        'format must be like "Paragraph 1", "Paragraph 2", etc.\n\n'
        "The answer is: "
    ),
    "passage_retrieval_zh": (
        "以下是若干段落文字，以及其中一个段落的摘要。请确定给定的摘要出自哪一段。\n\n"
        "{context}\n\n"
        "下面是一个摘要\n\n"
        "{input}\n\n"
        '请输入摘要所属段落的编号。答案格式必须是"段落1"，"段落2"等格式\n\n'
        "答案是："
    ),
    "lcc": (
        "Please complete the code given below. \n"
        "{context}Next line of code:\n"
    ),
    "repobench-p": (
        "Please complete the code given below. \n"
        "{context}{input}Next line of code:\n"
    ),
})

# Official maximum new tokens per task (dataset2maxlen.json).
MAX_NEW_TOKENS = MappingProxyType({
    "narrativeqa": 128, "qasper": 128, "multifieldqa_en": 64, "multifieldqa_zh": 64,
    "hotpotqa": 32, "2wikimqa": 32, "musique": 32, "dureader": 128,
    "gov_report": 512, "qmsum": 512, "multi_news": 512, "vcsum": 512,
    "trec": 64, "triviaqa": 32, "samsum": 128, "lsht": 64,
    "passage_count": 32, "passage_retrieval_en": 32, "passage_retrieval_zh": 32,
    "lcc": 64, "repobench-p": 64,
})

# pred.py: "chat models are better off without build prompts on these tasks".
NO_CHAT_TEMPLATE = frozenset({"trec", "triviaqa", "samsum", "lsht", "lcc", "repobench-p"})
# eval.py scores only the first line of the prediction (after leading newlines) on these tasks.
FIRST_LINE_ONLY = frozenset({"trec", "triviaqa", "samsum", "lsht"})

# eval.py dataset2metric, as names in src.metrics.METRICS.
METRICS = MappingProxyType({
    "narrativeqa": "longbench_qa_f1", "qasper": "longbench_qa_f1",
    "multifieldqa_en": "longbench_qa_f1", "multifieldqa_zh": "longbench_qa_f1_zh",
    "hotpotqa": "longbench_qa_f1", "2wikimqa": "longbench_qa_f1", "musique": "longbench_qa_f1",
    "dureader": "longbench_rouge_zh", "gov_report": "longbench_rouge", "qmsum": "longbench_rouge",
    "multi_news": "longbench_rouge", "vcsum": "longbench_rouge_zh",
    "trec": "longbench_classification", "triviaqa": "longbench_qa_f1", "samsum": "longbench_rouge",
    "lsht": "longbench_classification", "passage_count": "longbench_count",
    "passage_retrieval_en": "longbench_retrieval", "passage_retrieval_zh": "longbench_retrieval_zh",
    "lcc": "longbench_code_sim", "repobench-p": "longbench_code_sim",
})


@dataclass(frozen=True)
class Category:
    """One of LongBench's six task types: the name our summaries give its row, the paper's
    Table 1 column for it, and its tasks."""

    name: str
    column: str
    tasks: tuple[str, ...]


# The paper's Table 1 categories (LongBench's six task types), in its column order.
CATEGORIES: tuple[Category, ...] = (
    Category("Single-Doc QA", "SingleDocQA", ("narrativeqa", "qasper", "multifieldqa_en", "multifieldqa_zh")),
    Category("Multi-Doc QA", "MultiDocQA", ("hotpotqa", "2wikimqa", "musique", "dureader")),
    Category("Summarization", "Summ", ("gov_report", "qmsum", "multi_news", "vcsum")),
    Category("Few-shot", "FewShot", ("trec", "triviaqa", "samsum", "lsht")),
    Category("Code", "Code", ("lcc", "repobench-p")),
    Category("Synthetic", "Synthetic", ("passage_count", "passage_retrieval_en", "passage_retrieval_zh")),
)

# OpenCompass's LongBench configs, where they differ from the official ones: narrativeqa reads
# "as concisely", qasper reuses the multi-document QA prompt with 32 new tokens, multi_news ends its
# prompt with a newline, and code similarity is computed with python-Levenshtein installed
# (fuzzywuzzy then uses it).
OPENCOMPASS_PROMPTS = MappingProxyType({
    **PROMPTS,
    "narrativeqa": PROMPTS["narrativeqa"].replace("asconcisely", "as concisely"),
    "qasper": PROMPTS["hotpotqa"],
    "multi_news": PROMPTS["multi_news"] + "\n",
})
OPENCOMPASS_MAX_NEW_TOKENS = MappingProxyType({**MAX_NEW_TOKENS, "qasper": 32})
OPENCOMPASS_METRICS = MappingProxyType({
    **METRICS, "lcc": "longbench_code_sim_opencompass", "repobench-p": "longbench_code_sim_opencompass",
})
# OpenCompass fills a template by replacing "{key}" for every key of the test row, in the row's
# key order (`safe_format` over the dict its LongBench*Dataset.load builds): "input" (tasks that
# have one), then "context", then the output column, replaced by "" (GenInferencer's
# gen_field_replace_token). The output column is "all_labels" for trec and lsht, else "answers".
OPENCOMPASS_FIELDS: tuple[str, ...] = ("input", "context")
OPENCOMPASS_OUTPUT_COLUMN = MappingProxyType({task: "all_labels" if task in ("trec", "lsht") else "answers"
                                             for task in TASKS})

# LongBench v2 (prompts/0shot.txt, 0shot_cot.txt, 0shot_cot_ans.txt): placeholders $DOC$, $Q$,
# $C_A$..$C_D$ and $COT$, filled by successive str.replace in pred.py's order.
V2_PROMPT = (
    "Please read the following text and answer the question below.\n\n"
    "<text>\n$DOC$\n</text>\n\n"
    "What is the correct answer to this question: $Q$\n"
    "Choices:\n(A) $C_A$\n(B) $C_B$\n(C) $C_C$\n(D) $C_D$\n\n"
    'Format your response as follows: "The correct answer is (insert answer here)".'
)
V2_PROMPT_COT = (
    "Please read the following text and answer the questions below.\n\n"
    "<text>\n$DOC$\n</text>\n\n"
    "What is the correct answer to this question: $Q$\n"
    "Choices:\n(A) $C_A$\n(B) $C_B$\n(C) $C_C$\n(D) $C_D$\n\n"
    "Let\u2019s think step by step:"
)
V2_PROMPT_COT_ANSWER = (
    "Please read the following text and answer the questions below.\n\n"
    "The text is too long and omitted here.\n\n"
    "What is the correct answer to this question: $Q$\n"
    "Choices:\n(A) $C_A$\n(B) $C_B$\n(C) $C_C$\n(D) $C_D$\n\n"
    "Let\u2019s think step by step: $COT$\n\n"
    "Based on the above, what is the single, most likely answer choice? "
    'Format your response as follows: "The correct answer is (insert answer here)".'
)
V2_MAX_NEW_TOKENS = 128
V2_COT_MAX_NEW_TOKENS = 1024

# OpenCompass longbenchv2_gen (75fbba, what the paper ran): one chain-of-thought turn, its closing
# quote missing as in the config; no max_out_len of its own.
V2_OPENCOMPASS_PROMPT = (
    "Please read the following text and answer the questions below.\n "
    "<text> \n {context} \n </text> \n \n "
    "What is the correct answer to this question: {question} \n \n Choices: \n "
    "(A) {choice_A} \n (B) {choice_B} \n (C) {choice_C} \n (D) {choice_D} \n "
    "Let\u2019s think step by step. Based on the above, what is the single, most likely answer choice? "
    'Format your response as follows: "The correct answer is (insert answer here)'
)
# The key order of the row LongBenchv2Dataset.load builds, "answer" being the output column ("").
V2_OPENCOMPASS_FIELDS: tuple[str, ...] = (
    "question", "context", "answer", "choice_A", "choice_B", "choice_C", "choice_D", "difficulty", "length",
)
V2_OPENCOMPASS_OUTPUT_COLUMN = "answer"
V2_OPENCOMPASS_MAX_NEW_TOKENS = 2048
