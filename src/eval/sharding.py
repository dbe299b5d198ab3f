"""Data-parallel evaluation: each process of a `torchrun` launch takes every world_size-th sample,
writes its own JSONL, and rank 0 merges them in dataset order once all are done.

With tensor parallelism (model.tp_size > 1) the processes of one tensor-parallel group run the
same samples together: the data-parallel shards are the groups, and only the group's first
process writes. Without torchrun (no WORLD_SIZE in the environment) this is one shard holding
everything.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """This process's share of the samples: data-parallel rank and world, and whether it writes."""

    rank: int
    world_size: int
    writer: bool = True

    @classmethod
    def from_env(cls, tp_size: int = 1) -> "Shard":
        """The shard of this torchrun process, tp_size consecutive processes forming one group."""
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        return cls(rank=rank // tp_size, world_size=max(world // tp_size, 1), writer=rank % tp_size == 0)

    @property
    def is_main(self) -> bool:
        """The process that merges the shards and writes the summary."""
        return self.rank == 0 and self.writer

    def take(self, items: list[T]) -> list[T]:
        """This shard's items: a strided slice, so shards differ by at most one item."""
        return items[self.rank :: self.world_size]

    def log_path(self, run_dir: Path) -> Path:
        if self.world_size == 1:
            return run_dir / "samples.jsonl"
        return run_dir / f"samples.rank{self.rank}-of-{self.world_size}.jsonl"

    def barrier(self) -> None:
        """Wait for every shard (initialising the process group on first use)."""
        if self.world_size == 1:
            return
        if not dist.is_initialized():
            dist.init_process_group(backend="gloo")
        dist.barrier()


def merge_rows(rows: list[dict[str, Any]], order: list[str]) -> list[dict[str, Any]]:
    """Rows deduplicated by id (first wins), in dataset order; rows of ids outside `order` (from an
    earlier, larger run in the same directory) are kept after them, never dropped."""
    position = {sample_id: i for i, sample_id in enumerate(order)}
    unique: dict[str, dict[str, Any]] = {}
    for row in rows:
        unique.setdefault(row["id"], row)
    return sorted(unique.values(), key=lambda row: position.get(row["id"], len(order)))
