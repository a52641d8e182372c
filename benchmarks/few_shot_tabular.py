"""Few-shot classification on tabular data: every meta-learner against the baselines.

Two parts, each printing markdown tables (mean [95% Student-t CI] over episodes,
every method on the very same episodes):

1. the command line's three tabular scenarios at full budget, all algorithms:
   ``python -m sklmeta compare --scenario shared-structure digits cross-dataset``
   (shared-structure: where meta-learning wins; digits and cross-dataset: where
   meta-training data are thin);
2. digits, unseen classes: for every classifier algorithm, accuracy on 3-way
   5-shot episodes of digits 6-9 during meta-training on digits 0-5 without
   early stopping (the meta-overfitting curve, epoch 0 being the random start),
   and what the default early-stopped fit keeps, against its own random start.

Usage::

    python benchmarks/few_shot_tabular.py            # full budget, about 15 minutes on 2 cores
    python benchmarks/few_shot_tabular.py --quick    # smoke test
"""

import argparse
import copy
import shlex
import sys
import tempfile
import time
import warnings

import torch
from _machine import machine_line, versions_line  # benchmarks/: the script's own folder
from sklearn.datasets import load_digits
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Callback

import sklmeta
from sklmeta import TaskSplitter
from sklmeta._cli import main as cli_main
from sklmeta.model_selection import compare, mean_ci

CLASSIFIERS = {
    "MAML": sklmeta.MAMLClassifier, "Meta-SGD": sklmeta.MetaSGDClassifier,
    "ANIL": sklmeta.ANILClassifier, "Reptile": sklmeta.ReptileClassifier,
    "ProtoNet": sklmeta.ProtoNetClassifier,
}
BUDGETS = {
    "full": dict(episodes=200, curve=(0, 1, 2, 5, 10, 20, 40), n_tasks=160, cli=[]),
    "quick": dict(episodes=6, curve=(0, 1), n_tasks=16,
                  cli=["--epochs", "1", "--episodes", "4", "--shots", "1"]),
}


class Snapshots(Callback):
    """Keep copies of the meta-learned weights at the given epochs (0: the random start)."""

    def __init__(self, epochs):
        self.epochs = epochs

    def on_train_begin(self, net, **kwargs):
        self.saved_ = {0: copy.deepcopy(net.module_.state_dict())}

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) in self.epochs:
            self.saved_[len(net.history)] = copy.deepcopy(net.module_.state_dict())


def score(estimator, X, y, episodes):
    """Every episode's query accuracy."""
    return compare({"e": estimator}, X, y, cv=episodes, return_scores=True)[1]["score"].to_numpy()


def fmt(scores):
    m, lo, hi = mean_ci(scores)
    return f"{100 * m:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def digits_curves(b, seed):
    X, y = load_digits(return_X_y=True)
    seen = y <= 5
    splitter = TaskSplitter(n_way=3, k_shot=5, n_query=15, n_tasks=b["n_tasks"],
                            random_state=seed)
    cv = TaskSplitter(n_way=3, k_shot=5, n_query=15, n_tasks=b["episodes"],
                      random_state=seed + 2)
    episodes = list(cv.split(X[~seen], y[~seen]))
    curve = b["curve"]
    rows, summary = [], []
    for name, cls in CLASSIFIERS.items():
        params = dict(task_splitter=splitter, hidden_layer_sizes=(64, 64), random_state=seed)
        if name in ("MAML", "Meta-SGD", "ANIL"):
            params["inner_lr"] = 0.4  # as the command line's digits scenario

        start = time.perf_counter()
        full = make_pipeline(StandardScaler(), cls(
            max_epochs=max(curve), early_stopping=False, callbacks=[Snapshots(curve)],
            **params)).fit(X[seen], y[seen])
        snapshots = dict(full[-1].net_.callbacks_)["Snapshots"].saved_
        at = {}
        for epoch in curve:
            full[-1].net_.module_.load_state_dict(snapshots[epoch])
            at[epoch] = score(full, X[~seen], y[~seen], episodes)
        stopped = make_pipeline(StandardScaler(), cls(max_epochs=max(curve), **params))
        stopped.fit(X[seen], y[seen])
        es = score(stopped, X[~seen], y[~seen], episodes)
        seconds = time.perf_counter() - start
        rows.append(f"| {name} | " + " | ".join(fmt(at[e]) for e in curve) + " |")
        m, lo, hi = mean_ci(es - at[0])
        meta = stopped[-1]
        summary.append(
            f"| {name} | {fmt(at[0])} | {fmt(es)} (epoch {meta.best_epoch_} of "
            f"{len(meta.history_)}) | {100 * m:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] | "
            f"{seconds:.0f} s |")
        print(f"done: {name} ({seconds:.0f} s)", file=sys.stderr, flush=True)

    print("### Digits, unseen classes: the meta-overfitting curve\n")
    print(f"Query accuracy on {b['episodes']} 3-way 5-shot episodes of digits 6-9 after N "
          "epochs of meta-training on digits 0-5 (StandardScaler first; no early stopping; "
          "epoch 0 is the random start).\n")
    print("| algorithm | " + " | ".join(f"epoch {e}" for e in curve) + " |")
    print("|---|" + "---|" * len(curve))
    print("\n".join(rows))
    print("\n### Digits: early stopping against each algorithm's own random start\n")
    print("Default early stopping (3 of the 6 meta-training classes held out, random start "
          "counted as epoch 0); the difference is paired over the same episodes.\n")
    print("| algorithm | random start | early-stopped (kept epoch) | difference, points | "
          "time |")
    print("|---|---|---|---|---|")
    print("\n".join(summary))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke-test budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder for the CSV and PNG files")
    args = parser.parse_args(argv)
    b = BUDGETS["quick" if args.quick else "full"]
    torch.set_num_threads(1)
    start = time.perf_counter()
    print("# Few-shot classification on tabular data: every algorithm\n")
    print(f"- machine: {machine_line()}; torch 1 thread")
    print(f"- {versions_line()}")
    print(f"- command: `python {' '.join(shlex.quote(a) for a in sys.argv)}`\n")
    out = args.out or tempfile.mkdtemp(prefix="sklmeta-tabular-")
    status = cli_main(["compare", "--scenario", "shared-structure", "digits", "cross-dataset",
                       "--episodes", str(b["episodes"]), "--seed", str(args.seed),
                       "--out", out, *b["cli"]])
    if status:
        return status
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # early stopping without hold-out: quick
        digits_curves(b, args.seed)
    print(f"\nTotal wall time: {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
