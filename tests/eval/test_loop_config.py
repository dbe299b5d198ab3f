"""The `eval` config group: checked values with one-line errors, and what a run records of it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from src.configs import compose_config
from src.eval.loop_config import LoopConfig
from src.registry import ConfigError
from tests.cli import TINY, run_cli

DEFAULTS = {"decode_batch_size": 1, "decode_cache_gb": 16, "concurrent_jobs": 1, "warmup_prefills": 0}


def test_defaults_are_the_token_by_token_loop_alone_on_the_device() -> None:
    loop = LoopConfig.from_config(dict(compose_config().eval))
    assert loop == LoopConfig(**DEFAULTS)
    assert loop.decode_limits.batch_size == 1 and loop.decode_limits.cache_bytes == 16e9


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"decode_batch_size": 0}, "eval.decode_batch_size must be a positive integer, got 0"),
        ({"decode_batch_size": 2.5}, "eval.decode_batch_size must be a positive integer, got 2.5"),
        ({"decode_batch_size": True}, "eval.decode_batch_size must be a positive integer, got True"),
        ({"concurrent_jobs": -3}, "eval.concurrent_jobs must be a positive integer, got -3"),
        ({"concurrent_jobs": "6"}, "eval.concurrent_jobs must be a positive integer, got '6'"),
        ({"decode_cache_gb": 0}, "eval.decode_cache_gb must be a positive number of GB, got 0"),
        ({"warmup_prefills": -1}, "eval.warmup_prefills must be a non-negative integer, got -1"),
        ({"decode_batch": 8}, "eval keys must be exactly decode_batch_size, decode_cache_gb, concurrent_jobs, "
                              "warmup_prefills; got concurrent_jobs, decode_batch, decode_batch_size, decode_cache_gb, warmup_prefills"),
    ],
)
def test_bad_value_is_one_config_error_line(change: dict, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        LoopConfig.from_config({**DEFAULTS, **change})
    assert str(raised.value) == message


def test_bad_value_stops_the_cli_with_one_line_before_the_model_loads(tmp_path: Path) -> None:
    result = run_cli(*TINY, "eval.decode_batch_size=0", f"run_dir={tmp_path / 'bad'}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: eval.decode_batch_size must be a positive integer, got 0"]
    assert not (tmp_path / "bad" / "config.yaml").exists()


def test_run_warms_up_decodes_in_groups_and_records_the_concurrency(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_cli(*TINY, "eval.decode_batch_size=2", "eval.concurrent_jobs=3", "eval.warmup_prefills=1", f"run_dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert [row["decode_batch"] for row in rows] == [2, 2]
    assert all(0 <= row["output_tokens"] <= 128 and row["decode_s"] >= 0 for row in rows)
    config = json.loads((run_dir / "run.json").read_text())["config"]
    assert config["eval"] == {"decode_batch_size": 2, "decode_cache_gb": 16, "concurrent_jobs": 3, "warmup_prefills": 1}
    assert all(row["method_stats"]["density"] == 1.0 for row in rows)  # the warm-up's statistics are not counted
