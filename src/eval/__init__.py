"""The evaluation loop: one run from config to results files; loggers registered in `LOGGERS`.

    pipeline.py  run_experiment: method -> dataset -> model -> generation -> metrics -> results
    generate.py  greedy generation: each prefill alone and timed, decoding in groups
    loop_config.py  the `eval` config group (decode group size and memory, concurrency, warm-up)
    stats.py     per-layer, per-head density and timings of one prefill
    results.py   samples.jsonl, summary.csv / .md, run.json
    sharding.py  data-parallel shards and their merge
    loggers.py   where a run's figures go besides results/ ("none", "wandb")

The pipeline is imported by `src.run` when a job starts, not here: it pulls in the attention
library, which itself records its statistics through `stats.py`.
"""
from src.eval.loggers import LOGGERS

__all__ = ["LOGGERS"]
