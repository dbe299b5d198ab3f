"""Capture one layer's post-RoPE q, k, v from a real model's prefill, for benchmarks and analyses
that need real attention structure (bench_attention.py --qkv, coverage studies).

    python experiments/capture_qkv.py --model smollm2 --length 8192 --layer 15 --out qkv_8k.pt
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import src.data.ruler  # noqa: E402,F401  (registers the dataset)
from src.attention.integration import install_method  # noqa: E402
from src.configs import group_config  # noqa: E402
from src.data.base import DATASETS  # noqa: E402
from src.eval.generate import render_prompt  # noqa: E402
from src.models.loader import load_model  # noqa: E402

@dataclass
class CapturingMethod:
    """Dense attention that keeps the q, k, v of the layers asked for."""

    layers: set[int]
    name: str = "capture"
    captured: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)

    def prefill(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, scale: float, layer_idx: int) -> torch.Tensor:
        if layer_idx in self.layers:
            self.captured[layer_idx] = {"q": q.cpu(), "k": k.cpu(), "v": v.cpu()}
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=True)


def capture(model_name: str, length: int, layers: list[int], task: str) -> dict[int, dict[str, torch.Tensor]]:
    """Prefill one RULER prompt of `length` tokens and return {layer: {q, k, v}} (post-RoPE)."""
    loaded = load_model(group_config("model", model_name))
    method = CapturingMethod(set(layers))
    install_method(loaded.model, method)
    sample = DATASETS.build("ruler").load(tokenizer=loaded.tokenizer, tasks=[task], length=length, num_samples=1)[0]
    ids = loaded.tokenizer(render_prompt(sample, loaded.tokenizer), return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        loaded.model(input_ids=ids.to(loaded.model.device), use_cache=False, logits_to_keep=1)
    return method.captured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--length", type=int, default=8192)
    parser.add_argument("--layer", type=int, default=15)
    parser.add_argument("--task", default="niah_multikey_2")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    captured = capture(args.model, args.length, [args.layer], args.task)[args.layer]
    torch.save(captured, args.out)
    print({name: tuple(t.shape) for name, t in captured.items()})


if __name__ == "__main__":
    main()
