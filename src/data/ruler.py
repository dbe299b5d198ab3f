"""RULER (Hsieh et al., 2024): synthetic long-context tasks generated offline at a target length.

Follows NVIDIA/RULER's scripts/data/synthetic/{niah,variable_tracking,common_words_extraction,
freq_words_extraction,qa}.py, constants.py, template.py and synthetic.yaml: the same task templates,
answer prefixes, needle sentences, key/value types, numbers of needles, tokens to generate and
haystack-size search. RULER's length budget is kept: the tokens the model reads (chat template,
prompt and answer prefix) plus the tokens to generate fit in `length`, as close to it as one
haystack unit allows.

Every sample is a pure function of (seed, task, sample index, length, tokenizer), so runs repeat.
"""
from __future__ import annotations

import json
import logging
import math
import random
import string
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any

from src.data.base import Sample, TokenCounter, register_dataset
from src.data.prompting import wrap_prompt
from src.data.ruler_haystack import NOISE, Essay, key_words, largest_fitting_size, load_essay, plain_words
from src.registry import ConfigError

log = logging.getLogger(__name__)

MATCH_ALL = "ruler_string_match_all"
MATCH_PART = "ruler_string_match_part"


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
NEEDLE = "One of the special magic {type_needle_v} for {key} is: {value}."
DEPTHS = tuple(round(100 * i / 39) for i in range(40))  # RULER's np.round(np.linspace(0, 100, 40))


@dataclass(frozen=True)
class Draft:
    """One generated prompt before model templating: user text, answer cue, answers, answer-needle depths (%)."""

    body: str
    answer_prefix: str
    references: list[str]
    depth: list[float] | None = None


@dataclass
class Context:
    """What every task of one `load` call shares: seed, length, tokenizer and the local data files."""

    seed: int
    length: int
    counter: TokenCounter
    depth_percent: tuple[float, ...] | None = None
    essay_path: str | None = None
    data_paths: dict[str, str | None] = field(default_factory=dict)

    @cached_property
    def essay(self) -> Essay:
        """The essay haystack, read (or substituted, with a warning) once per load."""
        return load_essay(self.essay_path)


class Task(ABC):
    """A RULER task: drafts the prompt of sample `index` with a haystack of `size` units."""

    text: TaskText
    metric = MATCH_ALL
    haystack = "none"

    def __init__(self, name: str, ctx: Context) -> None:
        self.name = name
        self.ctx = ctx

    def rng(self, index: int) -> random.Random:
        """The random source of one sample: the same for every haystack size, so sizes differ only in filler."""
        return random.Random(f"{self.ctx.seed}:{self.name}:{index}")

    def fixed_shuffle(self, items: list[Any]) -> None:
        """Shuffle in place with a generator seeded by the run seed alone, as RULER's Random(seed).shuffle."""
        random.Random(self.ctx.seed).shuffle(items)

    def min_size(self, index: int) -> int:
        """The smallest haystack size the task can be drafted with."""
        return 1

    def sample_count(self, requested: int) -> int:
        """How many samples the task can give (all requested, unless its data file holds fewer)."""
        return requested

    @abstractmethod
    def draft(self, size: int, index: int) -> Draft:
        """The prompt of sample `index` at haystack `size`."""


def _number(rng: random.Random) -> str:
    return str(rng.randint(10**6, 10**7 - 1))


def _word(rng: random.Random) -> str:
    return rng.choice(key_words())


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


RANDOM_VALUES: dict[str, Callable[[random.Random], str]] = {"numbers": _number, "words": _word, "uuids": _uuid}


def _distinct(make: Callable[[], str], count: int) -> list[str]:
    """`count` distinct values drawn from `make`, in the order first drawn."""
    values: dict[str, None] = {}
    while len(values) < count:
        values[make()] = None
    return list(values)


@dataclass(frozen=True)
class NiahConfig:
    """One needle-in-a-haystack variant of RULER's synthetic.yaml."""

    haystack: str  # "noise" (repeated sentence), "essay" or "needle" (distractor needles)
    key_type: str
    value_type: str
    num_keys: int = 1
    num_values: int = 1
    num_queries: int = 1


