"""Fit time against torch's intra-op threads inside sklmeta's compute.

sklmeta runs fit, adapt, score and predict with ``sklmeta._core.threads.COMPUTE_THREADS``
threads (1), restoring the caller's setting afterwards. This script times a
MAMLClassifier fit (shared-structure tasks) and a MAMLRegressor fit (sinusoids),
300 meta-steps each, with 1, 2 and torch's default number of threads, alternating
them over ``--repeats`` rounds so that the machine's load falls on each alike,
and prints a markdown table of the median seconds.

    python benchmarks/threads.py
"""

import argparse
import statistics
import time

import torch
from _machine import machine_line, versions_line  # benchmarks/: the script's own folder

import sklmeta._core.threads as threads
from sklmeta import MAMLClassifier, MAMLRegressor, TaskSplitter
from sklmeta.datasets import make_classification_tasks, make_sinusoid_tasks


def fit_seconds(classes, sines, steps):
    start = time.perf_counter()
    MAMLClassifier(task_splitter=TaskSplitter(n_way=2, k_shot=5, n_query=5, random_state=0),
                   max_meta_steps=steps, early_stopping=False, random_state=0).fit(classes)
    MAMLRegressor(task_splitter=TaskSplitter(k_shot=10, n_query=10, random_state=0),
                  max_meta_steps=steps, early_stopping=False, random_state=0).fit(sines)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    classes = make_classification_tasks(n_tasks=40, random_state=0)
    sines = make_sinusoid_tasks(n_tasks=200, random_state=0)
    default = torch.get_num_threads()
    counts = sorted({1, 2, default})
    times = {n: [] for n in counts}
    for _ in range(args.repeats):
        for n in counts:
            threads.COMPUTE_THREADS = n
            times[n].append(fit_seconds(classes, sines, args.steps))
    print("## Threads\n")
    print(f"- machine: {machine_line()}; {versions_line()}")
    print(f"- command: `python benchmarks/threads.py --repeats {args.repeats} --steps "
          f"{args.steps}`; torch's default here: {default} threads\n")
    print("| threads | median seconds (two fits) | runs |")
    print("|---|---|---|")
    for n in counts:
        runs = ", ".join(f"{t:.1f}" for t in times[n])
        print(f"| {n}{' (default)' if n == default else ''} | "
              f"{statistics.median(times[n]):.1f} | {runs} |")


if __name__ == "__main__":
    main()
