"""Few-shot accuracy of MAML against ordinary estimators, as markdown tables.

Three scenarios, every method scored on the very same episodes
(:func:`sklmeta.model_selection.compare`), each figure a mean over episodes with
its 95% Student-t confidence interval:

1. sinusoid regression (the MAML paper's toy problem): meta-trained MAML against
   the same network adapted from its random start, on fresh tasks;
2. shared-structure classification (:func:`sklmeta.datasets.make_classification_tasks`):
   binary tasks whose boundaries share a 4-dimensional subspace of 40 features,
   the structure a meta-learner can exploit;
3. digits, unseen classes: meta-train on digits 0-5, adapt to 3-way episodes of
   digits 6-9; plus the meta-overfitting curve and what early stopping chose.

Usage::

    python benchmarks/few_shot_accuracy.py            # full budget, a few minutes
    python benchmarks/few_shot_accuracy.py --quick    # smoke test, well under a minute
    python benchmarks/few_shot_accuracy.py --seed 1   # another draw of data and episodes

The output is meant to be pasted into the README as is.
"""

import argparse
import shlex
import sys
import time
import warnings

import torch
from _machine import machine_line, versions_line  # benchmarks/: the script's own folder
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from sklmeta import MAMLClassifier, MAMLRegressor, TaskSplitter, stack_tasks
from sklmeta.datasets import make_classification_tasks, make_sinusoid_tasks
from sklmeta.model_selection import compare, mean_ci

HEADINGS = {
    "sinusoid": "## 1. Sinusoid regression",
    "shared": "## 2. Shared-structure classification",
    "digits": "## 3. Digits, unseen classes",
}

# Budgets. "full" is what the README reports; "quick" only checks that the script runs.
BUDGETS = {
    "full": dict(
        sin_train_tasks=1000, sin_test_tasks=100, sin_epochs=40, sin_n_tasks=320,
        sin_episodes=200,
        shared_train_tasks=250, shared_test_tasks=60, shared_epochs=60, shared_n_tasks=320,
        digits_n_tasks=160, digits_curve=(0, 1, 2, 5, 10, 20, 40),
        cls_episodes=100,
    ),
    "quick": dict(
        sin_train_tasks=100, sin_test_tasks=20, sin_epochs=2, sin_n_tasks=64,
        sin_episodes=20,
        shared_train_tasks=40, shared_test_tasks=10, shared_epochs=2, shared_n_tasks=64,
        digits_n_tasks=32, digits_curve=(0, 1, 2),
        cls_episodes=10,
    ),
}


# ----------------------------------------------------------------- formatting
def fmt_acc(row):
    return f"{100 * row['mean']:.1f}% [{100 * row['ci_low']:.1f}, {100 * row['ci_high']:.1f}]"


def fmt_mse(row):
    # compare scored neg_mean_squared_error: MSE = -score, and the interval flips.
    return f"{-row['mean']:.3f} [{-row['ci_high']:.3f}, {-row['ci_low']:.3f}]"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def paired_difference(scores, a, b):
    """Mean and 95% CI of score(a) - score(b) over the shared episodes."""
    wide = scores.pivot(index="episode", columns="estimator", values="score")
    return mean_ci(wide[a] - wide[b])


def timed_fit(estimator, *args):
    """``estimator.fit(*args)`` and the seconds it took."""
    start = time.perf_counter()
    estimator.fit(*args)
    return estimator, time.perf_counter() - start


def baselines():
    return {
        "RandomForestClassifier(random_state=0)": RandomForestClassifier(random_state=0),
        "KNeighborsClassifier(1)": KNeighborsClassifier(1),
        "LogisticRegression()": LogisticRegression(),
    }