NIAH_CONFIGS = {
    "niah_single_1": NiahConfig("noise", "words", "numbers"),
    "niah_single_2": NiahConfig("essay", "words", "numbers"),
    "niah_single_3": NiahConfig("essay", "words", "uuids"),
    "niah_multikey_1": NiahConfig("essay", "words", "numbers", num_keys=4),
    "niah_multikey_2": NiahConfig("needle", "words", "numbers"),
    "niah_multikey_3": NiahConfig("needle", "uuids", "uuids"),
    "niah_multivalue": NiahConfig("essay", "words", "numbers", num_values=4),
    "niah_multiquery": NiahConfig("essay", "words", "numbers", num_queries=4),
}


def _insert(units: list[str], needles: list[tuple[int, str, bool]]) -> tuple[list[str], list[float]]:
    """`units` with each (slot, text, asked) needle before unit `slot`, and the asked needles' depths (%)."""
    pieces: list[str] = []
    depth: list[float] = []
    cursor = 0
    for slot, text, asked in sorted(needles, key=lambda needle: needle[0]):
        pieces += units[cursor:slot]
        cursor = slot
        pieces.append(text)
        if asked:
            depth.append(round(100 * slot / len(units), 2))
    return pieces + units[cursor:], depth


def _singular(text: str) -> str:
    """RULER's rewording of the niah template when exactly one value is asked for."""
    for plural, single in (("Some", "A"), ("are all", "is"), ("are", "is"), ("answers", "answer")):
        text = text.replace(plural, single)
    return text


class NeedleInHaystack(Task):
    """niah_*: find the value(s) of the queried key(s) among needles hidden in a haystack.

    Size is the number of haystack sentences (noise, needle) or words (essay). Needles go at RULER's
    random positions, or, with `depth_percent`, the queried needles of sample i at depth
    depth_percent[i % len] while the distractor needles keep random positions.
    """

    text = NIAH_TEXT

    def __init__(self, name: str, ctx: Context, config: NiahConfig) -> None:
        super().__init__(name, ctx)
        self.config = config
        self.haystack = ctx.essay.source if config.haystack == "essay" else config.haystack

    def min_size(self, index: int) -> int:
        return max(self.config.num_keys, self.config.num_queries) * self.config.num_values

    def draft(self, size: int, index: int) -> Draft:
        cfg, rng = self.config, self.rng(index)
        make_key, make_value = RANDOM_VALUES[cfg.key_type], RANDOM_VALUES[cfg.value_type]
        keys = _distinct(lambda: make_key(rng), max(cfg.num_keys, cfg.num_queries))
        values = [[make_value(rng) for _ in range(cfg.num_values)] for _ in keys]
        queried = rng.sample(range(len(keys)), cfg.num_queries)
        needles = [(k, NEEDLE.format(type_needle_v=cfg.value_type, key=keys[k], value=v))
                   for k in range(len(keys)) for v in values[k]]
        self.fixed_shuffle(needles)
        units = self._units(size, rng, set(keys))
        slots = self._slots(len(units), len(needles), rng)
        target = self._target_slot(len(units), index)
        if target is not None:
            slots = [target if k in queried else slot for (k, _), slot in zip(needles, slots)]
        pieces, depth = _insert(units, [(slot, text, k in queried) for (k, text), slot in zip(needles, slots)])
        context = (" " if cfg.haystack == "essay" else "\n").join(pieces)

        template, prefix, type_v = NIAH_TEXT.template, NIAH_TEXT.answer_prefix, cfg.value_type
        if cfg.num_queries * cfg.num_values == 1:
            template, prefix, type_v = _singular(template), _singular(prefix), type_v[:-1]
        queries = [keys[k] for k in queried]
        query = ", ".join(queries[:-1]) + ", and " + queries[-1] if len(queries) > 1 else queries[0]
        return Draft(
            body=template.format(type_needle_v=type_v, context=context, query=query),
            answer_prefix=prefix.format(type_needle_v=type_v, query=query),
            references=[v for k in queried for v in values[k]],
            depth=depth,
        )

    def _units(self, size: int, rng: random.Random, keys: set[str]) -> list[str]:
        """The haystack as a list of sentences (distractor needles never reuse a needle's key)."""
        cfg = self.config
        if cfg.haystack == "essay":
            return self.ctx.essay.sentences(size)
        if cfg.haystack == "noise":
            return [NOISE] * size
        make_key, make_value = RANDOM_VALUES[cfg.key_type], RANDOM_VALUES[cfg.value_type]
        units = []
        while len(units) < size:
            key = make_key(rng)
            if key not in keys:
                units.append(NEEDLE.format(type_needle_v=cfg.value_type, key=key, value=make_value(rng)))
        return units

    def _slots(self, num_units: int, num_needles: int, rng: random.Random) -> list[int]:
        """RULER's needle positions: essay at sampled depths of its sentences, else distinct random sentences."""
        if self.config.haystack == "essay":
            return sorted(int(num_units * d / 100) for d in rng.sample(DEPTHS, num_needles))
        return sorted(rng.sample(range(num_units), num_needles))

    def _target_slot(self, num_units: int, index: int) -> int | None:
        depths = self.ctx.depth_percent
        return None if not depths else int(num_units * depths[index % len(depths)] / 100)


