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


def run_script(path, *args, cwd, timeout=300):
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")  # tiny tensors: extra threads only add overhead
    proc = subprocess.run([sys.executable, str(path), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


@pytest.mark.slow
def test_few_shot_accuracy_quick(tmp_path):
    proc = run_script(SCRIPT, "--quick", cwd=tmp_path)
    for heading in HEADINGS:
        assert heading in proc.stdout, heading
    assert "Total wall time" in proc.stdout


MEMORY_SCRIPT = SCRIPT.parent / "memory.py"


@pytest.mark.slow
def test_memory_quick(tmp_path):
    proc = run_script(MEMORY_SCRIPT, "--quick", cwd=tmp_path, timeout=600)
    for heading in ["### Peak memory of", "### fit(tasks) on 10,000 tasks against 100"]:
        assert heading in proc.stdout, heading
    assert "| second | 1 |" in proc.stdout and "| first | 1 |" in proc.stdout
    assert "Total wall time" in proc.stdout


@pytest.mark.slow
def test_few_shot_tabular_quick(tmp_path):
    proc = run_script(SCRIPT.parent / "few_shot_tabular.py", "--quick", "--out", str(tmp_path),
                      cwd=tmp_path)
    for heading in ["### shared-structure:", "### digits:", "### cross-dataset:iris:",
                    "meta-overfitting curve", "each algorithm's own random start"]:
        assert heading in proc.stdout, heading
    for algorithm in ["MAML", "Meta-SGD", "ANIL", "Reptile", "ProtoNet"]:
        assert f"| {algorithm} | " in proc.stdout, algorithm


@pytest.mark.slow
def test_sinusoid_algorithms_short(tmp_path):
    proc = run_script(SCRIPT.parent / "sinusoid_algorithms.py", "--steps", "20",
                      "--test-tasks", "10", cwd=tmp_path)
    for algorithm in ["MAML", "Meta-SGD", "ANIL", "Reptile"]:
        assert f"| {algorithm} | " in proc.stdout, algorithm
    assert "Meta-SGD's MSE minus MAML's after 1 step" in proc.stdout
