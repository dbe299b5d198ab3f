"""Capture one layer's post-RoPE q, k, v from a real model's prefill, for benchmarks and analyses
that need real attention structure (experiments.bench_attention --qkv, coverage studies).

    python -m experiments.capture_qkv --model smollm2 --length 8192 --layer 15 --out qkv_8k.pt
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import torch

from src.attention.integration import install_method
from src.configs import compose_config
from src.data import DATASETS
from src.data.prompting import model_input_text
from src.models.loader import load_model


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
    loaded = load_model(compose_config({"model": model_name}).model)
    method = CapturingMethod(set(layers))
    install_method(loaded.model, method)
    sample = DATASETS.build("ruler", {"tasks": [task], "length": length, "num_samples": 1}).load(loaded.tokenizer)[0]
    ids = loaded.tokenizer(model_input_text(sample, loaded.tokenizer), return_tensors="pt", add_special_tokens=False)["input_ids"]
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