# ------------------------------------------------------------------ scenarios
def sinusoid(b, seed):
    print(HEADINGS["sinusoid"])
    print()
    train = make_sinusoid_tasks(n_tasks=b["sin_train_tasks"], random_state=seed)
    test = make_sinusoid_tasks(n_tasks=b["sin_test_tasks"], random_state=seed + 1)
    X, y, groups = stack_tasks(test)
    shots = (5, 10)
    results, notes = {}, []
    for k in shots:
        splitter = TaskSplitter(k_shot=k, n_query=10, n_tasks=b["sin_n_tasks"], random_state=seed)
        # The paper's protocol: 1 inner step (lr 0.01) in meta-training, 10 at test time.
        params = dict(task_splitter=splitter, hidden_layer_sizes=(40, 40), inner_lr=0.01,
                      inner_steps=1, adapt_steps=10, meta_lr=0.01, meta_batch_size=16,
                      random_state=seed)
        maml, secs = timed_fit(MAMLRegressor(max_epochs=b["sin_epochs"], **params), train)
        start = MAMLRegressor(max_epochs=0, **params).fit(train)
        cv = TaskSplitter(k_shot=k, n_query=10, n_tasks=b["sin_episodes"], random_state=seed + 2)
        results[k] = compare({"MAML (meta-trained)": maml, "random start (max_epochs=0)": start},
                             X, y, cv=cv, groups=groups, scoring="neg_mean_squared_error")
        notes.append(f"{k}-shot: {len(maml.history_)} epochs in {secs:.0f} s, "
                     f"best_epoch_={maml.best_epoch_}")
    names = list(results[shots[0]].index)
    print(table(["method"] + [f"{k}-shot MSE" for k in shots],
                [[n] + [fmt_mse(results[k].loc[n]) for k in shots] for n in names]))
    print()
    print(f"Query MSE (lower is better; 10 query points) on {b['sin_episodes']} episodes drawn "
          f"from {b['sin_test_tasks']} fresh sinusoids, mean [95% CI]. y = A sin(x - phi), "
          "A in [0.1, 5], phi in [0, pi], x in [-5, 5]. MLP (40, 40), inner lr 0.01, 1 inner "
          f"step in meta-training, 10 at adaptation; meta-trained on {b['sin_train_tasks']} "
          f"tasks, {b['sin_n_tasks']} episodes per epoch, early stopping on held-out tasks "
          f"({'; '.join(notes)}). Predicting 0 everywhere scores about A^2/2, 4.2 on average.")
    print()


def shared_structure(b, seed):
    print(HEADINGS["shared"])
    print()
    n_train, n_test = b["shared_train_tasks"], b["shared_test_tasks"]
    # One call, so that training and test tasks share the same informative subspace.
    tasks = make_classification_tasks(n_tasks=n_train + n_test, n_samples=100, n_features=40,
                                      n_informative=4, random_state=seed)
    train, test = tasks[:n_train], tasks[n_train:]
    splitter = TaskSplitter(n_way=2, k_shot=5, n_query=15, n_tasks=b["shared_n_tasks"],
                            random_state=seed)
    params = dict(task_splitter=splitter, hidden_layer_sizes=(40, 40), random_state=seed)
    maml, secs = timed_fit(MAMLClassifier(max_epochs=b["shared_epochs"], **params), train)
    start = MAMLClassifier(max_epochs=0, **params).fit(train)
    X, y, groups = stack_tasks(test)
    estimators = {"MAML (meta-trained)": maml, "random start (max_epochs=0)": start,
                  **baselines()}
    shots = (1, 5)
    results, diffs = {}, {}
    for k in shots:
        cv = TaskSplitter(n_way=2, k_shot=k, n_query=15, n_tasks=b["cls_episodes"],
                          random_state=seed + 2)
        results[k], scores = compare(estimators, X, y, cv=cv, groups=groups, return_scores=True)
        best = max(baselines(), key=lambda n: results[k].loc[n, "mean"])
        diffs[k] = (best, paired_difference(scores, "MAML (meta-trained)", best))
    print(table(["method"] + [f"{k}-shot accuracy" for k in shots],
                [[n] + [fmt_acc(results[k].loc[n]) for k in shots] for n in estimators]))
    print()
    for k in shots:
        best, (m, lo, hi) = diffs[k]
        print(f"- {k}-shot: MAML minus the best baseline ({best}), paired over the same "
              f"episodes: {100 * m:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}]")
    print()
    print(f"2-way episodes, 15 query points per class, {b['cls_episodes']} episodes drawn from "
          f"{n_test} held-out tasks. Tasks: 40 standard-normal features, labels by a random "
          "hyperplane inside 4 informative features shared by every task. MAML: MLP (40, 40), "
          f"inner lr 0.4, 1 inner step, meta-trained 5-shot on {n_train} tasks, "
          f"{b['shared_n_tasks']} episodes per epoch, early stopping on held-out tasks "
          f"({len(maml.history_)} of max {b['shared_epochs']} epochs in {secs:.0f} s, "
          f"best_epoch_={maml.best_epoch_}). The baselines are fit on each support set from "
          "scratch.")
    print()


