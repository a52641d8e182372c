"""Normalisation and dropout in a custom module: MAML's accuracy at 1 and 5 shots.

The same 10-32-32-2 network with no normalisation, with ``BatchNorm1d``, with
``LayerNorm``, and with ``BatchNorm1d`` and ``Dropout(0.2)``, meta-trained by
MAMLClassifier (second order, 1 inner step, 300 meta-steps, early stopping) on
shared-structure tasks and scored on 20 held-out tasks, 2-way, K=1 and K=5 with
10 query rows per class, over ``--seeds`` seeds. BatchNorm normalises each task
by its own rows and predicts with its support set's statistics: at 1 shot that
is two rows, too few for statistics. Prints a markdown table.

    python benchmarks/custom_modules.py
"""

import argparse
import statistics
import time
import warnings

import torch
from _machine import machine_line, versions_line  # benchmarks/: the script's own folder

from sklmeta import MAMLClassifier, TaskSplitter
from sklmeta.datasets import make_classification_tasks

NETS = ["none", "BatchNorm1d", "LayerNorm", "BatchNorm1d + Dropout(0.2)"]


def network(kind, seed):
    torch.manual_seed(seed)
    layers = []
    for n_in in (10, 32):
        layers.append(torch.nn.Linear(n_in, 32))
        if kind.startswith("BatchNorm1d"):
            layers.append(torch.nn.BatchNorm1d(32))
        elif kind == "LayerNorm":
            layers.append(torch.nn.LayerNorm(32))
        layers.append(torch.nn.ReLU())
        if "Dropout" in kind:
            layers.append(torch.nn.Dropout(0.2))
    return torch.nn.Sequential(*layers, torch.nn.Linear(32, 2))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="a smoke-test budget")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.steps = 1, 10
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)
    tasks = make_classification_tasks(n_tasks=60, n_samples=60, n_features=10, random_state=0)
    train, test = tasks[:40], tasks[40:]
    start = time.perf_counter()
    rows = []
    for kind in NETS:
        scores = {}
        for k in (1, 5):
            scores[k] = []
            for seed in range(args.seeds):
                splitter = TaskSplitter(n_way=2, k_shot=k, n_query=10, n_tasks=200,
                                        random_state=seed)
                meta = MAMLClassifier(module=network(kind, seed), max_meta_steps=args.steps,
                                      inner_steps=1, random_state=seed,
                                      task_splitter=splitter).fit(train)
                scores[k].append(meta.score(test))
        rows.append((kind, scores))
    print("## Normalisation and dropout in a custom module\n")
    print(f"- machine: {machine_line()}; {versions_line()}")
    command = "--quick" if args.quick else f"--seeds {args.seeds} --steps {args.steps}"
    print(f"- command: `python benchmarks/custom_modules.py {command}`\n")
    print("| normalisation | 2-way 1-shot accuracy | 2-way 5-shot accuracy |")
    print("|---|---|---|")
    for kind, scores in rows:
        cells = [f"{statistics.mean(s):.3f} ({', '.join(f'{v:.3f}' for v in s)})"
                 for s in scores.values()]
        print(f"| {kind} | " + " | ".join(cells) + " |")
    print(f"\nTotal wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
