"""Data-parallel evaluation: shards cover every sample once and merge to the single-process result."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from src.eval.sharding import Shard, merge_rows
from tests.test_cli import ROOT, TINY, run_cli


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
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    parallel = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
         "-m", "src.run", *overrides, f"run_dir={tmp_path / 'parallel'}"],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=600,
    )
    assert parallel.returncode == 0, parallel.stderr[-3000:]
    read = lambda d: [json.loads(x) for x in (tmp_path / d / "samples.jsonl").read_text().splitlines()]  # noqa: E731
    one, two = read("single"), read("parallel")
    assert [r["id"] for r in one] == [r["id"] for r in two] and len(one) == 3
    assert [r["prediction"] for r in one] == [r["prediction"] for r in two]
    assert not list((tmp_path / "parallel").glob("samples.rank*"))
