"""What every Triton kernel here shares: constants, tl.dot's precision, the launch-shape type,
the input dtypes, the online-softmax fold of one key tile, the device check, tensor-descriptor
alignment, and the interpreter fix the CPU tests need.

Importing this module applies the fix when TRITON_INTERPRET=1, so every kernel module imports it
(directly or through these names) before its kernels can run in the interpreter.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

LOG2E = 1.4426950408889634
DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def dot_precision(dtype: torch.dtype) -> str:
    """tl.dot's input precision for every kernel here: exact fp32 products for fp32 inputs (the
    references' precision, so tests compare tightly), tensor cores for 16-bit inputs."""
    return "ieee" if dtype == torch.float32 else "tf32"


@dataclass(frozen=True)
class TileConfig:
    """Launch shape of a Triton kernel: query (or strided-query) rows and key rows per tile, warps,
    pipeline depth; shared by the block-sparse kernel and the XAttention estimation kernels."""

    block_m: int
    block_n: int
    num_warps: int
    num_stages: int


@triton.jit
def fold_tile(acc, l_i, m_i, qk, v, visible, qk_scale, MASKED: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """Fold one key tile's raw scores qk [BLOCK_M, BLOCK_N] and values v into the online softmax
    (running max m_i and sum l_i of base-2 logits, output acc); the scale is folded into exp2.

    MASKED: only the pairs in `visible` (bool [BLOCK_M, BLOCK_N]) count, and a row that has seen
    none yet keeps m = -inf; unmasked tiles ignore `visible` (None will do).
    """
    if MASKED:
        qk = tl.where(visible, qk * qk_scale, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        # A row that has seen no visible key yet keeps m = -inf; shift it by 0 instead.
        m_shift = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.math.exp2(qk - m_shift[:, None])
    else:
        m_new = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
        m_shift = m_new
        p = tl.math.exp2(qk * qk_scale - m_shift[:, None])
    alpha = tl.math.exp2(m_i - m_shift)
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None]
    acc = tl.dot(p.to(v.dtype), v, acc, input_precision=DOT_PRECISION)
    return acc, l_i, m_new


def tma_ready(t: torch.Tensor) -> torch.Tensor:
    """t itself when a tensor descriptor can address it (16-byte aligned base and row strides),
    else a contiguous copy."""
    aligned = t.data_ptr() % 16 == 0 and all((s * t.element_size()) % 16 == 0 for s in t.stride()[:-1])
    return t if aligned and t.stride(-1) == 1 else t.clone(memory_format=torch.contiguous_format)


ATTENTION_HEAD_DIMS = (64, 128)  # what every Triton attention kernel here is tiled for


def unsupported_attention(q: torch.Tensor) -> str | None:
    """Why a Triton attention kernel cannot run on q [B, H, L, D] (its head dim, its device), or None."""
    if q.shape[-1] not in ATTENTION_HEAD_DIMS:
        return f"head dim {q.shape[-1]} (allowed: {', '.join(map(str, ATTENTION_HEAD_DIMS))})"
    return unsupported_device(q)


@triton.jit
def append_kept(row, count, values, keep):
    """Store the kept values in order at row[count:] (a compaction by cumulative sum); returns
    the new count."""
    kept = keep.to(tl.int32)
    tl.store(row + count + tl.cumsum(kept, 0) - kept, values, mask=keep)
    return count + tl.sum(kept, 0)


def unsupported_device(x: torch.Tensor | torch.device) -> str | None:
    """Why Triton cannot run on x (a tensor, or a device when no tensor exists yet), or None: it
    needs CUDA, or the interpreter switched on (TRITON_INTERPRET=1) before triton is imported, and
    then not bf16, whose matmuls the interpreter gets wrong (off by orders of magnitude, silently),
    so they are refused instead."""
    device = x if isinstance(x, torch.device) else x.device
    if device.type == "cuda":
        return None
    if os.environ.get("TRITON_INTERPRET") != "1":
        return f"it needs CUDA tensors (got {device}) or TRITON_INTERPRET=1 set before import"
    if isinstance(x, torch.Tensor) and x.dtype == torch.bfloat16:
        return "the Triton interpreter (TRITON_INTERPRET=1) computes bf16 matmuls wrongly; use float16 or float32 inputs there"
    return None


def _let_interpreter_index_with_scalars() -> None:
    """Make the Triton interpreter accept loaded scalars as loop bounds under NumPy >= 2.4.

    Triton 3.6's interpreter holds a scalar as a one-element array and converts it with int(),
    which NumPy 2.4 rejects; the kernels' loop bounds are loaded scalars. CPU tests only.
    """
    from triton.runtime import interpreter

    patch_tensor = getattr(interpreter, "_patch_lang_tensor", None)
    if patch_tensor is None:
        return

    def patch_tensor_with_index(tensor: type, scope: object) -> None:
        patch_tensor(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.item()))

    interpreter._patch_lang_tensor = patch_tensor_with_index


if os.environ.get("TRITON_INTERPRET") == "1":
    _let_interpreter_index_with_scalars()
