"""AutoMeta against every single candidate, on tasks none of them trained on.

For each scenario and shot count, ``AutoMetaClassifier`` (default candidates:
every sklmeta meta-learner with its defaults, logistic regression, 1-NN and a
RandomForest fit on each support set, a pretrained embedding with a logistic or
nearest-centroid head) chooses on held-out meta-training tasks or classes and
refits its pick. Then every candidate is refit on all the meta-training data
and all are scored on the same episodes of *unseen* tasks, so the table shows
what AutoMeta's choice costs against the best single candidate in hindsight
(a paired 95% interval), and whether its held-out estimate agrees with the
score on unseen tasks. A last table refits AutoMeta with other seeds: is its
pick stable where the leaderboard's gap is large?

- digits: meta-train on digits 0-5, test on 3-way episodes of digits 6-9
  (AutoMeta holds out 3 of the 6 training classes to choose on);
- shared-structure: 2-way tasks that share 4 informative features of 40
  (``sklmeta/_cli/scenarios.py``'s family): 250 meta-training tasks, 60 unseen.

Usage::

    python benchmarks/automl.py            # full budget
    python benchmarks/automl.py --quick    # smoke test
"""

import argparse
import datetime
import platform
import shlex
import sys
import time
import warnings

import sklearn
import torch
from _machine import cpu_name  # benchmarks/, on the path of a script run from it
from sklearn.base import clone
from sklearn.datasets import load_digits

import sklmeta
from sklmeta import AutoMetaClassifier, TaskSplitter
from sklmeta.datasets import make_classification_tasks
from sklmeta.estimators import META_ESTIMATORS
from sklmeta.model_selection import compare, mean_ci, paired_ci
from sklmeta.transfer import PerSupport

BUDGETS = {
    "full": dict(shots=(1, 5), valid_episodes=100, test_episodes=200, seeds=(1, 2)),
    "quick": dict(shots=(5,), valid_episodes=10, test_episodes=10, seeds=()),
}
META_NAMES = {cls.__name__.removesuffix("Classifier") for cls in META_ESTIMATORS}


def digits(seed, quick):
    X, y = load_digits(return_X_y=True)
    seen = y <= 5
    return dict(name="digits", n_way=3, train=(X[seen], y[seen]), X=X[~seen], y=y[~seen],
                groups=None, episodes=100, what="3-way episodes of the unseen digits 6-9, "
                "meta-trained on digits 0-5")


def shared_structure(seed, quick):
    n_train, n_test = (40, 10) if quick else (250, 60)
    tasks = make_classification_tasks(n_tasks=n_train + n_test, n_samples=100, n_features=40,
                                      n_informative=4, random_state=seed)
    X, y, groups = sklmeta.stack_tasks(tasks[n_train:])
    return dict(name="shared-structure", n_way=2, train=(tasks[:n_train],), X=X, y=y,
                groups=groups, episodes=320,
                what=f"2-way episodes of {n_test} unseen tasks, meta-trained on {n_train}")


def kind(name, est):
    if isinstance(est, PerSupport):
        return "classical"
    return "meta" if name in META_NAMES else "transfer"


def pct(m, lo, hi):
    return f"{100 * m:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def points(m, lo, hi):
    return f"{100 * m:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def fit_auto(data, k, seed, b):
    splitter = TaskSplitter(n_way=data["n_way"], k_shot=k, n_query=15,
                            n_tasks=data["episodes"], random_state=seed)
    return AutoMetaClassifier(task_splitter=splitter, n_episodes=b["valid_episodes"],
                              random_state=seed).fit(*data["train"])


