"""The report tests' results tree, fresh per test."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.report.results_tree import make_tree


@pytest.fixture()
def tree(tmp_path: Path) -> dict[str, Any]:
    """{"results": the tree's root, "runs": its sample rows by (model, method, length), "out": a table folder}."""
    return make_tree(tmp_path)
