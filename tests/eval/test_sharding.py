"""Data-parallel evaluation: shards cover every sample once and merge to the single-process result."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from src.configs import compose_config
from src.eval.sharding import Shard, merge_rows
from src.models.loader import load_model
from tests.cli import TINY, run_cli, run_module


def run_torchrun(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m src.run` as two torchrun processes on CPU (gloo)."""
    return run_module(
        "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}", "-m", "src.run", *args,
        env={"TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"},
    )


def read_samples(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines()]


def test_shards_partition_the_samples() -> None:
    items = list(range(11))
    shards = [Shard(rank, 3).take(items) for rank in range(3)]
    assert sorted(x for shard in shards for x in shard) == items
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_merge_orders_by_dataset_and_keeps_foreign_rows() -> None:
    rows = [{"id": "c"}, {"id": "a"}, {"id": "zz"}, {"id": "b"}, {"id": "a", "dup": True}]
    merged = merge_rows(rows, ["a", "b", "c"])
    assert [r["id"] for r in merged] == ["a", "b", "c", "zz"]
    assert "dup" not in merged[0]


def test_two_gloo_processes_match_one_process(tmp_path: Path) -> None:
    overrides = [*TINY[:-2], "dataset.num_samples=3", "dataset.length=384"]
    single = run_cli(*overrides, f"run_dir={tmp_path / 'single'}")
    assert single.returncode == 0, single.stderr[-2000:]
    parallel = run_torchrun(29533, *overrides, f"run_dir={tmp_path / 'parallel'}")
    assert parallel.returncode == 0, parallel.stderr[-3000:]
    one, two = read_samples(tmp_path / "single"), read_samples(tmp_path / "parallel")
    assert [r["id"] for r in one] == [r["id"] for r in two] and len(one) == 3
    assert [r["prediction"] for r in one] == [r["prediction"] for r in two]
    assert not list((tmp_path / "parallel").glob("samples.rank*"))


def test_tensor_parallel_pair_runs_each_sample_once_with_the_same_answers(tmp_path: Path) -> None:
    """model.tp_size=2: transformers splits the heads over two processes, PBS runs on each one's
    heads, the pair generates every sample together and only its first process writes."""
    checkpoint = tmp_path / "checkpoint"
    loaded = load_model(compose_config({"model": "tiny_llama"}).model)
    loaded.model.save_pretrained(checkpoint)
    loaded.tokenizer.save_pretrained(checkpoint)
    overrides = [
        "model=llama3.1-8b", f"model.load.path={checkpoint}", "model.name=tiny-llama-checkpoint", "model.max_length=8192",
        "method=pbs", "method.backend=torch", "method.block_size=64", "method.segment_size=128",
        "dataset.tasks=[niah_single_1]", "dataset.num_samples=2", "dataset.length=384",
    ]
    single = run_cli(*overrides, f"run_dir={tmp_path / 'single'}")
    assert single.returncode == 0, single.stderr[-2000:]
    pair = run_torchrun(29534, *overrides, "model.tp_size=2", f"run_dir={tmp_path / 'tp'}")
    assert pair.returncode == 0, pair.stderr[-3000:]
    one, two = read_samples(tmp_path / "single"), read_samples(tmp_path / "tp")
    assert [r["id"] for r in one] == [r["id"] for r in two] and len(two) == 2
    assert [r["prediction"] for r in one] == [r["prediction"] for r in two]
    assert all(r["method_stats"]["density"] is not None for r in two)
    assert not list((tmp_path / "tp").glob("samples.rank*"))


def test_tensor_parallel_needs_a_checkpoint(tmp_path: Path) -> None:
    result = run_cli(*TINY, "model.tp_size=2", f"run_dir={tmp_path / 'bad'}")
    assert result.returncode != 0
    assert "model.tp_size 2 needs a checkpoint" in result.stderr + result.stdout
