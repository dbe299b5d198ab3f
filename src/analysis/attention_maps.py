"""Block-mass attention maps before and after permutation, selected blocks outlined (paper Fig. 3, 9).

One panel per key order: the log-scaled attention mass of every (query block, key block) of one
head, the blocks a selector (or the oracle) computes filled in translucent red and outlined.
Drawn on a bare matplotlib Figure (Agg canvas), so no GUI backend or pyplot state is touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.collections import LineCollection
from matplotlib.colors import LogNorm, to_rgba
from matplotlib.figure import Figure


@dataclass
class MapPanel:
    """One head's block masses [nq, nk], the selected blocks (bool, same shape) and a title."""

    masses: torch.Tensor
    selected: torch.Tensor
    title: str


def selection_outline(selected: np.ndarray) -> np.ndarray:
    """Cell edges separating selected from unselected blocks, as segments [n, 2, 2] of (x, y)
    in image coordinates (cell (i, j) spans x in j +- 0.5, y in i +- 0.5)."""
    padded = np.pad(selected.astype(bool), 1)
    rows, cols = np.nonzero(padded[1:, 1:-1] != padded[:-1, 1:-1])
    horizontal = np.stack([np.stack([cols - 0.5, rows - 0.5], -1), np.stack([cols + 0.5, rows - 0.5], -1)], 1)
    rows, cols = np.nonzero(padded[1:-1, 1:] != padded[1:-1, :-1])
    vertical = np.stack([np.stack([cols - 0.5, rows - 0.5], -1), np.stack([cols - 0.5, rows + 0.5], -1)], 1)
    return np.concatenate([horizontal, vertical]).reshape(-1, 2, 2)


def _draw(ax: object, panel: MapPanel, norm: LogNorm) -> object:
    masses = panel.masses.detach().double().cpu().numpy()
    selected = panel.selected.detach().bool().cpu().numpy()
    if masses.shape != selected.shape or masses.ndim != 2:
        raise ValueError(f"masses {masses.shape} and selected {selected.shape} must be the same 2-D shape")
    image = ax.imshow(np.ma.masked_less_equal(masses, 0.0), cmap="viridis", norm=norm, interpolation="nearest")
    overlay = np.zeros((*selected.shape, 4))
    overlay[selected] = to_rgba("red", alpha=0.25)
    ax.imshow(overlay, interpolation="nearest")
    width = 0.6 * min(1.0, 32 / max(selected.shape))  # thin outlines where blocks are small
    ax.add_collection(LineCollection(selection_outline(selected), colors="red", linewidths=width))
    ax.set_title(panel.title, fontsize=9)
    ax.set_xlabel("key block (analysed order)")
    ax.set_ylabel("query block")
    return image


def save_attention_maps(path: Path, panels: list[MapPanel], title: str) -> Path:
    """Write the panels side by side, one shared log colour scale, to `path` (PNG); returns it."""
    if not panels:
        raise ValueError("save_attention_maps needs at least one panel")
    positive = torch.cat([p.masses.detach().double().flatten().cpu() for p in panels])
    positive = positive[positive > 0]
    vmax = float(positive.max()) if positive.numel() else 1.0
    norm = LogNorm(vmin=vmax * 1e-6, vmax=vmax, clip=True)
    fig = Figure(figsize=(5.2 * len(panels) + 1.0, 5.0), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    image = None
    for ax, panel in zip(axes, panels):
        image = _draw(ax, panel, norm)
    fig.colorbar(image, ax=list(axes), label="block attention mass (log)")
    fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path
