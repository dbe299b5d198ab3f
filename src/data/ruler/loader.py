"""The registered RULER loader: the task table, the token meter and the haystack-size fit that
makes each prompt plus its generation fill `length` tokens."""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from src.data.base import Sample, TokenCounter, register_dataset
from src.data.prompting import wrap_prompt
from src.data.ruler.haystack import largest_fitting_size
from src.data.ruler.niah import NIAH_CONFIGS, NeedleInHaystack
from src.data.ruler.qa import qa_task
from src.data.ruler.task import Context, Draft, Task
from src.data.ruler.templates import MODEL_TEMPLATES
from src.data.ruler.variable_tracking import VariableTracking
from src.data.ruler.words import CommonWords, FrequentWords
from src.registry import ConfigError

TASKS: dict[str, Callable[[str, Context], Task | None]] = {
    **{name: partial(NeedleInHaystack, config=config) for name, config in NIAH_CONFIGS.items()},
    "vt": VariableTracking,
    "cwe": CommonWords,
    "fwe": FrequentWords,
    "qa_1": partial(qa_task, dataset="squad"),
    "qa_2": partial(qa_task, dataset="hotpotqa"),
}


class InputMeter:
    """Tokens the model reads for a prompt, rendered as the generation loop renders it."""

    def __init__(self, tokenizer: Any, model_template: str) -> None:
        self.tokenizer = tokenizer
        self.count = TokenCounter(tokenizer)
        self.model_template = MODEL_TEMPLATES[model_template]
        self.use_chat_template = model_template == "base"

    def prompt(self, draft: Draft) -> str:
        """The user content: the draft inside RULER's model template ("base" leaves it as is), each
        solved example first, in a template of its own and followed by its answer and a newline."""
        examples = "".join(f"{self.model_template.format(task_template=q)}{a}\n" for q, a in draft.examples)
        return examples + self.model_template.format(task_template=draft.body)

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
    template: RULER's model template (`conf/model/*.yaml` picks its family's: `ruler_template`);
        "base" leaves templating to the tokenizer's chat template, any other name is RULER's text
        and the tokenizer's chat template is then not applied.
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
