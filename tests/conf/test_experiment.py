"""conf/experiment/*.yaml: each composes through Hydra, names the expected model, method and
dataset, carries a sweep in hydra.sweeper.params, and every job of that sweep is a valid config
(known method and model names, segment sizes that are multiples of block sizes).

Hydra composition only, no model: about 10 s (one test imports src.attention.methods, hence
torch, to check that an invalid block / segment pair stops with one clear error).
"""
from __future__ import annotations

import functools

import pytest
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from src.configs import CONF_DIR, compose_config
from src.registry import ConfigError

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
METHODS = {p.stem for p in (CONF_DIR / "method").glob("*.yaml")}
MODELS = {p.stem for p in (CONF_DIR / "model").glob("*.yaml")}
DATASETS = {p.stem for p in (CONF_DIR / "dataset").glob("*.yaml")}
PAPER_METHODS = {"dense", "pbs", "meanpooling", "xattention", "flexprefill", "minference"}
PAPER_MODELS = {"llama3.1-8b", "qwen2.5-7b-1m"}

# experiment -> (method.name, dataset.name, model.name) of the composed config before any sweep
EXPECTED = {
    "paper_table1": ("dense", "longbench", "llama3.1-8b"),
    "paper_table2": ("dense", "longbench_v2", "llama3.1-8b"),
    "paper_table3_ruler": ("dense", "ruler", "llama3.1-8b"),
    "ablation_segment_size": ("pbs", "longbench", "llama3.1-8b"),
    "ablation_block_size": ("pbs", "longbench", "llama3.1-8b"),
    "ablation_threshold": ("pbs", "longbench", "llama3.1-8b"),
    "ablation_gqa_permutation": ("pbs", "longbench", "llama3.1-8b"),
    "embedded_sweep": ("pbs", "ruler", "smollm2-135m-instruct"),
    "compare": ("dense", "ruler", "smollm2-135m-instruct"),
}
COMPARE_POINTS = {p.stem for p in (CONF_DIR / "compare").glob("*.yaml")}
# experiment -> keys its sweep must vary, and values some of them must cover
SWEEPS = {
    "paper_table1": {"model": PAPER_MODELS, "method": PAPER_METHODS},
    "paper_table2": {"model": PAPER_MODELS, "method": PAPER_METHODS},
    "paper_table3_ruler": {
        "model": PAPER_MODELS,
        "method": PAPER_METHODS | {"pbs_plus"},
        "dataset.length": {"4096", "8192", "16384", "32768", "65536", "131072"},
    },
    "ablation_segment_size": {"method.segment_size": {"256", "512", "1024", "2048"}},
    "ablation_block_size": {"method.block_size": {"64", "128", "256"}},
    "ablation_threshold": {"method.threshold": {"0.9"}},
    "ablation_gqa_permutation": {"method.gqa_permutation": {"head", "group"}},
    "embedded_sweep": {"method.segment_size": set(), "method.block_size": set()},
    "compare": {"+compare": COMPARE_POINTS},
}
# keys that do not touch the method: held at one value when jobs are expanded, and checked per
# model against the model's max_length instead
UNEXPANDED = {"model", "dataset.length"}


@functools.lru_cache(maxsize=None)
def compose_experiment(name: str, *overrides: str, hydra_node: bool = True) -> DictConfig:
    """The composed config of `experiment=name` plus overrides (cached: tests only read it);
    without the hydra node when not needed (a quarter faster)."""
    return compose_config({"experiment": name}, overrides, hydra_node=hydra_node)


def sweep_values(params: DictConfig) -> dict[str, list[str]]:
    """hydra.sweeper.params as {key: [values]}, parsed with Hydra's own override grammar."""
    values = {}
    for override in OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()]):
        if override.is_sweep_override():
            values[override.get_key_element()] = list(override.sweep_string_iterator())
        else:
            values[override.get_key_element()] = [override.get_value_element_as_str()]
    return values


def sweep_jobs(params: DictConfig, *command_line: str) -> list[list[str]]:
    """The overrides of every job `python -m src.run -m experiment=... <command_line>` launches:
    the config's sweep params then the command line, expanded by Hydra's BasicSweeper itself."""
    arguments = [f"{k}={v}" for k, v in params.items()] + list(command_line)
    overrides = OverridesParser.create().parse_overrides(arguments)
    (batch,) = BasicSweeper.split_arguments(overrides, None)
    return batch


