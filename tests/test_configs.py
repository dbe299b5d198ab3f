"""compose_config: conf/ composed by Hydra as `python -m src.run` would, with one-line errors."""
from __future__ import annotations

import pytest

from src.configs import compose_config
from src.registry import ConfigError


def test_choices_and_overrides_compose_like_the_command_line() -> None:
    cfg = compose_config({"model": "tiny_llama", "method": "pbs"}, ["method.threshold=0.25", "dataset.length=2048"])
    assert (cfg.model.name, cfg.method.name, cfg.dataset.name) == ("tiny-llama", "pbs", "ruler")
    assert cfg.method.threshold == 0.25 and cfg.method.selector.threshold == 0.25  # interpolations follow
    assert cfg.dataset.label == "ruler-2048"
    assert "hydra" not in cfg
    assert compose_config(hydra_node=True).hydra.runtime.choices.method == "dense"


@pytest.mark.parametrize(
    ("choices", "overrides", "message"),
    [
        ({"method": "nope"}, [], r"unknown method 'nope'; allowed: dense, .*pbs"),
        ({}, ["method.no_such_key=1"], r"Could not override 'method.no_such_key'"),
        ({}, ["method.threshold=["], r"no viable alternative"),
    ],
)
def test_bad_choice_or_override_is_one_config_error_line(choices: dict, overrides: list, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        compose_config(choices, overrides)
    assert "\n" not in str(raised.value)
