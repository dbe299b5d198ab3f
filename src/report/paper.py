"""The paper's published figures (results/paper/*.csv) and the maps between its names and ours.

Our runs use our own model and method names; every comparison goes through `paper_model` and
`paper_method` so a difference is only ever taken between the same model and method.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

PAPER_DIR = Path(__file__).resolve().parents[2] / "results" / "paper"
PAPER_TABLES = (
    "table1_longbench",
    "table2_longbench_v2",
    "table3_ruler",
    "table5_selected_blocks",
    "table7_breakdown",
    "ttft_qwen3",
)

METHOD_NAMES = {
    "dense": "Full",
    "minference": "MInference",
    "flexprefill": "FlexPrefill",
    "xattention": "XAttention",
    "meanpooling": "MeanPooling",
    "pbs": "PBS-Attn",
    "pbs_plus": "PBS-Attn+",
}
METHOD_ORDER = list(METHOD_NAMES.values())

_MODEL_NAMES = {"llama318b": "Llama-3.1-8B", "qwen257b1m": "Qwen-2.5-7B-1M", "qwen38b": "Qwen3-8B"}


def _model_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower().replace("instruct", ""))


def paper_model(name: str) -> str | None:
    """The paper's spelling of model `name` (ours or any of the paper's), or None if the paper did not run it.

    Random-weight twins and other models (e.g. SmolLM2) are not the paper's models, so they get None.
    """
    return _MODEL_NAMES.get(_model_key(name))


def paper_method(name: str) -> str:
    """The paper's name of our method `name` (dense -> Full, pbs -> PBS-Attn, ...); unknown names stay."""
    return METHOD_NAMES.get(name, name)


def method_rank(label: str) -> tuple[int, str]:
    """Sort key putting method labels in the paper's row order, variants after their base method."""
    base = label.split(" [")[0]
    return (METHOD_ORDER.index(base) if base in METHOD_ORDER else len(METHOD_ORDER), label)


def length_label(tokens: int) -> str:
    """Context length as the paper writes it: 4096 -> '4K'; lengths not a multiple of 1024 stay digits."""
    return f"{tokens // 1024}K" if tokens % 1024 == 0 else str(tokens)


def label_tokens(label: str) -> int | None:
    """Inverse of `length_label` ('128K' -> 131072); None for labels that are not lengths ('Avg')."""
    match = re.fullmatch(r"(\d+)(K?)", label.strip())
    if not match:
        return None
    return int(match.group(1)) * (1024 if match.group(2) else 1)


def load_table(name: str, directory: Path = PAPER_DIR) -> pd.DataFrame:
    """One published table, with model names in one spelling and methods under their short names."""
    if name not in PAPER_TABLES:
        raise ValueError(f"unknown paper table {name!r}; allowed: {', '.join(PAPER_TABLES)}")
    path = directory / f"{name}.csv"
    if not path.is_file():
        raise ValueError(f"{path}: paper table not found (expected one of {', '.join(PAPER_TABLES)} in {directory})")
    frame = pd.read_csv(path, dtype={"length": str, "context": str})
    if "model" in frame:
        frame["model"] = frame["model"].map(lambda m: paper_model(m) or m)
    if "method" in frame:
        frame["method"] = frame["method"].str.replace(r"\s*\(.*\)$", "", regex=True)
    return frame
