"""`python -m src.report.tables` / `.figures` on broken results files: exit 2 and one line naming the file."""
from __future__ import annotations

import json
from typing import Any

import pytest

from src.report import figures, tables
from tests.report.results_tree import SMOL


@pytest.mark.parametrize(
    ("content", "message"),
    [('{"id": "a", "task": "vt", "score": 0.5}\n{"id": "b", "task"\n', "samples.jsonl:2: not valid JSON"),
     ('{"id": "a", "task": "vt", "score": 1.5}\n', "samples.jsonl:1: score 1.5 is not a number in [0, 1]")],
)
def test_malformed_samples_exit_2_with_one_clear_line(
    tree: dict[str, Any], content: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tree["results"] / "runs" / SMOL / "ruler-4096" / "pbs" / "default" / "samples.jsonl"
    broken.write_text(content)
    for module in (tables, figures):
        with pytest.raises(SystemExit) as exit_info:
            module.main(["--results", str(tree["results"]), "--out", str(tree["out"])])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and str(broken.parent) in err and message in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_malformed_run_json_names_the_missing_key(tree: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    run_json = tree["results"] / "runs" / SMOL / "ruler-8192" / "dense" / "default" / "run.json"
    info = json.loads(run_json.read_text())
    del info["commit"]
    run_json.write_text(json.dumps(info))
    with pytest.raises(SystemExit) as exit_info:
        tables.main(["--results", str(tree["results"]), "--out", str(tree["out"])])
    assert exit_info.value.code == 2
    assert f"{run_json}: missing key(s) commit" in capsys.readouterr().err