class VariableTracking(Task):
    """vt: name every variable bound, through a chain of assignments, to a value (noise haystack).

    As RULER, the prompt opens with one solved example of about 500 tokens (3-letter names) and size
    is the number of noise sentences of the question itself.
    """

    text = VT_TEXT
    haystack = "noise"
    num_chains = 1
    num_hops = 4
    example_budget = 500

    def min_size(self, index: int) -> int:
        return self.num_chains * (self.num_hops + 1)

    @cached_property
    def example_size(self) -> int:
        """Noise sentences of the solved example, the most that keep it within RULER's 500 tokens."""
        def measure(size: int) -> int:
            example = self._chains(size, random.Random(f"{self.ctx.seed}:{self.name}:example"), 3)
            return self.ctx.counter(example.body + example.answer_prefix)

        fit = largest_fitting_size(measure, self.example_budget, self.min_size(0), self.min_size(0) + 1)
        if fit is None:
            raise ValueError(f"vt's solved example does not fit in {self.example_budget} tokens")
        return fit[0]

    def draft(self, size: int, index: int) -> Draft:
        rng = self.rng(index)
        example = self._chains(self.example_size, rng, 3)
        question = self._chains(size, rng, 5)
        solved = f"{example.body}{example.answer_prefix} {' '.join(example.references)}\n"
        return Draft(f"{solved}\n{question.body}", question.answer_prefix, question.references, question.depth)

    def _chains(self, num_noises: int, rng: random.Random, name_length: int) -> Draft:
        names = _distinct(lambda: "".join(rng.choices(string.ascii_uppercase, k=name_length)),
                          self.num_chains * (self.num_hops + 1))
        chains = []
        for c in range(self.num_chains):
            chain_names = names[c * (self.num_hops + 1) : (c + 1) * (self.num_hops + 1)]
            chain = [f"VAR {chain_names[0]} = {rng.randrange(10000, 99999)}"]
            chain += [f"VAR {chain_names[j + 1]} = VAR {chain_names[j]} " for j in range(self.num_hops)]
            chains.append(chain)
        sentences = [NOISE] * num_noises
        for chain in chains:
            for j, position in enumerate(sorted(rng.sample(range(len(sentences)), len(chain)))):
                sentences.insert(position + j, chain[j])
        first = set(chains[0])
        depth = [round(100 * i / len(sentences), 2) for i, s in enumerate(sentences) if s in first]
        value = chains[0][0].split("=")[-1].strip()
        fields = {"query": value, "num_v": self.num_hops + 1}
        context = "\n".join(sentences).replace(". \n", ".\n")
        return Draft(
            body=VT_TEXT.template.format(context=context, **fields),
            answer_prefix=VT_TEXT.answer_prefix.format(**fields),
            references=names[: self.num_hops + 1],
            depth=depth,
        )


