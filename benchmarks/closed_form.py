"""The closed-form learners (R2-D2's ridge head, Deep Kernel Transfer) beside the others.

Every learner keeps ITS DEFAULTS; only ``task_splitter`` (the episode shape of
the table, ``n_tasks`` at its default) and ``random_state`` are set, and each is
meta-trained once per table column. Every method is scored on the very same
test episodes, drawn once; each figure is a mean over episodes with its 95%
Student-t confidence interval.

- sinusoids (the MAML paper's): meta-train on 1,000 sinusoid tasks, test on 100
  fresh ones, one episode each, K = 5 or 10 support points and 10 query points.
  Query MSE, and for the learners with a predictive standard deviation the
  share of query targets inside ``mean +/- 1.645 std`` (a 90% interval).
- shared-structure: ``python -m sklmeta``'s scenario (250 training tasks of
  ``make_classification_tasks`` sharing 4 informative features of 40, 60
  held-out tasks), 2-way 1- and 5-shot episodes, 15 query rows per class.
- digits: meta-train on digits 0-5, test on 6-9 (the command line's scenario,
  behind a StandardScaler), 3-way 1- and 5-shot episodes.

Usage::

    python benchmarks/closed_form.py            # full budget
    python benchmarks/closed_form.py --quick    # smoke test, under a minute
    python benchmarks/closed_form.py --parts sinusoid --learners DeepKernelGPRegressor \
        --set kernel=rbf                        # a diagnostic: one parameter changed
"""

import argparse
import datetime
import platform
import sys
import time
import types
import warnings

import numpy as np
import sklearn
import torch
from _machine import cpu_name, literal_settings  # benchmarks/, on the script's path
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sklmeta
from sklmeta import TaskSplitter
from sklmeta._cli.scenarios import SCENARIOS
from sklmeta.datasets import make_sinusoid_tasks
from sklmeta.model_selection import mean_ci

REGRESSORS = ["MAMLRegressor", "MetaSGDRegressor", "ANILRegressor", "ReptileRegressor",
              "MetaRidgeRegressor", "DeepKernelGPRegressor"]
CLASSIFIERS = ["MAMLClassifier", "MetaSGDClassifier", "ANILClassifier", "ReptileClassifier",
               "ProtoNetClassifier", "MetaRidgeClassifier"]
BUDGETS = {"full": dict(test_tasks=100, episodes=300, overrides={}),
           "quick": dict(test_tasks=10, episodes=10, overrides=dict(max_epochs=1))}
Z90 = 1.6448536269514722  # the two-sided 90% normal quantile
SETTINGS = {}  # --set: parameters changed from the defaults, for a diagnostic run


def fmt(scores, percent=False):
    m, lo, hi = mean_ci(np.asarray(scores, dtype=float))
    if percent:
        return f"{100 * m:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"
    return f"{m:.3f} [{lo:.3f}, {hi:.3f}]"


def meta_train(name, splitter, budget, seed, data, scaled=False):
    cls = getattr(sklmeta, name)
    settings = {k: v for k, v in SETTINGS.items() if k in cls().get_params()}
    est = cls(task_splitter=splitter, random_state=seed, **budget["overrides"], **settings)
    if scaled:
        est = make_pipeline(StandardScaler(), est)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        est.fit(*data)
    return est, time.perf_counter() - start


def sinusoids(budget, seed, learners):
    train = make_sinusoid_tasks(n_tasks=1000, n_samples=50, random_state=seed)
    test = make_sinusoid_tasks(n_tasks=budget["test_tasks"], n_samples=50,
                               random_state=seed + 1)
    rng = np.random.RandomState(seed + 2)
    order = [rng.permutation(50) for _ in test]  # support: the first K, query: the next 10
    print("\n### Sinusoids: query MSE and the coverage of 90% intervals\n")
    print("| learner | K | query MSE (lower is better) | coverage of mean +/- 1.645 std | "
          "meta-training s |")
    print("|---|---|---|---|---|")
    for k in (5, 10):
        for name in learners:
            meta, seconds = meta_train(
                name, TaskSplitter(k_shot=k, n_query=10, random_state=seed), budget, seed,
                (train,))
            mse, cover = [], []
            for (X, y), idx in zip(test, order):
                s, q = idx[:k], idx[k:k + 10]
                adapted = meta.adapt(X[s], y[s])
                try:
                    mean, std = adapted.predict(X[q], return_std=True)
                    cover.append(np.mean(np.abs(y[q] - mean) <= Z90 * std))
                except ValueError:  # no predictive std
                    mean = adapted.predict(X[q])
                mse.append(np.mean((y[q] - mean) ** 2))
            coverage = fmt(cover, percent=True) if cover else "-"
            print(f"| {name} | {k} | {fmt(mse)} | {coverage} | {seconds:.0f} |", flush=True)


def classification(label, setting, n_way, budget, seed, learners, scaled):
    X, y, groups = setting.X, setting.y, setting.groups
    print(f"\n### {label}: {setting.title}, query accuracy\n")
    print("| learner | shots | query accuracy | meta-training s |")
    print("|---|---|---|---|")
    for k in (1, 5):
        episodes = list(TaskSplitter(n_way=n_way, k_shot=k, n_query=15,
                                     n_tasks=budget["episodes"], random_state=seed + 2)
                        .split(X, y, groups))
        for name in learners:
            splitter = TaskSplitter(n_way=n_way, k_shot=k, n_query=15, random_state=seed)
            est, seconds = meta_train(name, splitter, budget, seed, setting.train, scaled)
            acc = [sklmeta.adapt(est, X[s], y[s]).score(X[q], y[q]) for s, q in episodes]
            print(f"| {name} | {k} | {fmt(acc, percent=True)} | {seconds:.0f} |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", nargs="+", default=["sinusoid", "shared-structure", "digits"],
                        choices=["sinusoid", "shared-structure", "digits"])
    parser.add_argument("--learners", nargs="+", default=None, metavar="CLASS",
                        help="sklmeta class names (default: every classifier or regressor)")
    parser.add_argument("--set", nargs="+", default=[], metavar="PARAM=VALUE",
                        help="diagnostic: set these parameters (Python literals, else "
                             "strings) on every learner that has them")
    opts = parser.parse_args(argv)
    SETTINGS.update(literal_settings(opts.set))
    torch.set_num_threads(1)
    budget = BUDGETS["quick" if opts.quick else "full"]
    print(f"# Closed-form learners: `python benchmarks/closed_form.py "
          f"{' '.join(sys.argv[1:])}`".rstrip() + "\n")
    print(f"{datetime.date.today()}, {cpu_name()}, Python {platform.python_version()}, "
          f"torch {torch.__version__}, scikit-learn {sklearn.__version__}, "
          f"sklmeta {sklmeta.__version__}; every learner at its defaults"
          + (f" except {SETTINGS}." if SETTINGS else "."))
    pick = (lambda names: [n for n in names if n in opts.learners]) if opts.learners else (
        lambda names: names)
    if "sinusoid" in opts.parts:
        sinusoids(budget, opts.seed, pick(REGRESSORS))
    ns = types.SimpleNamespace(seed=opts.seed, n_way=3)
    if "shared-structure" in opts.parts:
        (setting,) = SCENARIOS["shared-structure"].data(ns)
        classification("Shared structure", setting, 2, budget, opts.seed, pick(CLASSIFIERS),
                       scaled=False)
    if "digits" in opts.parts:
        (setting,) = SCENARIOS["digits"].data(ns)
        classification("Unseen digits", setting, 3, budget, opts.seed, pick(CLASSIFIERS),
                       scaled=True)


if __name__ == "__main__":
    main()
