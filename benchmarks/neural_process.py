"""Conditional Neural Processes beside MAML and ProtoNet, each with its defaults.

Four benchmarks, each a markdown table:

- sinusoids (the MAML paper's: amplitude U[0.1, 5], phase U[0, pi], x U[-5, 5]) at
  K=5 and K=10: query MSE of the mean, and for the neural processes the coverage
  of their 90% intervals (mean +/- 1.645 std); predicting the support mean is the
  floor to beat;
- the shared-structure family (as ``python -m sklmeta compare --scenario
  shared-structure`` builds it: 310 binary tasks of 40 features sharing 4
  informative directions; meta-train on 250, test 2-way episodes of the 60
  held out) and unseen digit classes (meta-train on digits 0-5, standardised;
  test 3-way episodes of the digits 6-9): query accuracy at 1 and 5 shots.

Every estimator keeps its defaults (``max_epochs=20``, ``meta_batch_size=16``,
``hidden_layer_sizes=(40, 40)``, ``meta_lr=1e-3``, MAML's ``inner_lr=0.01`` and
one inner step, early stopping on held-out tasks or classes); only the training
episodes' shape is set (``k_shot``, ``n_query``, ``n_way``, and ``n_tasks``, the
splitter's default of 100 episodes per epoch unless ``--episodes`` says more).
Each cell is the mean over the test episodes with its 95% interval.

Usage::

    python benchmarks/neural_process.py                 # under a minute on 2 cores
    python benchmarks/neural_process.py --quick         # fewer test episodes
    python benchmarks/neural_process.py --episodes 1600   # 2,000 meta-steps, ~3 minutes
"""

import argparse
import datetime
import platform
import shlex
import sys
import time

import numpy as np
import torch
from _machine import cpu_name
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

import sklmeta
from sklmeta import TaskSplitter, stack_tasks
from sklmeta.datasets import make_classification_tasks, make_sinusoid_tasks
from sklmeta.model_selection import mean_ci

Z90 = 1.645


def regressors():
    return {
        "NeuralProcess (mean)": (sklmeta.NeuralProcessRegressor, {"aggregation": "mean"}),
        "NeuralProcess (attention)": (sklmeta.NeuralProcessRegressor,
                                      {"aggregation": "attention"}),
        "MAML": (sklmeta.MAMLRegressor, {}),
    }


def classifiers():
    return {
        "NeuralProcess (mean)": (sklmeta.NeuralProcessClassifier, {"aggregation": "mean"}),
        "NeuralProcess (attention)": (sklmeta.NeuralProcessClassifier,
                                      {"aggregation": "attention"}),
        "MAML": (sklmeta.MAMLClassifier, {}),
        "ProtoNet": (sklmeta.ProtoNetClassifier, {}),
    }


def cell(values, percent=False):
    m, lo, hi = mean_ci(np.asarray(values, dtype=float))
    if percent:
        return f"{100 * m:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"
    return f"{m:.3f} [{lo:.3f}, {hi:.3f}]"


def budget(args, **shape):
    splitter = TaskSplitter(**shape, **({"n_tasks": args.episodes} if args.episodes else {}),
                            random_state=args.seed)
    return dict(task_splitter=splitter, random_state=args.seed,
                **({"max_epochs": args.epochs} if args.epochs is not None else {}))


def fit(cls, params, *data):
    start = time.perf_counter()
    meta = cls(**params).fit(*data)
    return meta, time.perf_counter() - start


def meta_steps(meta):
    """Meta-steps taken (validation batches are in the history too, without a train_loss)."""
    return sum(1 for e in meta.history_ for b in e["batches"] if "train_loss" in b)


