"""fit(tasks) on 10,000 tasks holds the data, not 10,000 tasks' episodes at once.

Measured as ``benchmarks/memory.py`` measures (torch's CPU allocations are
invisible to tracemalloc): a fresh Python process, after imports, data and a
warm-up fit, reports the peak resident memory its ``fit`` adds (VmHWM, reset
through /proc/self/clear_refs). 10,000 sinusoid tasks of 50 points are 8 MB of
float64; fit keeps a float32 copy, the targets and an index table of the rows,
about 3x that (26 MB measured). One meta-step over all 10,000 tasks at once
would cost ~630 MB (~63 kB per task of a second-order meta-batch, see
benchmarks/RESULTS.md), so the bounds below have margin both ways.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "memory.py"
MB = 1e6


def _can_reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _can_reset_peak(),
                    reason="needs Linux's /proc/self/status and clear_refs")
def test_fit_on_10000_tasks_holds_the_data_not_every_episode():
    spec = dict(n_tasks=10_000, meta_batch=25, inner_steps=1, first_order=False,
                meta_steps=4)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--child", json.dumps(spec)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["method"] == "VmHWM after clear_refs"
    raw, increase = result["raw_bytes"], result["peak_increase"]
    assert raw == 10_000 * 50 * (8 + 8)
    # the measurement sees fit's own copy of the data (it is not blind) ...
    assert increase > raw / 4, f"{increase / MB:.1f} MB"
    # ... and nothing that grows with tasks x episode graph
    assert increase < 4 * raw + 16 * MB, (
        f"fit on 10,000 tasks added {increase / MB:.1f} MB of peak RSS for "
        f"{raw / MB:.1f} MB of data")
