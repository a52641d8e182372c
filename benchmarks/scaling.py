"""Where a meta-step's cost goes: steps/s, tasks/s and peak memory of ``fit()`` by setting.

Around the MAML paper's sinusoid default (meta-batch 25, K = 10 support + 10
query points, 1 inner step, a 1-40-40-1 ReLU MLP), one axis varies at a time:
meta-batch size (1 to 1,000), inner steps (1 to 10), network width (40 to 512,
both hidden layers) and support size (5 to 100 points), each second- and
first-order. With ``--compile``, each row is also timed with ``compile=True``:
its rate, peak memory and compile seconds (compiling is reported apart from
the rate, which is of the epochs after the first).

Each figure is a ``MAMLRegressor.fit`` as a user runs it (episode sampling and
the skorch loop included): a short fit times one meta-step, then a fit of four
epochs, the last three together about ``--seconds``, is timed on those three:
the median of their rates (skorch's ``dur``), so that a load spike on a shared
machine moves one epoch and not the figure. Peak memory is the rise of the
process's peak resident set size (``VmHWM``, reset through
``/proc/self/clear_refs`` after ``malloc_trim``) over that fit: torch's CPU
allocations are invisible to tracemalloc. Memory does not depend on the load of
the machine; the rates do.

Usage::

    python benchmarks/scaling.py              # ~3 minutes on 2 cores
    python benchmarks/scaling.py --seconds 0.3 --quick   # smoke test
    python benchmarks/scaling.py --compile    # and compiled: ~10 minutes on 2 cores
"""

import argparse
import ctypes
import time
import warnings

import numpy as np
import torch
from _machine import (  # benchmarks/: the script's own folder
    inductor_cache_line,
    run_lines,
    status_bytes,
)

from sklmeta import MAMLRegressor, TaskSplitter
from sklmeta.datasets import make_sinusoid_tasks

DEFAULT = dict(meta_batch=25, inner_steps=1, width=40, support=10)
AXES = {
    "meta_batch": (1, 10, 25, 100, 1000),
    "inner_steps": (1, 5, 10),
    "width": (40, 128, 512),
    "support": (5, 10, 20, 100),
}
QUICK_AXES = {"meta_batch": (1, 25, 100), "inner_steps": (1, 5), "width": (40, 128),
              "support": (5, 20)}
N_QUERY = 10
TIMED_EPOCHS = 3  # after a first epoch that holds the one-off costs


def _reset_peak():
    """Return the freed heap to the system and reset the peak RSS; the RSS now."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    return status_bytes("VmRSS")


def _fit(tasks, setting, order, n_steps, compile_, epochs=2):
    extra = {"compile": True} if compile_ else {}
    splitter = TaskSplitter(k_shot=setting["support"], n_query=N_QUERY,
                            n_tasks=setting["meta_batch"] * n_steps, random_state=0)
    meta = MAMLRegressor(task_splitter=splitter,
                         hidden_layer_sizes=(setting["width"], setting["width"]),
                         inner_lr=0.01, inner_steps=setting["inner_steps"], meta_lr=1e-3,
                         first_order=order == "first", meta_batch_size=setting["meta_batch"],
                         max_epochs=epochs, early_stopping=False, random_state=0, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return meta.fit(tasks)


def measure(tasks, setting, order, seconds, compile_=False):
    """(meta-steps/s, peak MB above the baseline, compile seconds) of one setting.

    Compiled, the compile seconds are the warm-up fit's and the timed fit's
    ``compile_seconds_``: the first builds this setting's kernels (inductor's
    cache may hold some from earlier settings), the second finds them built.
    """
    probe = _fit(tasks, setting, order, 2, compile_)  # warm-up; times a step
    per_step = float(probe.history_[-1, "dur"]) / 2
    n_steps = int(np.clip(seconds / TIMED_EPOCHS / max(per_step, 1e-6), 3, 2000))
    compile_s = [probe.compile_seconds_] if compile_ else []
    del probe
    base = _reset_peak()
    meta = _fit(tasks, setting, order, n_steps, compile_, epochs=1 + TIMED_EPOCHS)
    peak = status_bytes("VmHWM")
    # the median epoch: a load spike on a shared machine moves one epoch, not the figure
    rate = float(np.median(n_steps / np.asarray(meta.history_[1:, "dur"], dtype=float)))
    if compile_:
        compile_s.append(meta.compile_seconds_)
    return (rate, (peak - base) / 1e6 if base is not None and peak is not None else None,
            compile_s)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=1.0, help="timed epoch, about")
    parser.add_argument("--quick", action="store_true", help="fewer values per axis")
    parser.add_argument("--compile", action="store_true",
                        help="also time each setting with compile=True (where fit has it)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    compiled = args.compile and "compile" in MAMLRegressor().get_params()
    print("# Scaling with the work\n")
    print("\n".join(run_lines()))
    print("- around meta-batch 25, K=10 support + 10 query, 1 inner step (lr 0.01), "
          "MLP 1-40-40-1 ReLU, Adam 1e-3; one axis varied at a time")
    if compiled:
        print(f"- {inductor_cache_line()}")
    if args.compile and not compiled:
        print("- compiled: not timed, this build's MAMLRegressor has no `compile` parameter")
    print()
    start = time.perf_counter()
    axes = QUICK_AXES if args.quick else AXES
    tasks = make_sinusoid_tasks(n_tasks=200, n_samples=max(axes["support"]) + N_QUERY,
                                random_state=0)
    _fit(tasks, DEFAULT, "second", 2, False)  # one-off costs (imports, first step) out
    header = ("| varied | meta-batch | inner steps | width | support | order | steps/s | "
              "tasks/s | us per task | peak MB |")
    if compiled:
        header += (" compiled steps/s | compiled / eager | compiled peak MB (compiling "
                   "included) | compile s (warm-up fit, timed fit) |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for axis, values in axes.items():
        for value in values:
            setting = {**DEFAULT, axis: value}
            for order in ("second", "first"):
                rate, peak, _ = measure(tasks, setting, order, args.seconds)
                tasks_s = rate * setting["meta_batch"]
                row = (f"| {axis} | {setting['meta_batch']} | {setting['inner_steps']} | "
                       f"{setting['width']} | {setting['support']} | {order} | {rate:.1f} | "
                       f"{tasks_s:.0f} | {1e6 / tasks_s:.0f} | "
                       + (f"{peak:.1f} |" if peak is not None else "n/a |"))
                if compiled:
                    fast, fast_peak, spent = measure(tasks, setting, order, args.seconds,
                                                     compile_=True)
                    row += (f" {fast:.1f} | {fast / rate:.2f}x | "
                            + (f"{fast_peak:.1f}" if fast_peak is not None else "n/a")
                            + " | " + ", ".join(f"{x:.1f}" if x is not None else "failed"
                                                for x in spent) + " |")
                print(row, flush=True)
    print(f"\nTotal wall time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