class CommonWords(Task):
    """cwe: list the 10 words repeated most often in a numbered word list; size is its number of distinct words.

    As RULER, one solved example comes first, and below 4096 tokens the repeats drop from 30/3 to 6/1.
    Beyond our ~1,600 single words the words become adjective-noun pairs (RULER switches to a larger list).
    """

    text = CWE_TEXT
    freq_cw = 30
    freq_ucw = 3
    num_cw = 10

    def min_size(self, index: int) -> int:
        return self.num_cw

    def draft(self, size: int, index: int) -> Draft:
        rng = self.rng(index)
        short = self.ctx.length < 4096
        shot_context, shot_answer = self._example(rng, *((20, 3, 1) if short else (40, 10, 3)))
        context, answer = self._example(rng, size, *((6, 1) if short else (self.freq_cw, self.freq_ucw)))
        shot = f"{CWE_TEXT.template.format(context=shot_context)}{CWE_TEXT.answer_prefix} {_numbered(shot_answer)}"
        return Draft(f"{shot}\n{CWE_TEXT.template.format(context=context)}", CWE_TEXT.answer_prefix, answer)

    def _example(self, rng: random.Random, num_words: int, common: int, uncommon: int) -> tuple[str, list[str]]:
        pool = plain_words() if num_words <= len(plain_words()) else key_words()
        chosen = rng.sample(pool, num_words)
        words = chosen[: self.num_cw] * common + chosen[self.num_cw :] * uncommon
        self.fixed_shuffle(words)
        return _numbered(words), chosen[: self.num_cw]


def _numbered(words: list[str]) -> str:
    return " ".join(f"{i + 1}. {word}" for i, word in enumerate(words))


def riemann_zeta(alpha: float) -> float:
    """zeta(alpha) for alpha > 1, the normaliser of RULER's word-frequency law (Euler-Maclaurin, error < 1e-9)."""
    n = 50
    head = sum(k**-alpha for k in range(1, n))
    return head + n ** (1 - alpha) / (alpha - 1) + n**-alpha / 2 + alpha * n ** (-alpha - 1) / 12


class FrequentWords(Task):
    """fwe: name the three most frequent coded words of a Zipf-distributed text; size is its word count.

    Word k of a random 6-letter vocabulary appears floor(size * k^-alpha / zeta(alpha)) times; the
    most frequent is '...' (noise), so the answers are words 2 to 4. Vocabulary: budget // 50 words.
    """

    text = FWE_TEXT
    alpha = 2.0
    word_length = 6

    def __init__(self, name: str, ctx: Context) -> None:
        super().__init__(name, ctx)
        self.vocab_size = (ctx.length - FWE_TEXT.tokens_to_generate) // 50
        if self.vocab_size < 4:
            raise ValueError(f"length {ctx.length} is too small for RULER task fwe: it needs at least 250 tokens")

    def min_size(self, index: int) -> int:
        return math.ceil(riemann_zeta(self.alpha) * 4**self.alpha)

    def draft(self, size: int, index: int) -> Draft:
        rng = self.rng(index)
        ranked = sorted(_distinct(lambda: "".join(rng.choices(string.ascii_lowercase, k=self.word_length)),
                                  self.vocab_size))
        self.fixed_shuffle(ranked)
        ranked[0] = "..."
        norm = riemann_zeta(self.alpha)
        words = [w for k, w in enumerate(ranked, 1) for _ in range(int(size * k**-self.alpha / norm))]
        self.fixed_shuffle(words)
        return Draft(FWE_TEXT.template.format(context=" ".join(words)), FWE_TEXT.answer_prefix, ranked[1:4])


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


def _qa_task(name: str, ctx: Context, dataset: str) -> Task | None:
    path = ctx.data_paths.get(dataset)
    if path is None:
        log.warning("RULER: skipping %s: it needs the %s json (set dataset.%s_path=/path/to/file)", name, dataset, dataset)
        return None
    return QuestionAnswering(name, ctx, dataset, path)


TASKS: dict[str, Callable[[str, Context], Task | None]] = {
    **{name: partial(NeedleInHaystack, config=config) for name, config in NIAH_CONFIGS.items()},
    "vt": VariableTracking,
    "cwe": CommonWords,
    "fwe": FrequentWords,
    "qa_1": partial(_qa_task, dataset="squad"),
    "qa_2": partial(_qa_task, dataset="hotpotqa"),
}


