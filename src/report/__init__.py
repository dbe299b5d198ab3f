"""`make tables` / `make figures`: results -> comparison with the paper's published figures.

    collect.py           runs (committed roots unless told otherwise) and benchmark files, checked
    keys.py              comparable sets and cells: which results may be compared, and how a row is named
    scores.py            the per-sample scores behind each number, grouped as the benchmark averages them
    stats.py             95% bootstrap intervals (scipy) and paired differences to dense
    paper.py             the paper's tables as data, and its names of models and methods
    comparison.py        a paper table beside ours: row groups, differences, markdown / LaTeX
    tables.py            the table builders; `python -m src.report.tables`
    tradeoff.py          accuracy vs measured prefill speedup and density: points, Pareto fronts, table
    style.py             one colour and marker per method, shared figure helpers
    tradeoff_figures.py  the accuracy-vs-cost figures
    figures.py           every figure; `python -m src.report.figures`
    sweep.py             the Hydra callback writing a multirun's combined table
    coverage_figures.py  figures and tables of experiments.analysis_coverage
    cli.py               the command line tables and figures share

The two entry points are not imported here, so `python -m` runs each as its own module.
"""
from src.report import collect, comparison, paper

__all__ = ["collect", "comparison", "paper"]
