"""Peak memory of meta-training: second- against first-order MAML, and fit on many tasks.

The problem is the MAML paper's sinusoid setting: ``make_sinusoid_tasks`` (50
points per task), a 1-40-40-1 ReLU MLP (``MAMLRegressor``), K = 10 support + 10
query points per task (``TaskSplitter(k_shot=10, n_query=10)``). Two measurements:

1. Peak memory of a fixed number of meta-steps for second-order MAML against the
   inner steps (1, 5, 10) and the meta-batch size (25, 100, 400), first-order
   beside it. Second-order MAML keeps every inner step's activations and
   gradients for the meta-gradient; first-order drops them.
2. ``fit(tasks)`` on 10,000 tasks against 100, the same number of meta-steps:
   fit draws one meta-batch of episodes at a time, so the difference should be
   about the size of the data, not of 10,000 episodes at once.
3. Where memory once grew with the wrong thing: fit on 2,000 small groups and one
   of 100,000 rows (a dense ``[group, class, row]`` table asked for 1.6 GB),
   early stopping over 100,000 validation episodes (all were held in memory) and
   ``score`` over 100,000 episodes (all were drawn at once). Each should stay in
   line with the data plus a batch.

torch's CPU allocations are invisible to tracemalloc, so every configuration runs
in a fresh Python process (this script with ``--child``), which reports its peak
resident set size (``VmHWM`` of ``/proc/self/status``, reset through
``/proc/self/clear_refs`` once the baseline is taken) above a baseline taken after
the imports, the data and a one-meta-step warm-up fit on 4 other tasks. The
warm-up takes one-off costs out of the figures: torch.optim imports torch._dynamo
on first use (about 70 MB of RSS here), and the first meta-step about 17 MB more.
Memory does not depend on the load of the machine; the seconds printed do.

Usage::

    python benchmarks/memory.py            # ~3 minutes on 2 cores (20 fresh processes)
    python benchmarks/memory.py --quick    # smoke test, about a minute
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

MB = 1e6
N_SAMPLES = 50  # points per sinusoid task
K_SHOT = N_QUERY = 10
HIDDEN = (40, 40)

BUDGETS = {
    "full": dict(inner_steps=(1, 5, 10), meta_batch=(25, 100, 400), meta_steps=5,
                 n_tasks=1000, many_tasks=10_000, few_tasks=100, task_meta_steps=20,
                 episodes=100_000, big_group=100_000),
    "quick": dict(inner_steps=(1, 2), meta_batch=(8, 32), meta_steps=2,
                  n_tasks=100, many_tasks=10_000, few_tasks=100, task_meta_steps=4,
                  episodes=5_000, big_group=20_000),
}


# ------------------------------------------------------------------- the child
def _reset_peak():
    """Reset the kernel's peak-RSS counter (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _max_rss_bytes():
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _regressor(meta_batch, inner_steps, first_order, meta_steps, seed=0):
    from sklmeta import MAMLRegressor, TaskSplitter

    # One epoch of meta_steps meta-batches: n_tasks below is episodes per epoch.
    splitter = TaskSplitter(k_shot=K_SHOT, n_query=N_QUERY, n_tasks=meta_batch * meta_steps,
                            random_state=seed)
    return MAMLRegressor(task_splitter=splitter, hidden_layer_sizes=HIDDEN,
                         inner_steps=inner_steps, first_order=first_order,
                         meta_batch_size=meta_batch, max_epochs=1, early_stopping=False,
                         random_state=seed)


def _case(spec):
    """The data and the call of one of the cases of table 3; returns (raw bytes, call)."""
    import numpy as np

    from sklmeta import MAMLRegressor, TaskSplitter
    from sklmeta.datasets import make_sinusoid_tasks

    rng = np.random.RandomState(0)
    if spec["case"] == "small groups and a big one":
        groups = np.concatenate([np.repeat(np.arange(2_000), 10), np.full(spec["rows"], -1)])
        X = rng.randn(len(groups), 2)
        y = X[:, 0] + 0.1 * rng.randn(len(groups))
        meta = MAMLRegressor(task_splitter=TaskSplitter(k_shot=5, n_query=5, random_state=0),
                             hidden_layer_sizes=HIDDEN, max_meta_steps=20, early_stopping=False,
                             random_state=0)
        return X.nbytes + y.nbytes, lambda: meta.fit(X, y, groups=groups)
    tasks = make_sinusoid_tasks(n_tasks=1000, n_samples=N_SAMPLES, random_state=0)
    raw = sum(X.nbytes + y.nbytes for X, y in tasks)
    splitter = TaskSplitter(k_shot=K_SHOT, n_query=N_QUERY, n_tasks=spec["episodes"],
                            random_state=0)
    if spec["case"] == "validation episodes":
        # max_epochs=1 meta-validates on n_tasks episodes; meta-batches of 1000 keep the
        # training part short
        meta = MAMLRegressor(task_splitter=splitter, hidden_layer_sizes=HIDDEN, max_epochs=1,
                             meta_batch_size=1000, random_state=0)
        return raw, lambda: meta.fit(tasks)
    meta = MAMLRegressor(task_splitter=splitter, hidden_layer_sizes=HIDDEN, max_meta_steps=1,
                         early_stopping=False, random_state=0).fit(tasks[:10])
    return raw, lambda: meta.score(tasks)


