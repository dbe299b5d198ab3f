"""The library entry (src.api): the README's example runs as written; methods by name with overrides."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoConfig, AutoModelForCausalLM

from src.api import method_config, method_names, register_method, register_methods
from src.attention.methods import build_method
from src.registry import ConfigError

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_library_example() -> str:
    """The python block of the README section "Use it from your own code"."""
    section = README.read_text().split("## Use it from your own code", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the section must hold exactly one python example"
    return blocks[0]


def test_readme_library_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(readme_library_example(), str(README), "exec"), {})
    assert "PBS density" in capsys.readouterr().out


def _tiny_model(attn_implementation: str) -> torch.nn.Module:
    config = AutoConfig.for_model("llama", vocab_size=128, hidden_size=128, intermediate_size=128,
                                  num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation).eval()


def test_every_method_is_registered_by_name_and_overrides_reach_the_methods_that_have_them() -> None:
    methods = register_methods({"threshold": 0.5}, block_size=16, backend="torch")
    assert sorted(methods) == method_names() and {"dense", "pbs", "pbs_plus", "xattention"} <= set(methods)
    assert methods["pbs"].selector.threshold == 0.5 and methods["pbs"].selector.block_size == 16
    assert methods["xattention"].selector.threshold == 0.5
    assert methods["flexprefill"].selector.block_size == 16  # has block_size, no threshold: untouched otherwise
    ids = torch.randint(0, 128, (1, 96), generator=torch.Generator().manual_seed(1))
    reference = _tiny_model("sdpa")
    dense = _tiny_model("dense")
    with torch.no_grad():
        torch.testing.assert_close(dense(ids).logits, reference(ids).logits, rtol=1e-5, atol=1e-5)
        pbs = _tiny_model("pbs")
        pbs(ids)
    assert len(methods["pbs"].stats.density) == 2  # both layers' prefills ran the method


def test_overrides_are_checked_by_name() -> None:
    with pytest.raises(ConfigError, match=r"method 'pbs' has no parameter 'treshold'; its parameters: name, block_size"):
        method_config("pbs", treshold=0.5)
    with pytest.raises(ConfigError, match=r"no method has the parameter\(s\) 'treshold'"):
        register_methods(treshold=0.5)
    with pytest.raises(ConfigError, match=r"unknown method 'pbz'; allowed: dense, "):
        register_method("pbz")


def test_register_one_method_under_its_own_name_and_dotted_overrides() -> None:
    method = register_method("pbs", {"selector.force_sink": False}, as_name="pbs_no_sink", threshold=0.7, backend="torch")
    assert (method.selector.force_sink, method.selector.threshold) == (False, 0.7)
    assert _tiny_model("pbs_no_sink").config._attn_implementation == "pbs_no_sink"


def test_build_method_takes_a_plain_dict_and_names_missing_keys() -> None:
    plain = OmegaConf.to_container(method_config("pbs", threshold=0.6))
    assert isinstance(plain, dict) and build_method(plain).selector.threshold == 0.6
    with pytest.raises(ConfigError, match=r"method config lacks backend, min_seq_len, permuter, selector"):
        build_method({"name": "pbs"})


def test_density_counts_the_blocks_above_the_diagonal_of_permuted_segments() -> None:
    """At full budget PBS computes every causal block plus, in each whole diagonal segment, the
    blocks above the diagonal: 80 tokens, B=16, S=32 -> 5 blocks, 15 causal, segments (0,1) and
    (2,3) add one block each -> 17/15 > 1 (README: Density)."""
    method = build_method(method_config("pbs", threshold=1.0, block_size=16, segment_size=32, backend="torch"))
    q, k, v = torch.randn(3, 1, 2, 80, 64, generator=torch.Generator().manual_seed(0)).unbind(0)
    method.prefill(q, k, v, scale=0.125, layer_idx=0)
    assert method.stats.summary()["density"] == pytest.approx(17 / 15)


def test_padded_batches_run_dense_with_one_warning_per_run(caplog: pytest.LogCaptureFixture) -> None:
    method = register_method("pbs", as_name="pbs_padded", block_size=16, backend="torch")
    model = _tiny_model("pbs_padded")
    ids = torch.randint(0, 128, (2, 64), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    mask[1, :5] = 0
    with caplog.at_level(logging.WARNING, logger="src.attention.integration"), torch.no_grad():
        model(ids, attention_mask=mask)
        model(ids, attention_mask=mask)
    warnings = [r.getMessage() for r in caplog.records if "ran dense" in r.getMessage()]
    assert warnings == ["method pbs: a padded batch (an attention mask; sparse methods need one unpadded prompt "
                        "per prefill) ran dense SDPA instead (said once per run)"]
    assert method.stats.density == {}  # the method itself never ran
