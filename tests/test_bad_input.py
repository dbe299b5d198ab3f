"""Issue 14 rows 1-5 as a new user meets them, by subprocess on the tiny random model: bad input is
one line and exit 2 before the model loads, sparse methods run on a CPU by default, Ctrl-C says
what is saved, and a torn last row does not block the resume."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from src.configs import check_command_line
from src.registry import ConfigError
from tests.cli import CLI_ENV, ROOT, TINY, module_env, run_cli

MODEL_LOADED = "src.models.loader"  # the logger that says "loaded <model>"


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a run refused before the model loaded (exit 2)."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1, result.stderr[-3000:]
    assert MODEL_LOADED not in result.stdout + result.stderr
    return lines[0]


# Row by row, what the command line is refused with (checked in-process: check_command_line is
# what `python -m src.run` runs before Hydra; the subprocess tests below check the exit and output).
REFUSED = [
    # row 2: unknown keys, with and without +, in every group
    (["method=pbs", "+method.treshold=0.5"],
     "unknown key method.treshold; allowed: name, block_size, segment_size, threshold, force_sink, "
     "last_block_pooling, permutation_scoring, gqa_permutation, backend, estimate_backend, min_seq_len, permuter, selector"),
    (["method.treshold=0.5"], "Could not override 'method.treshold'. To append to your config use +method.treshold=0.5"),
    (["method=pbs", "+method.selector.treshold=0.5"], "unknown key method.selector.treshold; allowed: name, block_size, threshold"),
    (["method=pbs", "+method.permuter.seed=1"], "unknown key method.permuter.seed; allowed: name, segment_size"),
    (["+model.foo=1"], "unknown key model.foo; allowed: name, source, load, max_length"),
    (["+model.load.foo=1"], "unknown key model.load.foo; allowed: config_file, tokenizer_path"),
    (["+eval.foo=1"], "unknown key eval.foo; allowed: decode_batch_size, decode_cache_gb"),
    (["+logger.foo=1"], "unknown key logger.foo; allowed: name"),
    (["dataset=longbench", "+dataset.length=1"], "unknown key dataset.length; allowed: name, label, tasks, max_samples"),
    # row 4: unknown options (in a sweep too), values of the wrong type
    (["method=nope"], "unknown method 'nope'; allowed: dense, flexprefill, meanpooling, minference, pbs, pbs_plus, xattention"),
    (["-m", "method=dense,nope"], "unknown method 'nope'; allowed: dense, flexprefill"),
    (["model=nope"], "unknown model 'nope'; allowed: llama3.1-8b,"),
    (["dataset=nope"], "unknown dataset 'nope'; allowed: longbench, longbench_e, longbench_v2, ruler"),
    (["logger=nope"], "unknown logger 'nope'; allowed: none, wandb"),
    (["dataset.length=abc"], "dataset.length must be a number (default 4096), got 'abc'"),
    (["dataset.num_samples=true"], "dataset.num_samples must be a number (default 1), got True"),
    (["dataset=longbench", "dataset.local_dir=/nonexistent"],
     "dataset.local_dir '/nonexistent' does not exist; allowed: an existing file or directory, or null"),
]


@pytest.mark.parametrize(("overrides", "message"), REFUSED)
def test_the_command_line_is_refused_with_one_line(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        check_command_line([*TINY, *overrides] if overrides[0] != "dataset=longbench" else ["model=tiny_llama", *overrides])
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


def test_good_command_lines_pass() -> None:
    check_command_line([*TINY, "-m", "method=pbs,xattention", "method.threshold=0.8,0.9", "hydra.job.chdir=false"])
    check_command_line(["experiment=embedded_sweep", "--cfg", "job"])
    check_command_line(["-m", "experiment=compare"])


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (["method=pbs", "method.backend=triton"],  # row 1: an explicit triton on a CPU, by its key
         "error: method.backend 'triton' cannot run on cpu: it needs CUDA tensors (got cpu) or TRITON_INTERPRET=1 "
         "set before import; use method.backend=auto (Triton on CUDA, torch on cpu) or another backend"),
        (["method=pbs", "+method.treshold=0.5"], "error: unknown key method.treshold; allowed: name, block_size"),  # row 2
        (["model.max_length=256"],  # row 3, from the config
         "error: dataset.length 512 is over model.max_length 256; lower dataset.length or extend the model's context (RoPE scaling)"),
        (["-m", "method=dense,nope"], "error: unknown method 'nope'; allowed: dense, flexprefill"),  # row 4
        (["dataset.length=abc"], "error: dataset.length must be a number (default 4096), got 'abc'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_the_model_loads(tmp_path: Path, overrides: list[str], line: str) -> None:
    result = run_cli(*TINY, *overrides, f"run_dir={tmp_path / 'run'}", f"results_root={tmp_path}", unset=("TRITON_INTERPRET",))
    assert one_error_line(result).startswith(line)
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_a_missing_local_dir_is_one_line_before_the_model_loads(tmp_path: Path) -> None:
    result = run_cli("model=tiny_llama", "dataset=longbench", "dataset.source=local", "dataset.local_dir=/nonexistent",
                     f"run_dir={tmp_path / 'run'}")
    assert one_error_line(result) == (
        "error: dataset.local_dir '/nonexistent' does not exist; allowed: an existing file or directory, or null"
    )


def test_a_prompt_over_the_context_is_caught_once_tokenized_before_any_forward(tmp_path: Path) -> None:
    result = run_cli("model=tiny_llama", "model.max_length=64", "dataset=longbench", "dataset.source=fixture",
                     "dataset.tasks=[trec]", "dataset.max_samples=1", f"run_dir={tmp_path / 'run'}")
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"error: sample \S+ has \d+ tokens, over model.max_length 64; .*", last), last
    assert not (tmp_path / "run" / "samples.jsonl").exists()


def test_sparse_methods_run_on_a_cpu_by_default(tmp_path: Path) -> None:
    """Row 1: the CPU sweep that used to stop at pbs (backend auto: torch on a CPU)."""
    result = run_cli("-m", "model=tiny_llama", "dataset.tasks=[niah_single_1]", "dataset.num_samples=1", "dataset.length=512",
                     "method=dense,pbs", f"results_root={tmp_path}", unset=("TRITON_INTERPRET",))
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = sorted(tmp_path.glob("tiny-llama/ruler-512/*/*/summary.csv"))
    assert [p.parts[-3] for p in summaries] == ["dense", "pbs"]
    rows = [json.loads(line) for line in (summaries[1].parent / "samples.jsonl").read_text().splitlines()]
    # PBS's plan ran (dense is exactly 1; at 512 tokens PBS computes its whole diagonal segments: 7/6)
    assert rows[0]["method_stats"]["density"] == pytest.approx(7 / 6)


def test_ctrl_c_says_what_is_saved_and_a_rerun_resumes_past_a_torn_last_row(tmp_path: Path) -> None:
    """Row 5: SIGINT after the first saved row prints one line (exit 130); the last row is then torn
    as a kill in the middle of its write would leave it, and the rerun drops it, recomputes that
    sample and finishes the rest."""
    run_dir = tmp_path / "run"
    args = ["model=tiny_llama", "dataset.tasks=[niah_single_1]", "dataset.num_samples=6", "dataset.length=512",
            f"run_dir={run_dir}"]
    process = subprocess.Popen([sys.executable, "-m", "src.run", *args], cwd=ROOT, env=module_env(CLI_ENV),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = run_dir / "samples.jsonl"
    deadline = time.monotonic() + 300
    while not (log.is_file() and log.read_text().count("\n") >= 1) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    pattern = rf"interrupted: (\d+) of 6 samples saved in {re.escape(str(run_dir))}; rerun the same command to resume"
    match = re.fullmatch(pattern, last)
    assert match and "Traceback" not in stderr, stderr[-3000:]
    saved = int(match.group(1))
    lines = log.read_text().splitlines()
    assert 1 <= saved < 6 and len(lines) == saved

    log.write_text("".join(line + "\n" for line in lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    output = resumed.stdout + resumed.stderr  # Hydra's log goes to stdout
    assert "dropped a torn last line (a write cut short by a kill); its sample is recomputed" in output
    assert f"{saved - 1} already done" in output
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rows) == 6 and len({row["id"] for row in rows}) == 6
