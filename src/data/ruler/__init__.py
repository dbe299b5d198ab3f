"""RULER (Hsieh et al., 2024): synthetic long-context tasks generated offline at a target length.

Follows NVIDIA/RULER's scripts/data/synthetic/{niah,variable_tracking,common_words_extraction,
freq_words_extraction,qa}.py, constants.py, template.py and synthetic.yaml: the same task templates,
answer prefixes, needle sentences, key/value types, numbers of needles, tokens to generate and
haystack-size search. RULER's length budget is kept: the tokens the model reads (chat template,
prompt and answer prefix) plus the tokens to generate fit in `length`, as close to it as one
haystack unit allows.

Every sample is a pure function of (seed, task, sample index, length, tokenizer), so runs repeat.

    templates.py          task texts and model templates
    haystack.py           word lists, noise sentence, essay haystack, the size search
    task.py               Draft, Context and the Task base class
    niah.py               needle in a haystack (niah_*)
    variable_tracking.py  vt
    words.py              common / frequent words extraction (cwe, fwe)
    qa.py                 question answering on SQuAD / HotpotQA files (qa_1, qa_2)
    loader.py             the task table and the registered `load` (dataset "ruler")
"""
from src.data.ruler.loader import TASKS, load

__all__ = ["TASKS", "load"]
