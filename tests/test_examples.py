"""The gallery examples run top to bottom and save their figure."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["plot_sinusoid", "plot_digits_few_shot"])
def test_example_runs(name, tmp_path):
    env = dict(os.environ, SKLMETA_EXAMPLES_OUT=str(tmp_path), MPLBACKEND="Agg")
    # Tiny tensors: intra-op threads only add overhead, and on a busy machine
    # they slow meta-training down many times over. An explicit setting wins.
    env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    png = tmp_path / f"{name}.png"
    assert png.is_file() and png.stat().st_size > 0
    assert str(png) in proc.stdout
