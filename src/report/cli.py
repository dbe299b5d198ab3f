"""The command line `make tables` and `make figures` share: read results, write outputs, report.

Both entry points take the same folders (results, output, the paper's tables, and --runs for run
roots beyond the committed ones) and treat a broken results file the same way (exit code 2 and
one `error:` line naming it, no traceback), so that contract lives here once.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from src.report.paper import PAPER_DIR

Written = TypeVar("Written")


def run_report(
    argv: list[str] | None,
    *,
    description: str,
    default_out: str,
    write: Callable[[Path, Path, Path, list[Path]], Written],
    summary: Callable[[Written, str], str],
) -> None:
    """Parse --results/--out/--paper/--runs, call `write(results, out, paper, runs)` and print `summary(written, out)`.

    A ValueError from `write` (a malformed results file) exits with code 2 after one line on stderr.
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="results", help="folder holding runs/ and bench/")
    parser.add_argument("--out", default=default_out)
    parser.add_argument("--paper", default=str(PAPER_DIR), help="folder of the paper's tables as CSV")
    parser.add_argument("--runs", action="append", default=[], metavar="DIR",
                        help="a run root to read besides the committed ones (results/runs/* except local), "
                             "e.g. results/runs/local; repeatable")
    args = parser.parse_args(argv)
    try:
        written = write(Path(args.results), Path(args.out), Path(args.paper), [Path(p) for p in args.runs])
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(summary(written, args.out))
