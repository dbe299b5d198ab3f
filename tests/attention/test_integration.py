"""The registry path must be invisible for dense attention: same logits as transformers' SDPA."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from src.attention.integration import install_method
from src.attention.methods import build_method
from src.models.loader import CONFIG_DIR
from src.registry import ConfigError
from tests.attention.configs import method_config

VOCAB = 512


def tiny_pair(config_file: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    params = json.loads((CONFIG_DIR / config_file).read_text())
    model_type = params.pop("model_type")
    config = AutoConfig.for_model(model_type, **{**params, "vocab_size": VOCAB})
    torch.manual_seed(0)
    reference = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").eval()
    ours = AutoModelForCausalLM.from_config(config).eval()
    ours.load_state_dict(reference.state_dict())
    return reference, ours


def method_cfg(name: str, **overrides: object) -> object:
    return method_config(name, **overrides)


@pytest.mark.parametrize("config_file", ["tiny-llama.json", "tiny-qwen2.json"])
def test_dense_method_matches_transformers_sdpa_prefill_and_decode(config_file: str) -> None:
    reference, ours = tiny_pair(config_file)
    method = build_method(method_cfg("dense"))
    install_method(ours, method)
    ids = torch.randint(0, VOCAB, (2, 67), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = reference.generate(ids, max_new_tokens=6, do_sample=False, output_logits=True, return_dict_in_generate=True)
        b = ours.generate(ids, max_new_tokens=6, do_sample=False, output_logits=True, return_dict_in_generate=True)
    assert torch.equal(a.sequences, b.sequences)
    assert len(a.logits) == 6
    for step_a, step_b in zip(a.logits, b.logits):
        torch.testing.assert_close(step_a, step_b, rtol=1e-5, atol=1e-5)
    # the method saw the prefill of every layer, and only the prefill
    assert sorted(method.stats.density) == list(range(ours.config.num_hidden_layers))


def test_decode_steps_do_not_reach_the_method() -> None:
    _, ours = tiny_pair("tiny-llama.json")
    method = build_method(method_cfg("dense"))
    calls: list[int] = []
    original = method.prefill

    def counting_prefill(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(1)
        return original(*args, **kwargs)

    method.prefill = counting_prefill  # type: ignore[method-assign]
    install_method(ours, method)
    with torch.no_grad():
        ours.generate(torch.randint(0, VOCAB, (1, 40)), max_new_tokens=4, do_sample=False)
    assert len(calls) == ours.config.num_hidden_layers


@pytest.mark.parametrize("method_name", ["pbs", "meanpooling", "xattention", "pbs_plus", "flexprefill", "minference"])
def test_sparse_methods_at_full_budget_match_dense_logits(method_name: str) -> None:
    full = {
        "pbs": {"threshold": 1.0, "block_size": 16, "segment_size": 32},
        "meanpooling": {"threshold": 1.0, "block_size": 16},
        "xattention": {"threshold": 1.0, "block_size": 16, "stride": 4},
        "pbs_plus": {"threshold": 1.0, "block_size": 16, "segment_size": 32, "stride": 4},
        "flexprefill": {"gamma": 1.0, "block_size": 16},
        "minference": {"vertical_size": 4096, "slash_size": 4096, "last_q": 16},
    }[method_name]
    reference, ours = tiny_pair("tiny-llama.json")
    method = build_method(method_cfg(method_name, backend="torch", **full))
    install_method(ours, method)
    ids = torch.randint(0, VOCAB, (1, 150), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = reference(ids).logits
        got = ours(ids).logits
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_pbs_default_threshold_is_sparse_and_finite() -> None:
    _, ours = tiny_pair("tiny-qwen2.json")
    method = build_method(method_cfg("pbs", backend="torch", block_size=16, segment_size=32))
    install_method(ours, method)
    with torch.no_grad():
        logits = ours(torch.randint(0, VOCAB, (1, 300))).logits
    assert torch.isfinite(logits).all()
    density = method.stats.summary()["density"]
    assert 0.0 < density <= 1.2


def test_unknown_components_and_parameters_fail_clearly() -> None:
    with pytest.raises(ConfigError, match="unknown selector 'nope'; allowed: .*meanpool"):
        build_method(method_cfg("pbs", **{"selector.name": "nope"}))
    with pytest.raises(ConfigError, match="unknown parameter.*bogus"):
        build_method(method_cfg("pbs", **{"selector.bogus": 3}))
    with pytest.raises(ConfigError, match="backend 'cuda'"):
        build_method(method_cfg("pbs", backend="cuda"))
    with pytest.raises(ConfigError, match="segment_size"):
        build_method(method_cfg("pbs", segment_size=200))
