"""RULER's variable tracking (scripts/data/synthetic/variable_tracking.py): name every variable
bound, through a chain of assignments, to a value hidden in a noise haystack."""
from __future__ import annotations

import random
import string
from functools import cached_property

from src.data.ruler.haystack import NOISE, largest_fitting_size
from src.data.ruler.task import Draft, Task, distinct
from src.data.ruler.templates import VT_TEXT


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
        names = distinct(lambda: "".join(rng.choices(string.ascii_uppercase, k=name_length)),
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