def test_every_experiment_is_known() -> None:
    assert set(EXPERIMENTS) == set(EXPECTED), "add new conf/experiment files to EXPECTED and SWEEPS"


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_with_a_sweep(name: str) -> None:
    cfg = compose_experiment(name)
    method, dataset, model = EXPECTED[name]
    assert (cfg.method.name, cfg.dataset.name, cfg.model.name) == (method, dataset, model)
    params = cfg.hydra.sweeper.params
    assert params, f"{name}: no hydra.sweeper.params"
    values = sweep_values(params)
    for key, wanted in SWEEPS[name].items():
        assert key in values, f"{name}: sweep does not vary {key}"
        assert len(values[key]) >= 2, f"{name}: sweep of {key} has one value"
        assert wanted <= set(values[key]), f"{name}: {key} misses {wanted - set(values[key])}"
    for value in values.get("method", []):
        assert value in METHODS, f"{name}: unknown method {value!r}; conf/method has {sorted(METHODS)}"
    for value in values.get("model", []):
        assert value in MODELS, f"{name}: unknown model {value!r}"
    for value in values.get("dataset", []):
        assert value in DATASETS, f"{name}: unknown dataset {value!r}"


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_job_of_the_sweep_is_valid(name: str) -> None:
    """Compose each job of the sweep and check what a run checks first: a known method, and a
    segment_size that is a multiple of the block_size. Model and length are held at one value
    (the first model, the shortest length): they do not touch the method."""
    params = compose_experiment(name).hydra.sweeper.params
    values = sweep_values(params)
    held = [f"{k}={values[k][0]}" for k in UNEXPANDED & values.keys()]
    jobs = sweep_jobs(params, *held)
    expected = 1
    for key, options in values.items():
        expected *= 1 if key in UNEXPANDED else len(options)
    assert len(jobs) == expected
    for overrides in jobs:
        cfg = compose_experiment(name, *overrides, hydra_node=False)
        assert cfg.method.name in METHODS
        block, segment = cfg.method.get("block_size"), cfg.method.get("segment_size")
        if block is not None and segment is not None:
            assert segment % block == 0, f"{name} {overrides}: segment_size {segment} is not a multiple of block_size {block}"
        for override in overrides:
            key, _, value = override.partition("=")
            if key.startswith("method."):
                assert str(cfg.method[key.removeprefix("method.")]) == value, f"{name}: {override} did not reach the method"
    # every swept model takes the longest context the experiment asks of it
    for model in values.get("model", [str(compose_experiment(name).hydra.runtime.choices.model)]):
        cfg = compose_experiment(name, f"model={model}", hydra_node=False)
        lengths = [int(v) for v in values.get("dataset.length", [])] + [
            int(OmegaConf.select(cfg, k)) for k in ("dataset.length", "dataset.max_length") if OmegaConf.select(cfg, k) is not None
        ]
        assert max(lengths) <= cfg.model.max_length, f"{name}: {model} holds {cfg.model.max_length} tokens, asked {max(lengths)}"


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_sweep_size(name: str) -> None:
    """The number of runs experiments/README.md states for each experiment."""
    runs = {"paper_table1": 12, "paper_table2": 12, "paper_table3_ruler": 84, "ablation_segment_size": 4,
            "ablation_block_size": 3, "ablation_threshold": 10, "ablation_gqa_permutation": 2, "embedded_sweep": 4,
            "compare": 17}
    assert len(sweep_jobs(compose_experiment(name).hydra.sweeper.params)) == runs[name]


def test_compare_points_are_every_method_at_its_defaults_plus_two_values_of_its_knob() -> None:
    """experiment=compare: each conf/compare point picks its method and sets the value its name says."""
    methods, variants = set(), 0
    for point in sorted(COMPARE_POINTS):
        cfg = compose_experiment("compare", "timing=true", f"+compare={point}", hydra_node=False)
        name, _, change = point.partition("_threshold") if "_threshold" in point else point.partition("_gamma")
        assert cfg.method.name == name and cfg.timing is True and cfg.dataset.num_samples == 20
        if change:
            knob = "threshold" if "_threshold" in point else "gamma"
            assert cfg.method[knob] == float(change) and cfg.method.selector[knob] == float(change)
            variants += 1
        else:
            methods.add(name)
    assert methods == METHODS and variants == 10


def test_command_line_narrows_a_sweep() -> None:
    """`python -m src.run -m experiment=paper_table1 model=llama3.1-8b` runs one model's 6 jobs:
    a command-line override of a swept key replaces that key's sweep."""
    params = compose_experiment("paper_table1").hydra.sweeper.params
    jobs = sweep_jobs(params, "model=llama3.1-8b")
    assert len(jobs) == 6 and all("model=llama3.1-8b" in job for job in jobs)
    cfg = compose_experiment("paper_table1", "method=pbs")
    assert cfg.method.name == "pbs" and cfg.dataset.harness == "opencompass"


def test_plus_experiment_is_refused() -> None:
    """The defaults list holds `experiment: null`, so the group is selected with `experiment=`."""
    with pytest.raises(ConfigError, match="Multiple values for experiment"):
        compose_config(overrides=["+experiment=embedded_sweep"])


def test_invalid_block_segment_combination_fails_clearly() -> None:
    """A job whose segment size is not a multiple of its block size stops at build_method with
    one line naming both values (src/run.py prints it; the model is never loaded)."""
    from src.attention.methods import build_method

    cfg = compose_config({"method": "pbs"}, ["method.backend=torch", "method.block_size=256", "method.segment_size=384"]).method
    with pytest.raises(ConfigError, match="segment_size 384 is not a multiple of block_size 256"):
        build_method(cfg)