def child(spec):
    """Measure one fit; return a dict (printed as one JSON line by ``--child``)."""
    import gc

    import torch

    torch.set_num_threads(1)
    from _machine import status_bytes  # benchmarks/: the script's own folder

    from sklmeta.datasets import make_sinusoid_tasks

    if "case" in spec:
        raw, call = _case(spec)
        _regressor(2, 1, False, 1).fit(make_sinusoid_tasks(4, N_SAMPLES, random_state=1))
        gc.collect()
        reset = _reset_peak()
        baseline = status_bytes("VmRSS") if reset else _max_rss_bytes()
        start = time.perf_counter()
        call()
        seconds = time.perf_counter() - start
        peak = status_bytes("VmHWM") if reset else _max_rss_bytes()
        return dict(spec, peak_increase=peak - baseline, raw_bytes=raw, seconds=seconds)

    tasks = make_sinusoid_tasks(n_tasks=spec["n_tasks"], n_samples=N_SAMPLES, random_state=0)
    raw = sum(X.nbytes + y.nbytes for X, y in tasks)
    # Warm-up: one meta-step on 4 other tasks, so that lazy imports and one-off
    # allocations are in the baseline, not in the figure.
    _regressor(2, 1, False, 1).fit(make_sinusoid_tasks(4, N_SAMPLES, random_state=1))
    gc.collect()
    reset = _reset_peak()
    baseline = status_bytes("VmRSS") if reset else _max_rss_bytes()
    meta = _regressor(spec["meta_batch"], spec["inner_steps"], spec["first_order"],
                      spec["meta_steps"])
    start = time.perf_counter()
    meta.fit(tasks)
    seconds = time.perf_counter() - start
    peak = status_bytes("VmHWM") if reset else _max_rss_bytes()
    steps = sum(len(epoch["batches"]) for epoch in meta.history_)
    if steps != spec["meta_steps"]:
        raise RuntimeError(f"expected {spec['meta_steps']} meta-steps, fit took {steps}")
    return dict(spec, peak_increase=peak - baseline, baseline=baseline, raw_bytes=raw,
                seconds=seconds, method="VmHWM after clear_refs" if reset else "ru_maxrss")