def run(scenario, k, seed, b, quick):
    data = scenario(seed, quick)
    start = time.perf_counter()
    auto = fit_auto(data, k, seed, b)
    search = time.perf_counter() - start
    ests = {"AutoMeta": auto}
    for name, est in auto.candidates_.items():
        ests[name] = (auto.best_estimator_ if name == auto.best_name_
                      else clone(est).fit(*data["train"]))
    test = TaskSplitter(n_way=data["n_way"], k_shot=k, n_query=15,
                        n_tasks=b["test_episodes"], random_state=seed + 1000)
    table, long = compare(ests, data["X"], data["y"], groups=data["groups"], cv=test,
                          return_scores=True)
    per = {n: g["score"].to_numpy() for n, g in long.groupby("estimator", sort=False)}
    board = auto.leaderboard_
    print(f"### {data['name']}, {k}-shot: {data['what']}\n")
    print("| candidate | kind | held-out (choice) | unseen tasks | meta-train s |")
    print("|---|---|---|---|---|")
    for name in board.index:
        row = board.loc[name]
        held = pct(row["mean"], row["ci_low"], row["ci_high"]) if row["status"] == "ok" \
            else row["status"]
        unseen = pct(*mean_ci(per[name]))
        mark = " (pick)" if name == auto.best_name_ else ""
        print(f"| {name}{mark} | {kind(name, auto.candidates_[name])} | {held} | {unseen} | "
              f"{row['fit_seconds']:.1f} |")
    print(f"| **AutoMeta** | its pick, refit | {100 * auto.best_score_:.1f}% (the pick's) | "
          f"{pct(*mean_ci(per['AutoMeta']))} | {search:.0f} (search and refit) |\n")
    groups = {}
    for name, est in auto.candidates_.items():
        groups.setdefault(kind(name, est), []).append(name)
    best_all = max(auto.candidates_, key=lambda n: per[n].mean())
    lines = [f"AutoMeta picked **{auto.best_name_}** "
             f"(held out: {auto.validation_split_['unit']} "
             f"{auto.validation_split_['held_out'][:10]}, {len(board)} candidates)"]
    for label, names in (("classical", groups.get("classical", [])),
                         ("meta-learner", groups.get("meta", []))):
        if names:
            best = max(names, key=lambda n: per[n].mean())
            lines.append(f"AutoMeta minus the best {label} on unseen tasks ({best}): "
                         + points(*paired_ci(per["AutoMeta"], per[best])))
    worst_margin = min(groups.get("classical", []),
                       key=lambda n: per["AutoMeta"].mean() - per[n].mean())
    lines.append(f"AutoMeta minus every classical learner, the smallest margin "
                 f"({worst_margin}): " + points(*paired_ci(per["AutoMeta"], per[worst_margin])))
    lines.append(f"AutoMeta minus the best single candidate in hindsight ({best_all}): "
                 + points(*paired_ci(per["AutoMeta"], per[best_all])))
    m, lo, hi = mean_ci(per["AutoMeta"])
    agree = "inside" if lo <= auto.best_score_ <= hi else "outside"
    lines.append(f"held-out estimate of the pick {100 * auto.best_score_:.1f}% against "
                 f"{pct(m, lo, hi)} on unseen tasks: {agree} the interval")
    print("\n".join(f"- {line}" for line in lines))
    print(f"\n{b['valid_episodes']} held-out and {b['test_episodes']} unseen episodes, 15 "
          f"query points per class; seed {seed}. _Time: {time.perf_counter() - start:.0f} s._\n")
    return auto


def stability(scenario, k, seeds, b, quick, first):
    rows = [first] + [fit_auto(scenario(s, quick), k, s, b) for s in seeds]
    print("| seed | pick | held-out score | runner-up | runner-up minus pick, paired |")
    print("|---|---|---|---|---|")
    for s, auto in zip((0, *seeds), rows):
        board = auto.leaderboard_
        second = board.index[1]
        print(f"| {s} | {auto.best_name_} | {100 * auto.best_score_:.1f}% | {second} | "
              f"{points(*board.loc[second, ['diff', 'diff_ci_low', 'diff_ci_high']])} |")
    print()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke-test budget")
    parser.add_argument("--scenario", nargs="+", default=["digits", "shared-structure"],
                        choices=["digits", "shared-structure"])
    args = parser.parse_args(argv)
    b = BUDGETS["quick" if args.quick else "full"]
    torch.set_num_threads(1)
    start = time.perf_counter()
    print("# AutoMeta against every single candidate\n")
    print(f"- machine: {cpu_name()}, {platform.platform()}, torch {torch.__version__}, "
          f"scikit-learn {sklearn.__version__}, 1 thread, sklmeta {sklmeta.__version__}")
    print(f"- date: {datetime.date.today().isoformat()}")
    print(f"- command: `python {' '.join(shlex.quote(a) for a in sys.argv)}`\n")
    scenarios = {"digits": digits, "shared-structure": shared_structure}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # no early stopping on small splits
        for name in args.scenario:
            for k in b["shots"]:
                first = run(scenarios[name], k, 0, b, args.quick)
                if b["seeds"] and k == max(b["shots"]):
                    print(f"#### {name}, {k}-shot: the pick across seeds\n")
                    stability(scenarios[name], k, b["seeds"], b, args.quick, first)
    print(f"Total wall time: {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
