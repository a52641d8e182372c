"""Meta-steps per second of ``fit()`` with ``compile=False`` and ``compile=True``.

The problem of ``meta_step_speed.py``: the MAML paper's sinusoids, meta-batch 25,
K = 10 support + 10 query points per task, a 1-40-40-1 ReLU MLP, Adam 1e-3,
inner lr 0.01, second-order, 1 and 5 inner steps. Each configuration is one
``MAMLRegressor.fit`` of ``--epochs`` epochs of 100 meta-steps; the rate is
meta-steps over the durations of the epochs after the first (skorch's history),
so the first epoch, which holds the compilation, is not in it. The compile time
is the fitted ``compile_seconds_`` (the first compiled meta-step's time beyond a
second one's), and the break-even is the number of meta-steps after which the
faster steps have paid it back: ``compile_seconds_ / (1/eager - 1/compiled)``.

Usage::

    python benchmarks/compile_speed.py                     # inductor; minutes on 2 cores
    python benchmarks/compile_speed.py --backend aot_eager
"""

import argparse
import shlex
import sys
import time
import warnings

import numpy as np
import torch
from _machine import machine_line, versions_line  # benchmarks/: the script's own folder

from sklmeta import MAMLRegressor, TaskSplitter
from sklmeta.datasets import make_sinusoid_tasks

T, K, LR = 25, 10, 0.01


def fit_rate(tasks, steps, epochs, compile_options):
    splitter = TaskSplitter(k_shot=K, n_query=K, n_tasks=T * 100, random_state=0)
    meta = MAMLRegressor(task_splitter=splitter, hidden_layer_sizes=(40, 40), inner_lr=LR,
                         inner_steps=steps, meta_lr=1e-3, meta_batch_size=T, max_epochs=epochs,
                         early_stopping=False, random_state=0, **compile_options)
    start = time.perf_counter()
    meta.fit(tasks)
    total = time.perf_counter() - start
    durations = np.asarray(meta.history_[:, "dur"])
    counts = np.asarray(meta.history_[:, "train_batch_count"])
    return counts[1:].sum() / durations[1:].sum(), meta.compile_seconds_, total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="inductor")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 5])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", UserWarning)
    tasks = make_sinusoid_tasks(n_tasks=200, n_samples=2 * K, random_state=0)
    print(f"- machine: {machine_line()}; {args.threads} torch thread(s)")
    print(f"- versions: {versions_line()}")
    print(f"- command: `python {' '.join(shlex.quote(a) for a in [sys.argv[0], *sys.argv[1:]])}`")
    print(f"- problem: meta-batch {T}, K={K}+{K}, MLP 1-40-40-1 ReLU, second-order MAML, "
          f"{args.epochs} epochs of 100 meta-steps\n")
    print("| inner steps | compile=False | compile=True | ratio | compile s | break-even "
          "meta-steps | fit s (False / True) |")
    print("|---|---|---|---|---|---|---|")
    for steps in args.steps:
        eager, _, eager_total = fit_rate(tasks, steps, args.epochs, {})
        fast, seconds, fast_total = fit_rate(
            tasks, steps, args.epochs, {"compile": True, "compile__backend": args.backend})
        gain = 1 / eager - 1 / fast
        even = f"{seconds / gain:,.0f}" if gain > 0 else "never"
        print(f"| {steps} | {eager:.0f} | {fast:.0f} | {fast / eager:.2f}x | {seconds:.1f} | "
              f"{even} | {eager_total:.1f} / {fast_total:.1f} |", flush=True)


if __name__ == "__main__":
    main()
