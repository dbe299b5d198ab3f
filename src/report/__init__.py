"""`make tables` / `make figures`: our results beside the paper's published figures.

    collect.py           runs and benchmark files, checked (a broken file is one clear error)
    paper.py             the paper's tables as data, and its names of models and methods
    comparison.py        a paper table beside ours: row groups, differences, markdown / LaTeX
    tables.py            the table builders; `python -m src.report.tables`
    figures.py           the figures; `python -m src.report.figures`
    coverage_figures.py  figures and tables of experiments.analysis_coverage
    cli.py               the command line tables and figures share

The two entry points are not imported here, so `python -m` runs each as its own module.
"""
from src.report import collect, comparison, paper

__all__ = ["collect", "comparison", "paper"]
