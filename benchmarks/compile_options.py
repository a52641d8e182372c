"""``compile=True``'s inductor options against one another: a fit's meta-step and compile time.

The problem is ``meta_step_speed.py``'s (the MAML paper's sinusoids: meta-batch
25, K = 10 + 10, a 1-40-40-1 ReLU MLP, second order, Adam 1e-3). For each
``compile__options`` given (JSON; ``{}`` is ``compile=True`` as it is), a
``MAMLRegressor(compile=True)`` is fitted for two epochs, and then, in one
process and interleaved over ``--rounds`` rounds, each fit's training epoch
(``run_single_epoch``, as ``fit`` runs it: sampling, the compiled step, skorch's
loop) is timed: milliseconds per meta-step, the median (and range) over the
rounds, and its ratio to the first option's within each round. Then each
option's compile time from an empty cache, in a fresh process with its own
``TORCHINDUCTOR_CACHE_DIR`` and ``TMPDIR`` (inductor keeps the C++ headers it
precompiles under the temporary folder): what a user's first compiled fit on a
machine pays.

Usage::

    python benchmarks/compile_options.py        # the C++ wrapper on (the default) and off
    python benchmarks/compile_options.py --steps 1 --options '{}' '{"max_fusion_size": 8}'
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from _machine import empty_cache_env, run_lines  # benchmarks/: the script's own folder
from meta_step_speed import LR, K, T
from step_breakdown import _epoch, _fitted


def _params(options):
    return {"compile__options": options} if options else {}


def cold_compile_seconds(steps, options, threads):
    """``compile_seconds_`` of a fit with ``options`` in a fresh process, from nothing."""
    with tempfile.TemporaryDirectory() as empty:
        env = empty_cache_env(empty)
        cmd = [sys.executable, os.path.abspath(__file__), "--compile-time-of",
               json.dumps(options), "--steps", str(steps), "--threads", str(threads)]
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return float(run.stdout.strip().splitlines()[-1])


def epoch_times(steps, options, rounds):
    """``[[ms per meta-step, one a round] per option]``, the rounds interleaved."""
    epochs = []
    for opts in options:
        net, dataset = _fitted(steps, **_params(opts))
        epochs.append((_epoch(net, dataset), sum(1 for _ in dataset.batches(T))))
    for run, _ in epochs:  # warm-up
        run()
    times = [[] for _ in options]
    for _ in range(rounds):
        for (run, n), ts in zip(epochs, times):
            start = time.perf_counter()
            run()
            ts.append((time.perf_counter() - start) / n * 1e3)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 5], help="inner steps")
    parser.add_argument("--options", nargs="+", default=["{}", '{"cpp_wrapper": false}'],
                        help="compile__options, as JSON; the first is the reference")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-cold-compile", action="store_true",
                        help="skip the compile times from an empty cache")
    parser.add_argument("--compile-time-of", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.compile_time_of is not None:  # one cold compile, in its own process
        net, _ = _fitted(args.steps[0], **_params(json.loads(args.compile_time_of)))
        print(net.compiled_meta_loss_.seconds)
        return
    options = [json.loads(o) for o in args.options]
    print("# compile=True's inductor options, one against another\n")
    print("\n".join(run_lines()))
    print(f"- problem: meta-batch {T}, K={K}+{K}, MLP 1-40-40-1 ReLU, second order, "
          f"Adam 1e-3, inner lr {LR}; a fit's training epoch, ms per meta-step, median "
          f"(range) of {args.rounds} interleaved rounds of 100 meta-steps\n")
    print("| inner steps | compile__options | ms per meta-step | against the first "
          "(same round) | compile s from an empty cache |")
    print("|---|---|---|---|---|")
    for steps in args.steps:
        times = epoch_times(steps, options, args.rounds)
        for opts, ts in zip(options, times):
            ratio = [t / first for t, first in zip(ts, times[0])]
            cold = ("-" if args.no_cold_compile
                    else f"{cold_compile_seconds(steps, opts, args.threads):.1f}")
            print(f"| {steps} | `{json.dumps(opts)}` | {np.median(ts):.3f} "
                  f"({min(ts):.3f}-{max(ts):.3f}) | {np.median(ratio):.2f}x "
                  f"({min(ratio):.2f}-{max(ratio):.2f}x) | {cold} |", flush=True)


if __name__ == "__main__":
    main()
