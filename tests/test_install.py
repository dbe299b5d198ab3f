"""`pip install .` gives a working `python -m src.run` outside the checkout, configs included."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installed_in_a_fresh_venv_runs_outside_the_checkout(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # the project's dependencies, without its own editable install (a .pth path line runs no .pth hooks)
    Path(site, "project_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", site, str(ROOT)],
        capture_output=True, text=True,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    assert (Path(site) / "src" / "conf" / "method" / "pbs.yaml").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [python, "-m", "src.run", "model=tiny_llama", "method=pbs", "method.block_size=16", "method.segment_size=32",
         "method.backend=torch", "dataset.tasks=[niah_single_1]", "dataset.num_samples=1", "dataset.length=512"],
        cwd=elsewhere, capture_output=True, text=True, timeout=600,
        env={**os.environ, "TQDM_DISABLE": "1", "HYDRA_FULL_ERROR": "0", "PYTHONPATH": ""},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tiny-llama | pbs | ruler-512" in result.stdout
    imported = subprocess.run([python, "-c", "import src; print(src.__file__, src.CONF_DIR)"], cwd=elsewhere,
                              capture_output=True, text=True, check=True).stdout
    assert imported.startswith(site) and "/src/conf" in imported
    assert list((elsewhere / "results" / "runs" / "local").glob("tiny-llama/ruler-512/pbs/*/run.json"))
