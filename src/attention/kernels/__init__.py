"""The kernel ops, one folder each (flash-linear-attention's convention):

    <op>/__init__.py   the op's entry point: its contract check and the dispatch by backend name
    <op>/triton.py     the Triton kernels
    <op>/naive.py      the plain-torch reference, written from the definition

    block_sparse    permuted block-sparse causal attention (+ flex.py, layout.py)
    vertical_slash  MInference's vertical-slash attention (+ layout.py: its lookup tables)
    antidiagonal    XAttention's antidiagonal block estimate
    pbs_estimate    PBS-Attn's key permutation and mean-pooling block selection

backends.py names every op's backends and resolves one; triton_utils.py is what the Triton code
shares. Components call an op's entry with their configured backend name and never pick one.
"""
from __future__ import annotations

from src.attention.kernels.antidiagonal import antidiagonal_block_masses
from src.attention.kernels.backends import ATTENTION_BACKENDS, ESTIMATE_BACKENDS, OP_BACKENDS
from src.attention.kernels.block_sparse import block_sparse_attention, block_sparse_attention_reference
from src.attention.kernels.pbs_estimate import mean_pool_selection, segment_permutation
from src.attention.kernels.triton_utils import TileConfig
from src.attention.kernels.vertical_slash import pattern_tables, vertical_slash_attention, vertical_slash_density

__all__ = [
    "ATTENTION_BACKENDS",
    "ESTIMATE_BACKENDS",
    "OP_BACKENDS",
    "TileConfig",
    "antidiagonal_block_masses",
    "block_sparse_attention",
    "block_sparse_attention_reference",
    "mean_pool_selection",
    "pattern_tables",
    "segment_permutation",
    "vertical_slash_attention",
    "vertical_slash_density",
]