def sinusoids(args, k):
    X, y, groups = stack_tasks(make_sinusoid_tasks(n_tasks=args.train_tasks, n_samples=50,
                                                   random_state=args.seed))
    test = make_sinusoid_tasks(n_tasks=args.test_episodes, n_samples=k + 50,
                               random_state=args.seed + 1)
    print(f"### Sinusoids, K={k}\n")
    print(f"{args.train_tasks} training tasks of 50 points, training episodes of {k} support "
          f"and {k} query points; {len(test)} fresh test tasks, {k} support and 50 query "
          "points.\n")
    print("| method | query MSE | 90% interval coverage | meta-steps (epochs kept) | fit s |")
    print("|---|---|---|---|---|")
    floor = [np.mean((yt[k:] - yt[:k].mean()) ** 2) for _, yt in test]
    for name, (cls, extra) in regressors().items():
        meta, seconds = fit(cls, {**budget(args, k_shot=k, n_query=k), **extra}, X, y, groups)
        mse, covered = [], []
        for Xt, yt in test:
            adapted = meta.adapt(Xt[:k], yt[:k])
            if isinstance(meta, sklmeta.NeuralProcessRegressor):
                mean, std = adapted.predict(Xt[k:], return_std=True)
                covered.append(np.mean(np.abs(yt[k:] - mean) <= Z90 * std))
            else:
                mean = adapted.predict(Xt[k:])
            mse.append(np.mean((yt[k:] - mean) ** 2))
        steps = meta_steps(meta)
        print(f"| {name} | {cell(mse)} | {cell(covered, True) if covered else 'n/a'} | "
              f"{steps} ({meta.best_epoch_}) | {seconds:.1f} |")
    print(f"| predict the support mean | {cell(floor)} | n/a | 0 | 0 |\n")


def classification(args, title, train, X, y, groups, n_way, note):
    print(f"### {title}\n")
    print(f"{note}\n")
    rng = np.random.RandomState(args.seed + 2)
    episodes = {s: list(TaskSplitter(n_way=n_way, k_shot=s, n_query=15,
                                     n_tasks=args.test_episodes,
                                     random_state=rng.randint(2**31)).split(X, y, groups))
                for s in (1, 5)}
    print("| method | 1-shot accuracy | 5-shot accuracy | meta-steps (epochs kept) | fit s |")
    print("|---|---|---|---|---|")
    for name, (cls, extra) in classifiers().items():
        meta, seconds = fit(cls, {**budget(args, n_way=n_way, k_shot=5, n_query=15), **extra},
                            *train)
        cells = []
        for s in (1, 5):
            cells.append(cell([meta.adapt(X[sup], y[sup]).score(X[q], y[q])
                               for sup, q in episodes[s]], percent=True))
        steps = meta_steps(meta)
        print(f"| {name} | {' | '.join(cells)} | {steps} ({meta.best_epoch_}) | {seconds:.1f} |")
    print(f"| chance | {100 / n_way:.1f}% | {100 / n_way:.1f}% | | |\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 test episodes, 2,000 tasks")
    parser.add_argument("--epochs", type=int, default=None, help="max_epochs (default: its)")
    parser.add_argument("--episodes", type=int, default=None,
                        help="training episodes per epoch (default: TaskSplitter's 100)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.test_episodes = 100 if args.quick else 600
    args.train_tasks = 2000 if args.quick else 20000
    torch.set_num_threads(1)
    start = time.perf_counter()
    print("## neural_process.py\n")
    print(f"- machine: {platform.platform()}, {cpu_name()}, torch {torch.__version__}, "
          f"1 thread, sklmeta {sklmeta.__version__}, {datetime.date.today()}")
    print(f"- command: `python {' '.join(shlex.quote(a) for a in sys.argv)}`")
    print("- every estimator with its defaults; mean over the test episodes [95% CI]\n")
    for k in (5, 10):
        sinusoids(args, k)

    tasks = make_classification_tasks(n_tasks=310, n_samples=100, n_features=40,
                                      n_informative=4, random_state=args.seed)
    X, y, groups = stack_tasks(tasks[250:])
    classification(args, "Shared structure, 2-way episodes of 60 held-out tasks", (tasks[:250],),
                   X, y, groups, 2, "250 training tasks of 100 rows and 40 features sharing 4 "
                   "informative directions (the command line's shared-structure scenario).")

    Xd, yd = load_digits(return_X_y=True)
    seen = yd <= 5
    scaler = StandardScaler().fit(Xd[seen])
    classification(args, "Unseen digits 6-9, 3-way episodes",
                   (scaler.transform(Xd[seen]), yd[seen]), scaler.transform(Xd[~seen]),
                   yd[~seen], None, 3, "Meta-trained on digits 0-5 (standardised by their "
                   "scaler, as the command line's digits scenario does in a pipeline).")
    print(f"Total {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
    main()
