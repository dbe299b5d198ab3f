"""Key permuters: the order keys take before block selection, one module each, registered by
name in PERMUTERS.

    identity       the natural order (every unpermuted method)
    segmented_key  PBS-Attn: keys sorted in segments by the last queries' attention
    random, greedy, random_query, average_query
                   the other strategies of the paper's Fig. 1 / Table 4, so its analysis runs
                   end to end and any method can use them (method/permuter=random)

A permuter returns a KeyOrder: the natural order, or a permutation that moves keys only inside
segments of its `segment_size` tokens, so causality between segments survives. Importing the
package imports every module in it, so a new permuter is its file, its yaml and its test.
"""
from __future__ import annotations

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
