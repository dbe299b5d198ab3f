"""One run, in the order data flows: config -> model -> attention method -> dataset -> generation
-> metrics -> results files -> summary table.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from src.attention.integration import install_method
from src.attention.methods import SparsePrefillMethod, build_method
from src.data import DATASETS, Dataset, Sample
from src.data.base import dataset_params
from src.data.hub import resolved_source
from src.eval.generate import check_prompt_lengths, generate_all, prefill, prompt_ids
from src.eval.loggers import LOGGERS
from src.eval.loop_config import LoopConfig
from src.eval.results import SampleLog, comparison_record, rows_frame, saved_rows, write_jsonl, write_summary
from src.eval.sharding import Shard, merge_rows
from src.attention.stats import DENSITY_DEFINITION, StatsRecorder
from src.metrics import get_metric
from src.models.loader import LoadedModel, load_model, resolve_device
from src.provenance import contributing_commits, git_commit, measured_on
from src.registry import ConfigError

log = logging.getLogger(__name__)


def configured_dataset(cfg: DictConfig) -> Dataset:
    """The configured benchmark bound to its parameters; an unknown name or key is a ConfigError
    here, before any model is loaded."""
    params = OmegaConf.to_container(cfg.dataset, resolve=True)
    return DATASETS.build(cfg.dataset.name, dataset_params(params))


def load_samples(cfg: DictConfig, dataset: Dataset, loaded: LoadedModel) -> list[Sample]:
    """Samples of the configured benchmark, checked for emptiness, duplicates and length."""
    samples = dataset.load(loaded.tokenizer)
    if not samples:
        raise ConfigError(f"dataset {cfg.dataset.label!r} produced no samples; check dataset.tasks and its files")
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        raise ValueError(f"dataset {cfg.dataset.label!r} produced duplicate sample ids")
    return samples


def score_row(sample: Sample, prediction: str) -> float:
    if sample.first_line_only:
        prediction = prediction.lstrip("\n").split("\n")[0]
    return float(get_metric(sample.metric)(prediction, sample.references, sample))


class JobParts(NamedTuple):
    """What a job is built from, in the order it is built: loop settings, the method recording
    into `stats`, the dataset, the model with the method installed, the samples."""

    loop: LoopConfig
    stats: StatsRecorder
    method: SparsePrefillMethod
    dataset: Dataset
    loaded: LoadedModel
    samples: list[Sample]


def check_sample_length(cfg: DictConfig) -> None:
    """A dataset whose `length` counts every token of a sample (RULER's prompt and answer) must fit
    the model's context: refused from the config, before the model loads or a sample is built.
    (Every prompt is also checked once tokenized, before the first forward pass: generate_all.)"""
    length, context = cfg.dataset.get("length"), cfg.model.max_length
    if isinstance(length, int) and isinstance(context, int) and length > context:
        raise ConfigError(
            f"dataset.length {length} is over model.max_length {context}; lower dataset.length "
            "or extend the model's context (RoPE scaling)"
        )


def set_up_job(cfg: DictConfig) -> JobParts:
    """The configured job's parts; every config error is raised before the model loads."""
    loop = LoopConfig.from_config(OmegaConf.to_container(cfg.eval, resolve=True))
    stats = StatsRecorder(timing=bool(cfg.timing))
    method = build_method(cfg.method, stats, device=resolve_device(cfg.model.device))
    dataset = configured_dataset(cfg)
    check_sample_length(cfg)
    loaded = load_model(cfg.model)
    install_method(loaded.model, method)
    return JobParts(loop, stats, method, dataset, loaded, load_samples(cfg, dataset, loaded))


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run, with what it had saved: the one line `python -m src.run` prints."""

    def __init__(self, run_dir: Path, saved: int, total: int | None) -> None:
        of = "" if total is None else f" of {total}"
        super().__init__(f"interrupted: {saved}{of} samples saved in {run_dir}; rerun the same command to resume")


def run_experiment(cfg: DictConfig) -> pd.DataFrame:
    """Run (or resume) the configured job and return its summary table; Ctrl-C is a
    RunInterrupted saying how many samples are saved (each finished sample is, as it finishes)."""
    run_dir = Path(cfg.run_dir)
    started, commit = time.perf_counter(), git_commit()
    parts = None
    try:
        parts = set_up_job(cfg)
        return run_job(cfg, parts, started=started, commit=commit)
    except KeyboardInterrupt:
        saved = {row["id"] for row in saved_rows(run_dir)}
        if parts is not None:
            saved &= {sample.id for sample in parts.samples}
        raise RunInterrupted(run_dir, len(saved), None if parts is None else len(parts.samples)) from None


def run_job(cfg: DictConfig, parts: JobParts, *, started: float, commit: str) -> pd.DataFrame:
    """Generate, score and save the samples not done yet, then write the summary table; rows carry
    `commit`, run.json the wall time since `started` (perf_counter, before the job's set-up)."""
    loop, stats, method, dataset, loaded, samples = parts
    run_dir = Path(cfg.run_dir)
    shard = Shard.from_env(int(cfg.model.tp_size))
    sample_log = SampleLog(shard.log_path(run_dir))
    if shard.is_main:
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    done = sample_log.done_ids()
    todo = [s for s in shard.take(samples) if s.id not in done]
    log.info(
        "%s: %d samples, %d already done, %d for shard %d/%d, results in %s",
        cfg.dataset.label, len(samples), len(done), len(todo), shard.rank, shard.world_size, run_dir,
    )
    logger = LOGGERS.build(
        cfg.logger.name,
        {**{k: v for k, v in cfg.logger.items() if k != "name"}, **_logger_context(cfg)},
    )

    method_stats: dict[str, dict[str, Any]] = {}

    def take_method_stats(sample: Sample) -> None:
        method_stats[sample.id] = stats.summary()
        stats.reset()

    if todo and loop.warmup_prefills:  # untimed: one-time compiles and allocations
        first_ids = prompt_ids(loaded.tokenizer, todo[0])
        check_prompt_lengths(todo[:1], [first_ids], loaded.max_length)
        for _ in range(loop.warmup_prefills):
            prefill(loaded.model, todo[0], first_ids)
    stats.reset()
    generations = generate_all(
        loaded.model, loaded.tokenizer, todo, loop.decode_limits,
        max_input_tokens=loaded.max_length, on_prefill=take_method_stats,
    )
    for result in tqdm(generations, total=len(todo), desc=f"{method.name} on {cfg.dataset.label}", unit="sample"):
        sample = result.sample
        row = {
            "id": sample.id,
            "task": sample.task,
            "prediction": result.text,
            "references": sample.references,
            "score": score_row(sample, result.text),
            "input_tokens": result.input_tokens,
            "output_tokens": result.output_tokens,
            "prefill_s": round(result.prefill_s, 4),
            "decode_s": round(result.decode_s, 4),
            "decode_batch": result.decode_batch,
            "method_stats": method_stats.pop(sample.id),
            "meta": sample.meta,
            "commit": commit,
        }
        if shard.writer:
            sample_log.append(row)
            logger.log_sample(row)

    shard.barrier()
    if not shard.is_main:
        logger.finish()
        return pd.DataFrame()
    rows = merge_rows(sample_log.all_rows(), [s.id for s in samples])
    write_jsonl(run_dir / "samples.jsonl", rows)
    for shard_file in run_dir.glob("samples.rank*-of-*.jsonl"):
        shard_file.unlink()
    wanted = {s.id for s in samples}
    scored = [row for row in rows if row["id"] in wanted]
    frame = rows_frame(scored)
    summary = dataset.summarize(frame)
    config = OmegaConf.to_container(cfg, resolve=True)
    source = resolved_source(config["dataset"])
    provenance = {
        "run": str(run_dir),
        "model": loaded.name,
        "method": method.name,
        "dataset": cfg.dataset.label,
        **measured_on(loaded.model.device),
        "commits": contributing_commits(scored),  # every commit that wrote a row (resumed runs mix)
        "wall_s": round(time.perf_counter() - started, 1),  # this invocation, setup to summary
        "dataset_source": source,
        "samples": len(frame),
        "mean_density": _mean(frame, "density"),
        "density_definition": DENSITY_DEFINITION,
        "mean_prefill_s": _mean(frame, "prefill_s"),
        "mean_input_tokens": _mean(frame, "input_tokens"),
        "comparison": comparison_record(config, scored, source),
        "config": config,
    }
    table = write_summary(run_dir, summary, provenance)
    logger.log_summary(summary, provenance)
    logger.finish()
    print(f"\n{loaded.name} | {method.name} | {cfg.dataset.label} | {provenance['device']}\n{table}")
    print(f"mean density {provenance['mean_density']}, mean prefill {provenance['mean_prefill_s']} s; results in {run_dir}")
    return summary


def _mean(frame: pd.DataFrame, column: str) -> float | None:
    values = frame[column].dropna() if column in frame else []
    return round(float(values.mean()), 4) if len(values) else None


def _logger_context(cfg: DictConfig) -> dict[str, Any]:
    if cfg.logger.name == "none":
        return {}
    return {"config": OmegaConf.to_container(cfg, resolve=True), "name": str(cfg.run_name)}