def digits(b, seed):
    print(HEADINGS["digits"])
    print()
    X, y = load_digits(return_X_y=True)
    seen = y <= 5
    X_meta, y_meta, X_new, y_new = X[seen], y[seen], X[~seen], y[~seen]
    splitter = TaskSplitter(n_way=3, k_shot=5, n_query=15, n_tasks=b["digits_n_tasks"],
                            random_state=seed)

    def pipeline(**kw):
        return make_pipeline(StandardScaler(), MAMLClassifier(
            task_splitter=splitter, hidden_layer_sizes=(64, 64), inner_lr=0.4,
            random_state=seed, **kw))

    curve = b["digits_curve"]
    auto, auto_secs = timed_fit(pipeline(max_epochs=max(curve)), X_meta, y_meta)
    refits, curve_secs = {}, 0.0
    for e in curve:  # e=0 is the random start
        refits[e], secs = timed_fit(pipeline(max_epochs=e, early_stopping=False), X_meta, y_meta)
        curve_secs += secs
    last = max(curve)
    estimators = {
        "MAML, early_stopping='auto'": auto,
        f"MAML, early_stopping=False ({last} epochs)": refits[last],
        "random start (max_epochs=0)": refits[0],
        **baselines(),
    }
    shots = (1, 5)
    results, diffs, curves = {}, {}, {}
    for k in shots:
        cv = TaskSplitter(n_way=3, k_shot=k, n_query=15, n_tasks=b["cls_episodes"],
                          random_state=seed + 2)
        results[k], scores = compare(estimators, X_new, y_new, cv=cv, return_scores=True)
        best = max(baselines(), key=lambda n: results[k].loc[n, "mean"])
        diffs[k] = (best, paired_difference(scores, "MAML, early_stopping='auto'", best))
        curves[k] = compare({e: refits[e] for e in curve}, X_new, y_new, cv=cv)
    print(table(["method"] + [f"{k}-shot accuracy" for k in shots],
                [[n] + [fmt_acc(results[k].loc[n]) for k in shots] for n in estimators]))
    print()
    for k in shots:
        best, (m, lo, hi) = diffs[k]
        print(f"- {k}-shot: MAML (early_stopping='auto') minus the best baseline ({best}), "
              f"paired over the same episodes: {100 * m:+.1f} points "
              f"[{100 * lo:+.1f}, {100 * hi:+.1f}]")
    print()
    meta = auto[-1]
    print(f"3-way episodes of the unseen digits 6-9, 15 query points per class, "
          f"{b['cls_episodes']} episodes. MAML: StandardScaler (fit on digits 0-5) + MLP "
          f"(64, 64), inner lr 0.4, 1 inner step, meta-trained 5-shot on digits 0-5, "
          f"{b['digits_n_tasks']} episodes per epoch. Baselines see the raw pixel values and "
          "are fit on each support set from scratch.")
    print()
    print("### Meta-overfitting curve")
    print()
    print(table(["meta-training epochs"] + [f"{k}-shot accuracy, unseen digits" for k in shots],
                [[e] + [fmt_acc(curves[k].loc[e]) for k in shots] for e in curve]))
    print()
    valid = meta.history_[:, "valid_acc"]
    n_val = max(meta.n_way_, round(meta.validation_fraction * 6))
    trace = ", ".join(f"{100 * v:.1f}" for v in [meta.initial_valid_score_] + list(valid))
    print(f"Each row refits the pipeline with max_epochs=e and early_stopping=False "
          f"({curve_secs:.0f} s for all); epoch 0 is the random start. With "
          f"early_stopping='auto' the meta-estimator held out {n_val} of the 6 "
          f"meta-training classes (max(n_way, validation_fraction * 6)) for meta-validation, "
          f"trained on the other {6 - n_val}, ran {len(meta.history_)} of max "
          f"{max(curve)} epochs in {auto_secs:.0f} s and kept best_epoch_={meta.best_epoch_}; "
          f"its 5-shot meta-validation accuracy by epoch (epoch 0 first): {trace} (%).")
    print()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny budget: a smoke test, not numbers to report")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the tasks, the networks and the episodes (default 0)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch and BLAS/OpenMP threads (default 1: the networks and "
                             "support sets are tiny, so extra threads only add overhead)")
    args = parser.parse_args(argv)
    budget = BUDGETS["quick" if args.quick else "full"]

    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    print("# Few-shot accuracy benchmarks" + (" (--quick: smoke test only)" if args.quick else ""))
    print()
    print(f"- machine: {machine_line()} ({args.threads} thread(s) used)")
    print(f"- {versions_line()}")
    print(f"- command: `{shlex.join(['python'] + sys.argv)}`")
    print("- every figure: mean over episodes [95% Student-t confidence interval]; all methods "
          "of a table see the very same episodes")
    print()
    sys.stdout.flush()
    with threadpool_limits(limits=args.threads), warnings.catch_warnings():
        # The baselines' own warnings (e.g. lbfgs iterations) do not change the figures.
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        for scenario in (sinusoid, shared_structure, digits):
            section_start = time.perf_counter()
            scenario(budget, args.seed)
            print(f"_Section time: {time.perf_counter() - section_start:.0f} s._")
            print()
            sys.stdout.flush()
    print(f"Total wall time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
