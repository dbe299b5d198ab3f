"""src/schema.py: each group's keys and value types come from its YAML defaults (and the factory
that builds it), so a key added to a YAML file or a constructor is allowed with nothing to edit."""
from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from src.configs import CONF_DIR, compose_config
from src.registry import ConfigError
from src.schema import check_config, check_node


def test_a_key_new_in_the_yaml_is_allowed_and_a_typo_is_not(tmp_path: Path) -> None:
    (tmp_path / "method").mkdir()
    (tmp_path / "method" / "mine.yaml").write_text("name: mine\nthreshold: 0.9\nnew_switch: official\n")
    choices = {"method": "mine"}
    check_config(OmegaConf.create({"method": {"name": "mine", "threshold": 0.5, "new_switch": "x"}}), choices, [tmp_path])
    with pytest.raises(ConfigError, match=r"^unknown key method.treshold; allowed: name, threshold, new_switch$"):
        check_config(OmegaConf.create({"method": {"name": "mine", "treshold": 0.5}}), choices, [tmp_path])
    with pytest.raises(ConfigError, match=r"^method.new_switch must be a string \(default 'official'\), got 3$"):
        check_config(OmegaConf.create({"method": {"name": "mine", "new_switch": 3}}), choices, [tmp_path])


def test_a_constructor_parameter_missing_from_the_yaml_is_allowed() -> None:
    """+method.permuter.seed is the random permuter's own parameter, though its YAML names it too;
    +method.selector.stride is not a meanpool parameter."""
    cfg = compose_config({"method": "meanpooling", "method/permuter": "random"}, ["method.permuter.seed=3"])
    assert cfg.method.permuter.seed == 3
    with pytest.raises(ConfigError, match=r"^unknown key method.selector.stride; allowed: name, block_size, threshold, force_sink, score_diagonal, last_block_pooling, backend, force_diagonal$"):
        compose_config({"method": "pbs"}, ["+method.selector.stride=4"])


def test_types_follow_the_defaults() -> None:
    defaults = {"n": 1, "x": 0.5, "flag": True, "tasks": ["a"], "free": None, "linked": "${..n}", "load": {"path": "p"}, "extra": {}}
    check_node("g", {"n": 2.5, "x": 1, "flag": False, "tasks": [], "free": [1], "linked": 3, "load": {"path": "q"}, "extra": {"any": 1}}, defaults)
    for node, message in [
        ({"n": True}, "g.n must be a number (default 1), got True"),
        ({"flag": 1}, "g.flag must be true or false (default True), got 1"),
        ({"tasks": "a"}, "g.tasks must be a list (default ['a']), got 'a'"),
        ({"load": {"paht": "q"}}, "unknown key g.load.paht; allowed: path"),
    ]:
        with pytest.raises(ConfigError, match=f"^{message.replace('(', '.').replace(')', '.').replace('[', '.').replace(']', '.')}$"):
            check_node("g", node, defaults)


def test_every_shipped_option_passes_its_own_schema() -> None:
    for group in ("model", "method", "dataset", "logger"):
        for option in sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")):
            overrides = ["dataset.source=fixture"] if group == "dataset" and option != "ruler" else []
            compose_config({group: option}, overrides)
