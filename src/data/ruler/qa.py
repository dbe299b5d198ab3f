"""RULER's question answering (scripts/data/synthetic/qa.py): answer a SQuAD / HotpotQA question
from its gold documents hidden among other documents of the same file."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from src.data.ruler.task import MATCH_PART, Context, Draft, Task
from src.data.ruler.templates import QA_TEXT
from src.registry import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Question:
    """A QA item: the question, its answers, its gold documents and (SQuAD) its article's other paragraphs."""

    query: str
    outputs: list[str]
    gold: list[int]
    related: list[int]


def read_squad(path: Path) -> tuple[list[Question], list[str]]:
    """Answerable questions and unique paragraphs of a SQuAD json, as RULER's read_squad."""
    data = json.loads(path.read_text())["data"]
    docs = sorted({p["context"] for article in data for p in article["paragraphs"]})
    doc_id = {doc: i for i, doc in enumerate(docs)}
    questions = []
    for article in data:
        article_docs = [doc_id[p["context"]] for p in article["paragraphs"]]
        for p in article["paragraphs"]:
            own = doc_id[p["context"]]
            questions += [
                Question(qa["question"], [a["text"] for a in qa["answers"]], [own], [d for d in article_docs if d != own])
                for qa in p["qas"] if not qa.get("is_impossible", False)
            ]
    return questions, docs


def read_hotpotqa(path: Path) -> tuple[list[Question], list[str]]:
    """Questions and unique "title\\nparagraph" documents of a HotpotQA json, as RULER's read_hotpotqa."""
    data = json.loads(path.read_text())
    docs = sorted({f"{title}\n{''.join(sents)}" for item in data for title, sents in item["context"]})
    doc_id = {doc: i for i, doc in enumerate(docs)}
    questions = [
        Question(item["question"], [item["answer"]], [doc_id[f"{t}\n{''.join(s)}"] for t, s in item["context"]], [])
        for item in data
    ]
    return questions, docs


QA_READERS = {"squad": read_squad, "hotpotqa": read_hotpotqa}


class QuestionAnswering(Task):
    """qa_1 / qa_2: answer a SQuAD / HotpotQA question from its gold documents hidden among others.

    Size is the number of documents; sample i asks question i of the file, as RULER does.
    """

    text = QA_TEXT
    metric = MATCH_PART

    def __init__(self, name: str, ctx: Context, dataset: str, path: str) -> None:
        super().__init__(name, ctx)
        if not Path(path).is_file():
            raise ConfigError(f"{dataset}_path {path!r} is not a file; give the {dataset} json that RULER's {name} uses")
        self.questions, self.docs = QA_READERS[dataset](Path(path))
        self.haystack = Path(path).name

    def min_size(self, index: int) -> int:
        return len(self.questions[index].gold)

    def sample_count(self, requested: int) -> int:
        if requested > len(self.questions):
            log.warning("RULER %s: the file holds %d questions, fewer than the %d asked", self.name,
                        len(self.questions), requested)
        return min(requested, len(self.questions))

    def draft(self, size: int, index: int) -> Draft:
        question, rng = self.questions[index], self.rng(index)
        gold, related = question.gold, question.related
        if size >= len(self.docs):
            chosen = (list(range(len(self.docs))) * -(-size // len(self.docs)))[:size]
        elif size - len(gold) > len(related):
            known = set(gold) | set(related)
            others = [i for i in range(len(self.docs)) if i not in known]
            chosen = gold + related + rng.sample(others, size - len(gold) - len(related))
        else:
            chosen = gold + rng.sample(related, size - len(gold))
        docs = [self.docs[i] for i in chosen]
        self.fixed_shuffle(docs)
        context = "\n\n".join(f"Document {i + 1}:\n{doc}" for i, doc in enumerate(docs))
        return Draft(QA_TEXT.template.format(context=context, query=question.query), QA_TEXT.answer_prefix,
                     question.outputs)


def qa_task(name: str, ctx: Context, dataset: str) -> Task | None:
    """The qa task `name` on `dataset`'s json, or None (skipped, with a warning) when no file is configured."""
    path = ctx.data_paths.get(dataset)
    if path is None:
        log.warning("RULER: skipping %s: it needs the %s json (set dataset.%s_path=/path/to/file)", name, dataset, dataset)
        return None
    return QuestionAnswering(name, ctx, dataset, path)
