"""Fixture honesty: `source: fixture` is explicit, `auto` offline goes straight to the fixture
(no download retries, one log line), and the label says so in the composed config and run folder."""
from __future__ import annotations

import logging
import time

import httpx
import pytest

from src.configs import compose_config
from src.data import DATASETS, hub


def test_auto_offline_is_the_fixture_at_once_and_says_so_in_one_line(
    offline, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[dict[str, object]] = []
    monkeypatch.setattr(hub, "hf_hub_download", lambda **kw: calls.append(kw))
    start = time.perf_counter()
    with caplog.at_level(logging.INFO):
        samples = DATASETS.build("longbench", {"tasks": ["trec"], "max_length": 4096}).load(None)
    assert time.perf_counter() - start < 2.0 and not calls
    assert len(samples) == 2
    said = [r.getMessage() for r in caplog.records if "FIXTURE" in r.getMessage()]
    assert len(said) == 1 and "HF_HUB_OFFLINE=1" in said[0] and "not LongBench scores" in said[0]
    assert not [r for r in caplog.records if "Retry" in r.getMessage()]


def test_the_hub_is_probed_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    probes = []

    def unreachable(url: str, timeout: float) -> None:
        probes.append(url)
        raise httpx.ConnectError("no route")

    monkeypatch.setattr(hub.httpx, "head", unreachable)
    hub._probe.cache_clear()
    try:
        assert [hub.resolve_source("auto", None) for _ in range(3)] == ["fixture"] * 3
        assert hub.offline_reason().endswith("unreachable: ConnectError") and len(probes) == 1
        assert hub.resolve_source("auto", "/data/LongBench") == "local" and hub.resolve_source("hub", None) == "hub"
    finally:
        hub._probe.cache_clear()


@pytest.mark.parametrize(("dataset", "overrides", "label"), [
    ("longbench", [], "longbench-fixture"),                 # auto, offline
    ("longbench", ["dataset.source=hub"], "longbench"),     # the hub's own data (or its cache), never the fixture
    ("longbench_v2", [], "longbench_v2-fixture"),
    ("longbench_e", [], "longbench_e-fixture"),
    ("longbench", ["dataset.source=local", "dataset.local_dir=/data/LongBench"], "longbench"),
])
def test_the_label_and_run_folder_name_the_fixture(offline, dataset: str, overrides: list[str], label: str) -> None:
    cfg = compose_config({"dataset": dataset, "method": "dense"}, overrides)
    assert cfg.dataset.label == label and cfg.run_name.split("/")[1] == label


def test_an_explicit_fixture_is_labelled_even_online(online) -> None:
    cfg = compose_config({"dataset": "longbench"}, ["dataset.source=fixture"])
    assert cfg.dataset.label == "longbench-fixture"
    assert compose_config({"dataset": "longbench"}).dataset.label == "longbench"
    assert hub.source_label("longbench-fixture", "fixture") == "longbench-fixture"  # never twice


def test_hub_log_lines_print_once_through_the_root_logger(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    import logging

    import src.data.hub  # noqa: F401  (importing it drops huggingface_hub's own handler)

    with caplog.at_level(logging.WARNING):
        logging.getLogger("huggingface_hub.utils._http").warning("Retrying in 1s [Retry 1/5].")
    assert [r.getMessage() for r in caplog.records] == ["Retrying in 1s [Retry 1/5]."]
    assert "Retrying" not in capfd.readouterr().err  # no second copy from a handler of its own