# ------------------------------------------------------------------ the parent
def measure(threads=1, **spec):
    """Run :func:`child` in a fresh Python process; return its result dict."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
        env=env, capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"measurement {spec} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mb(n):
    return f"{n / MB:.1f}"


def order_table(budget):
    """Peak RSS increase by order, inner steps and meta-batch size."""
    batches = budget["meta_batch"]
    print(f"### Peak memory of {budget['meta_steps']} meta-steps, by inner steps and "
          "meta-batch size")
    print()
    print("| order | inner steps | " + " | ".join(f"meta-batch {b}" for b in batches)
          + f" | per task (from {batches[0]} to {batches[-1]}) |")
    print("|---|---|" + "---|" * len(batches) + "---|")
    results = {}
    for first_order in (False, True):
        for steps in budget["inner_steps"]:
            row = [measure(n_tasks=budget["n_tasks"], meta_batch=b, inner_steps=steps,
                           first_order=first_order, meta_steps=budget["meta_steps"])
                   for b in batches]
            results[first_order, steps] = row
            per_task = (row[-1]["peak_increase"] - row[0]["peak_increase"]) / (
                batches[-1] - batches[0])
            print(f"| {'first' if first_order else 'second'} | {steps} | "
                  + " | ".join(f"{_mb(r['peak_increase'])} MB" for r in row)
                  + f" | {per_task / 1e3:.1f} kB |")
            sys.stdout.flush()
    print()
    first = results[False, budget["inner_steps"][0]][0]
    print(f"Peak resident memory (RSS) above a baseline of {_mb(first['baseline'])} MB (the "
          f"process after imports, {budget['n_tasks']} tasks of data and a warm-up fit), "
          f"each configuration in a fresh process ({first['method']}). 'per task': the "
          "slope between the smallest and the largest meta-batch, the memory one more "
          "task of a meta-batch costs.")
    print()
    return results


def tasks_table(budget, results):
    """fit on many tasks against few, the same meta-steps."""
    many, few, steps = budget["many_tasks"], budget["few_tasks"], budget["task_meta_steps"]
    batch = budget["meta_batch"][0]
    print(f"### fit(tasks) on {many:,} tasks against {few:,}, {steps} meta-steps each")
    print()
    rows = [measure(n_tasks=n, meta_batch=batch, inner_steps=1, first_order=False,
                    meta_steps=steps) for n in (few, many)]
    print("| tasks | raw data (X, y float64) | peak RSS increase of fit | fit s |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['n_tasks']:,} | {_mb(r['raw_bytes'])} MB | {_mb(r['peak_increase'])} MB "
              f"| {r['seconds']:.2f} |")
    print()
    diff = rows[1]["peak_increase"] - rows[0]["peak_increase"]
    raw = rows[1]["raw_bytes"] - rows[0]["raw_bytes"]
    episode = (K_SHOT + N_QUERY) * (1 + 1) * 4  # float32 x and y of one episode
    second = results[False, budget["inner_steps"][0]]
    per_task = (second[-1]["peak_increase"] - second[0]["peak_increase"]) / (
        budget["meta_batch"][-1] - budget["meta_batch"][0])
    print(f"Second-order, 1 inner step, meta-batch {batch}, {N_SAMPLES} points per task. "
          f"{many:,} tasks cost {_mb(diff)} MB more than {few:,}, for {_mb(raw)} MB more raw "
          f"data ({diff / raw:.1f}x: fit keeps a float32 copy of the data, the targets and "
          f"an index table of the rows). For scale: one episode's tensors for each of the "
          f"{many:,} tasks would be {_mb(many * episode)} MB, and a meta-step over all of "
          f"them, at the {per_task / 1e3:.1f} kB per task measured above, "
          f"{_mb(many * per_task)} MB.")
    print()
    return rows


def cases_table(budget):
    """Table 3: the cases where memory grew with the wrong thing."""
    print("### Memory in line with the data: many small groups, many validation and score "
          "episodes")
    print()
    print("| case | raw data | peak RSS increase | seconds |")
    print("|---|---|---|---|")
    cases = [dict(case="small groups and a big one", rows=budget["big_group"]),
             dict(case="validation episodes", episodes=budget["episodes"]),
             dict(case="score episodes", episodes=budget["episodes"])]
    for spec in cases:
        r = measure(**spec)
        what = (f"2,000 groups of 10 rows and one of {spec['rows']:,}" if "rows" in spec else
                f"{spec['case']}: {spec['episodes']:,}")
        print(f"| {what} | {_mb(r['raw_bytes'])} MB | {_mb(r['peak_increase'])} MB | "
              f"{r['seconds']:.1f} |")
        sys.stdout.flush()
    print()
    print("The fit on small groups draws from a flat row order and a [group, class] table "
          "of offsets (a dense [group, class, row] table asked for 1.6 GB here); validation "
          "episodes are drawn again from their seed at each pass, a meta-batch at a time; "
          "score adapts and scores its episodes a batch of 2,048 at a time.")
    print()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny budget: a smoke test, not numbers to report")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    budget = BUDGETS["quick" if args.quick else "full"]

    # imports sklmeta and torch: only here, not in the --child processes' module scope
    from _machine import machine_line, versions_line  # benchmarks/: the script's own folder

    start = time.perf_counter()
    print("# Memory of meta-training" + (" (--quick: smoke test only)" if args.quick else ""))
    print()
    print(f"- machine: {machine_line()}; torch 1 thread")
    print(f"- {versions_line()}")
    print(f"- command: `{shlex.join(['python'] + sys.argv)}`")
    print(f"- problem: sinusoid tasks of {N_SAMPLES} points, K={K_SHOT} support + {N_QUERY} "
          f"query points per episode, MLP 1-{'-'.join(map(str, HIDDEN))}-1 ReLU, "
          "MAMLRegressor(early_stopping=False), one epoch of a fixed number of meta-steps")
    print()
    sys.stdout.flush()
    results = order_table(budget)
    tasks_table(budget, results)
    cases_table(budget)
    print(f"Total wall time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
