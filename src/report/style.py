"""One look for every figure: a fixed colour and marker per method in the paper's order (Full,
MInference, FlexPrefill, XAttention, MeanPooling, PBS-Attn, PBS-Attn+), the Okabe-Ito colours
(distinguishable with colour-blindness), and the few helpers every figure module uses.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from src.report.keys import ComparableSet  # noqa: E402
from src.report.paper import METHOD_ORDER, length_label  # noqa: E402
from src.report.stats import Interval  # noqa: E402

METHOD_STYLE: dict[str, tuple[str, str]] = dict(zip(METHOD_ORDER, [
    ("#000000", "s"),   # Full
    ("#E69F00", "v"),   # MInference
    ("#56B4E9", "^"),   # FlexPrefill
    ("#009E73", "D"),   # XAttention
    ("#CC79A7", "P"),   # MeanPooling
    ("#D55E00", "o"),   # PBS-Attn
    ("#0072B2", "h"),   # PBS-Attn+
]))
OTHER_STYLE = ("#999999", "x")
# Series that are not methods (kernels, launch shapes): a qualitative cycle of 10 colours and markers.
SERIES_COLORS = plt.get_cmap("tab10").colors
SERIES_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
DPI = 150


@dataclass(frozen=True)
class Figure:
    """A written figure: its file, what it shows, the result files it was drawn from, the
    comparable set it shows (if it shows runs) and a note on how it was measured."""

    path: Path
    title: str
    sources: tuple[str, ...]
    set_text: str = ""
    note: str = ""


def method_base(label: str) -> str:
    """The paper's method name of a label ('PBS-Attn [threshold=0.8]' -> 'PBS-Attn')."""
    return label.split(" [")[0].split(" (")[0]


def method_style(label: str) -> dict[str, Any]:
    """Colour and marker of the label's method, as matplotlib keyword arguments."""
    color, marker = METHOD_STYLE.get(method_base(label), OTHER_STYLE)
    return {"color": color, "marker": marker}


def series_style(number: int) -> dict[str, Any]:
    """Colour and marker of the `number`-th non-method series of a panel."""
    return {"color": SERIES_COLORS[number % len(SERIES_COLORS)], "marker": SERIES_MARKERS[number % len(SERIES_MARKERS)]}


def slug(text: str) -> str:
    """A file-name-safe form of `text`."""
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text).strip("_")


def set_digest(comparable: ComparableSet) -> str:
    """Six hex digits naming a comparable set in file names (stable across rebuilds)."""
    return hashlib.sha1(comparable.describe().encode()).hexdigest()[:6]


def length_axis(ax: Axes, lengths: Iterable[int]) -> None:
    """A log2 context-length x axis ticked at the lengths present, labelled as the paper does."""
    ticks = sorted(set(lengths))
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [length_label(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("context length (tokens)")


def save(fig: plt.Figure, path: Path) -> None:
    """Lay `fig` out, write it as a PNG (anything drawn outside the axes, e.g. a figure legend, kept) and close it."""
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def error_bars(intervals: Iterable[Interval]) -> list[list[float]]:
    """matplotlib's [[below, ...], [above, ...]] from intervals (0 where a value has none)."""
    below, above = [], []
    for found in intervals:
        below.append(found.value - found.low if found.low is not None else 0.0)
        above.append(found.high - found.value if found.high is not None else 0.0)
    return [below, above]