class InputMeter:
    """Tokens the model reads for a prompt, rendered as the generation loop renders it."""

    def __init__(self, tokenizer: Any, model_template: str) -> None:
        self.tokenizer = tokenizer
        self.count = TokenCounter(tokenizer)
        self.model_template = MODEL_TEMPLATES[model_template]
        self.use_chat_template = model_template == "base"

    def prompt(self, draft: Draft) -> str:
        """The user content: the draft inside RULER's model template ("base" leaves it as is)."""
        return self.model_template.format(task_template=draft.body)

    def __call__(self, draft: Draft) -> int:
        return self.count(wrap_prompt(self.prompt(draft), self.tokenizer, self.use_chat_template, draft.answer_prefix))


def _task_samples(task: Task, meter: InputMeter, length: int, num_samples: int) -> list[Sample]:
    """Samples of one task, each with the largest haystack whose input + generation fits `length`."""
    budget = length - task.text.tokens_to_generate
    guess = task.min_size(0) + 1
    samples = []
    for index in range(task.sample_count(num_samples)):
        fit = largest_fitting_size(lambda size: meter(task.draft(size, index)), budget, task.min_size(index), guess)
        if fit is None:
            shortest = meter(task.draft(task.min_size(index), index))
            raise ValueError(
                f"length {length} is too small for RULER task {task.name}: its shortest prompt takes {shortest} "
                f"tokens plus {task.text.tokens_to_generate} to generate"
            )
        size, tokens = fit
        guess = size
        draft = task.draft(size, index)
        samples.append(Sample(
            id=f"{task.name}-{length}-{index}",
            task=task.name,
            prompt=meter.prompt(draft),
            references=draft.references,
            metric=task.metric,
            max_new_tokens=task.text.tokens_to_generate,
            use_chat_template=meter.use_chat_template,
            answer_prefix=draft.answer_prefix,
            meta={"length": tokens, "max_seq_length": length, "depth": draft.depth, "haystack": task.haystack,
                  "haystack_size": size},
        ))
    return samples


@register_dataset("ruler")
def load(
    *,
    tokenizer: Any,
    tasks: list[str],
    length: int,
    num_samples: int,
    seed: int = 42,
    essay_path: str | None = None,
    squad_path: str | None = None,
    hotpotqa_path: str | None = None,
    depth_percent: list[float] | None = None,
    template: str = "base",
) -> list[Sample]:
    """RULER samples: `num_samples` per task in `tasks`, each filling `length` tokens (input + generation).

    essay_path: RULER's PaulGrahamEssays.json for the essay-haystack niah tasks (else our own prose).
    squad_path / hotpotqa_path: the json files of qa_1 / qa_2 (those tasks are skipped without them).
    depth_percent: depths (0-100) of the queried needles of niah tasks, cycled over samples (else random).
    template: RULER's model template; "base" leaves templating to the tokenizer's chat template.
    """
    if isinstance(tasks, str):
        raise ConfigError(f"RULER tasks must be a list of names, got the string {tasks!r}")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ConfigError(f"unknown RULER task(s) {', '.join(map(str, unknown))}; allowed: {', '.join(TASKS)}")
    if template not in MODEL_TEMPLATES:
        raise ConfigError(f"unknown RULER template {template!r}; allowed: {', '.join(MODEL_TEMPLATES)}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    bad_depths = [d for d in depth_percent or [] if not 0 <= d <= 100]
    if bad_depths:
        raise ValueError(f"depth_percent values must lie in [0, 100], got {bad_depths}")
    ctx = Context(
        seed=seed,
        length=length,
        counter=TokenCounter(tokenizer),
        depth_percent=tuple(depth_percent) if depth_percent else None,
        essay_path=essay_path,
        data_paths={"squad": squad_path, "hotpotqa": hotpotqa_path},
    )
    meter = InputMeter(tokenizer, template)
    samples: list[Sample] = []
    for name in tasks:
        task = TASKS[name](name, ctx)
        if task is not None:
            samples += _task_samples(task, meter, length, num_samples)
    return samples
