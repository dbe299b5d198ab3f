"""src/report/keys.py: how a run's recorded method config is read against today's defaults."""
from __future__ import annotations

from src.report.keys import MethodConfig


def test_a_run_from_before_a_rule_change_is_labelled_with_the_earlier_rule() -> None:
    """MeanPooling runs recorded before score_diagonal / last_block_pooling existed ran the earlier
    rule: their row names it, and they do not share a cell with runs at today's official default."""
    old = MethodConfig.of({"name": "meanpooling", "threshold": 0.9, "backend": "triton"})
    new = MethodConfig.of({"name": "meanpooling", "threshold": 0.9, "backend": "auto",
                           "score_diagonal": True, "last_block_pooling": "zero_padded"})
    assert old.variant == "last_block_pooling=mean,score_diagonal=False"
    assert new.variant == ""
    assert old.key != new.key
    assert MethodConfig.of({"name": "flexprefill"}).variant == "min_budget=1024"
    assert MethodConfig.of({"name": "xattention", "first_chunk": "official"}).variant == ""


def test_a_concrete_backend_auto_picks_sits_with_auto() -> None:
    """backend triton (CUDA) or torch (CPU) is what auto runs: same row, same cell; flex is a variant."""
    at = {name: MethodConfig.of({"name": "pbs", "backend": name, "last_block_pooling": "zero_padded"}) for name in ("auto", "triton", "torch", "flex")}
    assert at["triton"].variant == at["torch"].variant == at["auto"].variant == ""
    assert at["triton"].key == at["auto"].key == at["torch"].key
    assert at["flex"].variant == "backend=flex" and at["flex"].key != at["auto"].key
