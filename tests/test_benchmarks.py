"""The benchmark scripts run end to end (on their --quick smoke-test budgets)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "few_shot_accuracy.py"
HEADINGS = [
    "## 1. Sinusoid regression",
    "## 2. Shared-structure classification",
    "## 3. Digits, unseen classes",
]


@pytest.mark.slow
def test_few_shot_accuracy_quick(tmp_path):
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")  # tiny tensors: extra threads only add overhead
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    for heading in HEADINGS:
        assert heading in proc.stdout, heading
    assert "Total wall time" in proc.stdout


MEMORY_SCRIPT = SCRIPT.parent / "memory.py"


@pytest.mark.slow
def test_memory_quick(tmp_path):
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run(
        [sys.executable, str(MEMORY_SCRIPT), "--quick"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    for heading in ["### Peak memory of", "### fit(tasks) on 10,000 tasks against 100"]:
        assert heading in proc.stdout, heading
    assert "| second | 1 |" in proc.stdout and "| first | 1 |" in proc.stdout
    assert "Total wall time" in proc.stdout
