"""RULER's needle-in-a-haystack family (scripts/data/synthetic/niah.py and the niah_* variants of
synthetic.yaml): find the value(s) of the queried key(s) among needles hidden in a haystack."""
from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from src.data.ruler.haystack import NOISE, key_words
from src.data.ruler.task import Context, Draft, Task, distinct
from src.data.ruler.templates import NIAH_TEXT

NEEDLE = "One of the special magic {type_needle_v} for {key} is: {value}."
DEPTHS = tuple(round(100 * i / 39) for i in range(40))  # RULER's np.round(np.linspace(0, 100, 40))


def _number(rng: random.Random) -> str:
    return str(rng.randint(10**6, 10**7 - 1))


def _word(rng: random.Random) -> str:
    return rng.choice(key_words())


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


RANDOM_VALUES: dict[str, Callable[[random.Random], str]] = {"numbers": _number, "words": _word, "uuids": _uuid}


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
        keys = distinct(lambda: make_key(rng), max(cfg.num_keys, cfg.num_queries))
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
