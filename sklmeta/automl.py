"""AutoMeta: the best learner for your tasks, chosen on tasks it did not train on.

:class:`AutoMetaClassifier` and :class:`AutoMetaRegressor` hold out tasks
(groups, task datasets), else classes, else rows, by the very split early
stopping uses (:func:`sklmeta._episodes.hold_out`); meta-train every candidate
on the rest; score them all on one list of held-out episodes, drawn once; pick
the best mean score; and refit the winner on all the data. The candidates are,
by default, every meta-estimator of :data:`sklmeta.estimators.META_ESTIMATORS`
with its defaults, classical learners fit on each support set
(:class:`sklmeta.transfer.PerSupport`) and transfer learners trained on the
pooled meta-training data (:mod:`sklmeta.transfer`).
"""

import numbers
import time
import warnings

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _get_feature_names, check_is_fitted

from ._adaptation import task_list_episodes
from ._candidates import default_candidates, final_step, fit_candidate, named_candidates
from ._episodes import TaskPool, hold_out, label_repr, n_folds
from ._support import SupportLearner
from .tasks import TaskSplitter

__all__ = ["AutoMetaClassifier", "AutoMetaRegressor", "default_candidates"]
# to_payload and from_payload serve sklmeta.persistence


# ------------------------------------------------------------------- evaluation
def _fit_args(pools, unit):
    """``(args, kwargs)`` of a fit on ``pools``, in the form the data came in."""
    if unit == "tasks":
        return ([(p.X, p.y) for p in pools],), {}
    if unit == "groups":
        X = np.concatenate([p.X for p in pools])
        y = np.concatenate([p.y for p in pools])
        groups = np.repeat(np.arange(len(pools)), [len(p.y) for p in pools])
        return (X, y), {"groups": groups}
    (pool,) = pools
    return (pool.X, pool.y), {}


def _evaluate(name, estimator, fit_args, fit_kwargs, blocks, scoring, deadline):
    """Meta-train one candidate and score it on the episodes; a dict of the results.

    ``blocks`` is ``[(X, y, episodes)]``: one dataset and its episodes, or each
    held-out task and its own (:func:`sklmeta._adaptation.task_list_episodes`).
    """
    from .model_selection import compare

    if deadline is not None and time.time() > deadline:
        return {"name": name, "status": "skipped: time_budget spent"}
    try:
        start = time.perf_counter()
        with warnings.catch_warnings():
            # a candidate's own warnings (no early stopping on a small split) would
            # repeat for every candidate; the leaderboard says how each did
            warnings.simplefilter("ignore")
            fit_candidate(estimator, fit_args, fit_kwargs)
            fit_seconds = time.perf_counter() - start
            start = time.perf_counter()
            scores = np.concatenate([
                compare({name: estimator}, X, y, cv=episodes, scoring=scoring,
                        return_scores=True)[1]["score"].to_numpy(dtype=float)
                for X, y, episodes in blocks])
    except Exception as e:  # noqa: BLE001 - one failing candidate must not end the search
        return {"name": name, "status": f"failed: {type(e).__name__}: {e}"}
    if not np.all(np.isfinite(scores)):
        return {"name": name, "status": "failed: non-finite episode scores"}
    return {"name": name, "status": "ok", "scores": scores, "fit_seconds": fit_seconds,
            "adapt_seconds": (time.perf_counter() - start) / len(scores)}


def _paired_se(d, folds=None):
    """The standard error of the mean of paired differences ``d``.

    Without ``folds``, or with one fold: the episodes' own, as if independent.
    With fold labels: never below that, and the cluster-robust one (CR1, the
    folds as clusters) where it is larger: a fold's episodes share its held-out
    tasks or classes, so they are not independent, and the folds' mean
    differences show how much the difference moves with what is held out.
    """
    n = len(d)
    se = d.std(ddof=1) / np.sqrt(n) if n > 1 else 0.0
    if folds is None:
        return se
    labels, inverse, counts = np.unique(folds, return_inverse=True, return_counts=True)
    g = len(labels)
    if g < 2:
        return se
    fold_means = np.bincount(inverse, weights=d) / counts
    clustered = np.sqrt(g / (g - 1) * np.sum((counts / n) ** 2 * (fold_means - d.mean()) ** 2))
    return max(se, float(clustered))


def _episode_index(folds):
    """``scores_``'s index: each held-out episode's fold, and its number over all folds."""
    return pd.MultiIndex.from_arrays([np.asarray(folds), np.arange(len(folds))],
                                     names=["fold", "episode"])


def _pick(ok, selection):
    """The winner among the scored candidates ``ok`` (in the candidates' order).

    "best": the highest mean (ties: the earlier). "one_se": the first candidate
    whose mean is within one standard error of the paired difference to the
    highest mean (Breiman's one-standard-error rule, candidates listed cheapest
    first): what the held-out episodes cannot tell apart goes to the simpler.
    "one_se_folds": the same rule with the standard error clustered by fold
    (:func:`_paired_se`, from each result's ``folds``, the episodes' fold labels).
    """
    best = max(ok, key=lambda r: r["scores"].mean())  # ties: the earlier (cheaper) one
    if selection == "best":
        return best

    def within_one_se(r):
        d = r["scores"] - best["scores"]
        folds = r.get("folds") if selection == "one_se_folds" else None
        return d.mean() >= -_paired_se(d, folds)

    return next(r for r in ok if within_one_se(r))  # the best itself always is


def _combine(name, parts):
    """One candidate's results over the folds: the first that did not run, else all."""
    for r in parts:
        if r["status"] != "ok":
            return r
    scores = [r["scores"] for r in parts]
    adapt = sum(r["adapt_seconds"] * len(sc) for r, sc in zip(parts, scores))
    n = sum(len(sc) for sc in scores)
    return {"name": name, "status": "ok", "scores": np.concatenate(scores),
            "folds": np.concatenate([np.full(len(sc), i) for i, sc in enumerate(scores)]),
            "fit_seconds": float(np.mean([r["fit_seconds"] for r in parts])),
            "adapt_seconds": adapt / n}


def _leaderboard(results, confidence, selection="best"):
    """The leaderboard (highest mean first) and the winner's name."""
    from .model_selection import mean_ci, paired_ci

    ok = [r for r in results if r["status"] == "ok"]
    if not ok:
        reasons = "; ".join(f"{r['name']}: {r['status']}" for r in results)
        raise ValueError(f"No candidate could be scored on the held-out episodes: {reasons}.")
    best = _pick(ok, selection)
    rows = []
    for r in results:
        row = dict.fromkeys(("mean", "ci_low", "ci_high", "diff", "diff_ci_low",
                             "diff_ci_high", "fit_seconds", "adapt_seconds"), np.nan)
        row.update(name=r["name"], n_episodes=0, status=r["status"])
        if r["status"] == "ok":
            m, lo, hi = mean_ci(r["scores"], confidence)
            d, dlo, dhi = paired_ci(r["scores"], best["scores"], confidence)
            row.update(mean=m, ci_low=lo, ci_high=hi, diff=d, diff_ci_low=dlo,
                       diff_ci_high=dhi, fit_seconds=r["fit_seconds"],
                       adapt_seconds=r["adapt_seconds"], n_episodes=len(r["scores"]))
        rows.append(row)
    table = pd.DataFrame(rows).set_index("name")
    table.index.name = None
    table = table.sort_values("mean", ascending=False, kind="stable", na_position="last")
    return table, best["name"]


def _adaptable(train, valid, split):
    """A hold-out of task datasets less those wider than every task left to train on.

    Candidates adapt to any width up to the widest they trained on (narrower
    tasks are zero-padded); a held-out task wider than that could not be scored,
    so it is trained on instead, and ``split`` says so.
    """
    widest = max(p.X.shape[1] for p in train)
    wide = [p for p in valid if p.X.shape[1] > widest]
    if not wide:
        return train, valid, split
    keys = {p.key for p in wide}
    split = {**split, "held_out": [k for k in split["held_out"] if k not in keys],
             "n_kept": split["n_kept"] + len(wide),
             "trained_on_too_wide": sorted(keys)}
    return train + wide, [p for p in valid if p.key not in keys], split


def _rows(pool, need, fraction, rng):
    """The hold-out of rows of :func:`sklmeta._episodes.hold_out` (one dataset, no classes)."""
    return hold_out([pool], None, n_way=None, need=need, fraction=fraction, rng=rng)


def _stratified_rows(pool, need, fraction, rng):
    """Rows of every class held out: ``fraction`` of each, at least ``need``, and one kept."""
    held = np.zeros(len(pool.y), dtype=bool)
    for c in np.unique(pool.y):
        rows = np.flatnonzero(pool.y == c)
        n_val = max(need, int(round(fraction * len(rows))))
        if len(rows) - n_val < 1:
            return [pool], None, None, (
                f"class {label_repr(c)} has {len(rows)} rows, too few to hold out "
                f"k_shot + n_query = {need} and keep one")
        held[rng.permutation(rows)[:n_val]] = True
    split = {"unit": "rows", "held_out": np.flatnonzero(held).tolist(),
             "n_kept": int((~held).sum())}
    return ([TaskPool(pool.X[~held], pool.y[~held], pool.name, pool.key)],
            [TaskPool(pool.X[held], pool.y[held], pool.name, pool.key)], split, "")


# ------------------------------------------------------------------ persistence
_SAVED = ("best_name_", "best_score_", "validation_split_", "n_features_in_", "task_widths_",
          "n_way_", "unit_", "feature_names_in_")


def to_payload(auto, winner_payload, encode):
    """What :func:`sklmeta.save` stores of a fitted AutoMeta: plain values and the winner.

    ``winner_payload`` and ``encode`` are :mod:`sklmeta.persistence`'s (the payload of
    a meta-estimator or of a learner of :mod:`sklmeta.transfer` that holds
    scikit-learn estimators only; a value as tensors and plain values).
    """
    check_is_fitted(auto, "best_estimator_", msg=(
        f"This {type(auto).__name__} is not fitted yet: sklmeta.save saves fitted "
        "estimators; call fit first."))
    try:
        winner = winner_payload(auto.best_estimator_)
    except TypeError:
        raise TypeError(
            f"sklmeta.save saves an AutoMeta whose winner is one of sklmeta's "
            f"meta-estimators, or a PerSupport or PooledRegressor of scikit-learn's own "
            f"estimators; this one chose {auto.best_name_!r} "
            f"({type(auto.best_estimator_).__name__}), which holds objects only pickle can "
            "store. Save it with joblib.dump (which runs code on load: load only files you "
            "trust), or keep auto.leaderboard_ (a DataFrame) and refit.") from None
    params = auto.get_params(deep=False)
    candidates = params.pop("candidates")
    try:  # scikit-learn's own estimators are stored as their class name and parameters
        params = {**encode(params, "params"), "candidates": encode(candidates, "candidates")}
    except ValueError:
        warnings.warn(
            "sklmeta.save saves candidates only when they are scikit-learn's own estimators "
            "(others are code); the loaded AutoMeta has candidates=None (the defaults). Set "
            "them again with set_params(candidates=...) before refitting.",
            UserWarning, stacklevel=3)
        params = {**encode(params, "params"), "candidates": None}
    board = auto.leaderboard_
    return {
        "class": type(auto).__name__,
        "params": params,
        "winner": winner,
        "attributes": encode({k: getattr(auto, k) for k in _SAVED if hasattr(auto, k)},
                             "attributes"),
        "leaderboard": encode({"index": [str(i) for i in board.index],
                               "columns": {c: board[c].tolist() for c in board.columns}},
                              "leaderboard"),
        "scores": encode({str(c): auto.scores_[c].to_numpy().copy() for c in auto.scores_.columns},
                         "scores"),
        "score_folds": encode(auto.scores_.index.get_level_values("fold").to_numpy().copy(),
                              "score_folds"),
    }


def from_payload(payload, load_winner, decode):
    """The fitted AutoMeta :func:`to_payload` stored; ``load_winner`` rebuilds the winner."""
    cls = {c.__name__: c for c in (AutoMetaClassifier, AutoMetaRegressor)}[payload["class"]]
    auto = cls(**decode(payload["params"]))
    auto._validate_params()
    best = load_winner(payload["winner"])
    board = decode(payload["leaderboard"])
    leaderboard = pd.DataFrame(board["columns"], index=board["index"])
    scores = pd.DataFrame(decode(payload["scores"]))
    # a file saved before fold labels were kept: one fold (what one_se_folds then assumes)
    folds = decode(payload["score_folds"]) if "score_folds" in payload else np.zeros(len(scores))
    scores.index = _episode_index(np.asarray(folds, dtype=int))
    for name, value in {**decode(payload["attributes"]), "best_estimator_": best,
                        "leaderboard_": leaderboard, "scores_": scores}.items():
        setattr(auto, name, value)
    return auto


# ------------------------------------------------------------------ the estimator
class _AutoMetaBase(SupportLearner):
    """Meta-validation of candidates on held-out tasks, the winner refit on all data."""

    _one_width = False  # task lists of different widths, as the meta-estimators take

    _parameter_constraints = {
        "candidates": [list, tuple, dict, None],
        "add_defaults": ["boolean"],
        "task_splitter": [TaskSplitter, None],
        "scoring": [str, callable, None],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_episodes": [Interval(numbers.Integral, 2, None, closed="left")],
        "time_budget": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "n_jobs": [numbers.Integral, None],
        "confidence": [Interval(numbers.Real, 0, 1, closed="neither")],
        "cv": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "selection": [StrOptions({"one_se", "one_se_folds", "best"})],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    def __init__(self, candidates=None, *, add_defaults=False, task_splitter=None, scoring=None,
                 validation_fraction=0.2, cv="auto", n_episodes=100, time_budget=None,
                 n_jobs=None, confidence=0.95, selection="one_se", verbose=0,
                 random_state=None):
        self.candidates = candidates
        self.add_defaults = add_defaults
        self.task_splitter = task_splitter
        self.scoring = scoring
        self.validation_fraction = validation_fraction
        self.cv = cv
        self.n_episodes = n_episodes
        self.time_budget = time_budget
        self.n_jobs = n_jobs
        self.confidence = confidence
        self.selection = selection
        self.verbose = verbose
        self.random_state = random_state

    def _candidates(self, splitter, seed):
        classifier = self._is_classifier()
        task = "classification" if classifier else "regression"
        defaults = default_candidates(task, splitter, seed)
        if self.candidates is None:
            return defaults
        given = named_candidates(self.candidates, classifier, splitter, seed)
        if not self.add_defaults:
            return given
        clash = sorted(set(given) & set(defaults))
        if clash:
            raise ValueError(f"candidates named {clash} clash with the defaults' names; "
                             "rename them.")
        return {**defaults, **given}

    def _n_folds(self, pools, n_way):
        if self.cv == "auto":  # and at least one held-out episode a fold
            return min(n_folds(pools, n_way, self.validation_fraction), self.n_episodes)
        most = n_folds(pools, n_way, self.validation_fraction, most=np.inf, enough=np.inf)
        if self.cv > most:
            raise ValueError(
                f"cv={self.cv} disjoint hold-outs of validation_fraction="
                f"{self.validation_fraction} do not fit in the data: at most {most}.")
        if self.cv > self.n_episodes:
            raise ValueError(f"cv={self.cv} folds need at least as many held-out episodes; "
                             f"n_episodes={self.n_episodes}.")
        return self.cv

    def _split(self, pools, unit, n_way, splitter, seed, fold=0):
        need = splitter.k_shot + splitter.n_query
        rng = np.random.RandomState(seed)
        train, valid, split, why = hold_out(pools, unit, n_way=n_way, need=need,
                                            fraction=self.validation_fraction, rng=rng,
                                            fold=fold)
        if valid is None and len(pools) == 1:
            # too few classes (or tasks): rows, which tell less about new classes
            split_rows = _stratified_rows if n_way is not None else _rows
            train, valid, split, why_rows = split_rows(pools[0], need, self.validation_fraction,
                                                       rng)
            if valid is not None and n_way is not None:
                warnings.warn(
                    f"AutoMeta holds out rows, not classes: {why}. The candidates are then "
                    "scored on new rows of the classes they trained on, which says less "
                    "about unseen classes.", UserWarning, stacklevel=3)
            why = why_rows if n_way is None else f"{why}; {why_rows}"
        if valid is None:
            n = sum(len(p.y) for p in pools)
            raise ValueError(f"AutoMeta cannot hold out data to choose on (n_samples={n}): "
                             f"{why}.")
        return train, valid, split

    def fit(self, X, y=None, groups=None):
        """Choose the best candidate on held-out tasks, then refit it on all the data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or list of (X_i, y_i)
            One dataset (episodes drawn by class, or by group), or a list of
            task datasets (of different widths, too: each held-out episode is
            scored at its task's width, and candidates that need one width are
            skipped).
        y : array-like of shape (n_samples,), default=None
            Targets; None when ``X`` is a list of tasks.
        groups : array-like of shape (n_samples,), default=None
            Task membership: whole groups are held out, and each episode is
            drawn from one group.

        Returns
        -------
        self : object
            Fitted: ``best_estimator_``, ``leaderboard_``.
        """
        started = time.time()
        pools, fitted = self._pools(X, y, groups)
        if fitted["unit_"] != "tasks":
            names = _get_feature_names(X)
            if names is not None:
                fitted["feature_names_in_"] = names
        splitter = self.task_splitter if self.task_splitter is not None else TaskSplitter()
        rng = check_random_state(self.random_state)
        split_seed, episode_seed, candidate_seed = rng.randint(2**31, size=3)
        candidates = self._candidates(self.task_splitter, int(candidate_seed))
        n_way = fitted.get("n_way_")
        folds, splits, kept, wide = [], [], [], set()
        n_fold = self._n_folds(pools, n_way)
        for fold in range(n_fold):
            train, valid, split = self._split(pools, fitted["unit_"], n_way, splitter,
                                              split_seed, fold)
            if "task_widths_" in fitted:
                train, valid, split = _adaptable(train, valid, split)
                wide.update(split.get("trained_on_too_wide", ()))
            if valid:  # a fold whose every held-out task was too wide scores nothing
                kept.append((fold, train, valid, split))
        for i, (fold, train, valid, split) in enumerate(kept):
            # the episodes shared out among the folds that can be scored on
            unit = None if split["unit"] == "rows" else fitted["unit_"]  # one pool each side
            n_tasks = self.n_episodes // len(kept) + (i < self.n_episodes % len(kept))
            episode_splitter = clone(splitter).set_params(
                n_tasks=n_tasks, random_state=int(episode_seed) + fold)
            if n_way is not None and splitter.n_way is None:
                episode_splitter.set_params(n_way=min(n_way, min(len(np.unique(p.y))
                                                                 for p in valid)))
            if unit == "tasks":  # each episode scored in its own task, at the task's width
                blocks = task_list_episodes([(p.X, p.y) for p in valid], episode_splitter)
            else:
                (X_v, y_v), g = _fit_args(valid, unit)
                blocks = [(X_v, y_v, list(episode_splitter.split(X_v, y_v,
                                                                  g.get("groups"))))]
            folds.append((*_fit_args(train, unit), blocks))
            splits.append(split)
        if not folds:  # only when every task is wider than all the others in its fold
            raise ValueError(
                f"AutoMeta cannot hold out task datasets to choose on: each held-out one "
                f"is wider than every task left to train on (widths "
                f"{fitted['task_widths_']}).")
        split = splits[0] if n_fold == 1 else {
            "unit": splits[0]["unit"], "n_kept": splits[0]["n_kept"],
            "held_out": sorted(k for sp in splits for k in sp["held_out"]),
            "folds": [sp["held_out"] for sp in splits]}
        if wide:  # a skipped fold's too, which no kept split records
            split = {**split, "trained_on_too_wide": sorted(wide)}
        deadline = None if self.time_budget is None else started + self.time_budget
        results, every = [], candidates
        if "task_widths_" in fitted:  # learners of one width cannot take these tasks
            one_width = [n for n, est in candidates.items()
                         if getattr(final_step(est), "_one_width", False)]
            results = [{"name": n, "status": "skipped: needs task datasets of one width"}
                       for n in one_width]
            candidates = {n: est for n, est in candidates.items() if n not in one_width}
            if not candidates:
                raise ValueError(
                    f"The task datasets have different widths {fitted['task_widths_']} and "
                    f"every candidate ({one_width}) needs one width.")
        # the first (cheapest) candidate always runs: there is then something to choose
        jobs = (delayed(_evaluate)(name, clone(est), fit_args, fit_kwargs, blocks,
                                   self.scoring, deadline if i else None)
                for i, (name, est) in enumerate(candidates.items())
                for fit_args, fit_kwargs, blocks in folds)
        parts = Parallel(n_jobs=self.n_jobs, return_as="generator")(jobs)
        for name in candidates:
            r = _combine(name, [next(parts) for _ in folds])
            results.append(r)
            if self.verbose:
                if r["status"] == "ok":
                    print(f"[AutoMeta] {r['name']}: {r['scores'].mean():.4f} "
                          f"(meta-train {r['fit_seconds']:.1f} s, "
                          f"{r['adapt_seconds'] * 1e3:.1f} ms per episode)", flush=True)
                else:
                    print(f"[AutoMeta] {r['name']}: {r['status']}", flush=True)
        failed = [r for r in results if r["status"].startswith("failed")]
        if failed:
            warnings.warn("Candidates that failed (left out of the choice): " + "; ".join(
                f"{r['name']}: {r['status']}" for r in failed), UserWarning, stacklevel=2)
        table, winner = _leaderboard(results, self.confidence, self.selection)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            best = fit_candidate(clone(candidates[winner]), *_fit_args(pools, fitted["unit_"]))
        if self.verbose:
            print(f"[AutoMeta] chose {winner}; refit on all the data in "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
        ok = [r for r in results if r["status"] == "ok"]
        scores = pd.DataFrame({r["name"]: r["scores"] for r in ok},
                              index=_episode_index(ok[0]["folds"]))
        fitted.update(best_estimator_=best, best_name_=winner, candidates_=every,
                      best_score_=float(table.loc[winner, "mean"]), leaderboard_=table,
                      scores_=scores, validation_split_=split)
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]:
            delattr(self, name)
        for name, value in fitted.items():
            setattr(self, name, value)
        return self

    def adapt(self, X, y):
        """Adapt the chosen learner to a new task's support set.

        Parameters
        ----------
        X : array-like of shape (n_support, n_features)
            The support set's features.
        y : array-like of shape (n_support,)
            Its labels or targets.

        Returns
        -------
        estimator
            A new fitted estimator that predicts: ``best_estimator_.adapt(X, y)``.
        """
        from .adapted import adapt

        check_is_fitted(self, "best_estimator_", msg=(
            f"{type(self).__name__} is not fitted yet: call fit(tasks) before adapt."))
        return adapt(self.best_estimator_, X, y)

    def score(self, X, y=None, groups=None):
        """Mean few-shot score of the chosen learner over episodes of ``(X, y)``.

        The episodes are this estimator's ``task_splitter``'s (an unseeded one
        takes ``random_state``), scored with ``scoring`` on each query set after
        :meth:`adapt` to its support set.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or list of (X_i, y_i)
            The data to draw episodes from, or a list of tasks as in ``fit``.
        y : array-like of shape (n_samples,), default=None
            Targets; None when ``X`` is a list of tasks.
        groups : array-like of shape (n_samples,), default=None
            Task membership: each episode is drawn from one group.

        Returns
        -------
        float
            The mean score over the episodes.
        """
        check_is_fitted(self, "best_estimator_")
        return self._mean_score(X, y, groups, self.scoring)

    def __sklmeta_adapter__(self):
        """The chosen learner's adapter (see :func:`sklmeta.model_selection.adapter`).

        Returns
        -------
        estimator
            Unfitted; its ``fit(X, y)`` adapts the chosen learner.
        """
        from .model_selection import adapter

        return adapter(self.best_estimator_)


_DOC = """{summary}

``fit(X, y[, groups])`` or ``fit(tasks)`` holds out whole tasks (groups, task
datasets), else {rows}, as early stopping does
(``validation_split_`` records which), in ``cv`` disjoint folds where the tasks
or classes are few; meta-trains every candidate on the rest;
scores each on the same ``n_episodes`` held-out episodes, drawn once by
``task_splitter``, with ``scoring``; picks by ``selection`` (by default the
first candidate, cheapest first, within one standard error of the best mean);
and refits it on all the data (``best_estimator_``). ``leaderboard_`` says how each did, with the
paired difference to the winner and its confidence interval. ``adapt`` and
``score`` are the winner's.

Parameters
----------
candidates : list or dict of estimators, default=None
    What to choose from. None: :func:`default_candidates` (every sklmeta
    meta-estimator with its defaults, classical learners fit on each support
    set, transfer learners). A dict names them; a list is named by class. An
    estimator without ``adapt`` (``LogisticRegression()``) is fit on each
    support set (:class:`sklmeta.transfer.PerSupport`). Meta-estimators are
    meta-trained; give them the ``task_splitter`` you want.
add_defaults : bool, default=False
    Whether ``candidates`` are added to the defaults instead of replacing them.
task_splitter : TaskSplitter, default=None
    The episodes: of the default candidates' meta-training and ``score``, and
    of the held-out episodes the choice is made on (with ``n_episodes`` of
    them). None: ``TaskSplitter()``.
scoring : str, callable or None, default=None
    One scikit-learn metric, as :func:`sklmeta.model_selection.episode_scorer`
    takes it (greater is better: "neg_log_loss", "neg_mean_squared_error"); None
    is the adapted estimator's ``score`` ({metric}).
validation_fraction : float, default=0.2
    Share of the tasks (or classes, or rows) held out to choose on.
cv : int or "auto", default="auto"
    How many disjoint hold-outs of ``validation_fraction`` each candidate is
    meta-trained and scored on; the ``n_episodes`` are shared out among them
    and the scores of all folds make one leaderboard. "auto": one where a
    hold-out holds 10 or more tasks or classes (or when rows are held out);
    else as many as fit, at most 5 (4 held-out datasets of 22, or 5 held-out
    classes of 20, rank the candidates by luck more than by merit). Each fold
    costs a meta-training of every candidate.
n_episodes : int, default=100
    Held-out episodes every candidate is scored on.
time_budget : float, default=None
    Seconds from the start of ``fit``: candidates not started by then are
    skipped (cheap candidates come first; the first always runs). The winner's
    refit comes after. None: no limit.
n_jobs : int, default=None
    Candidates evaluated in parallel with joblib (``joblib.parallel_backend("dask")``
    spreads them over a cluster).
confidence : float, default=0.95
    Level of the leaderboard's Student-t intervals.
selection : {{"one_se", "one_se_folds", "best"}}, default="one_se"
    How the winner is chosen from the held-out scores. "best": the highest
    mean. "one_se": the one-standard-error rule (Breiman et al.'s, as CART
    and glmnet use it): the first candidate, in the order the candidates are
    listed, whose mean is within one standard error of its paired difference
    to the highest mean. The defaults are listed cheapest first (classical
    learners, then transfer learners, then meta-learners), so where the
    held-out episodes cannot tell two apart the simpler wins; list your own
    candidates in the order you would prefer them. With few held-out tasks
    the highest held-out mean is often luck: on the benchmark's binary
    collection (4 held-out datasets) it chose a meta-learner 7 points under
    logistic regression on the unseen datasets. "one_se_folds": the same
    rule with a standard error that counts a fold's episodes as one cluster
    (they share its held-out tasks or classes): the cluster-robust one over
    the folds where it is larger than the episodes' own, which it never goes
    below; with one fold it is "one_se".
verbose : int, default=0
    Print each candidate's score and times as it finishes.
random_state : int, RandomState instance or None, default=None
    Seeds the hold-out, the episodes and every default candidate.

Attributes
----------
best_estimator_ : estimator
    The winner, refit on all the data.
best_name_ : str
    Its name in the leaderboard.
best_score_ : float
    Its mean held-out score (not always the highest: see ``selection``).
candidates_ : dict of str to estimator
    The candidates chosen from, by name, unfitted (the defaults as built).
leaderboard_ : pandas.DataFrame
    A row per candidate, highest mean first: ``mean``, ``ci_low``, ``ci_high``,
    ``diff``, ``diff_ci_low``, ``diff_ci_high`` (candidate minus winner, paired
    over the episodes), ``fit_seconds`` (meta-training), ``adapt_seconds`` (per
    episode, adapting and scoring), ``n_episodes``, ``status`` ("ok", or why
    it was skipped or failed).
scores_ : pandas.DataFrame
    Every held-out episode's score, a column per scored candidate; the index
    has two levels, ``fold`` (the episode's fold, numbered as
    ``validation_split_["folds"]``) and ``episode`` (its number over all folds).
validation_split_ : dict
    What was held out: ``unit``, ``held_out``, ``n_kept`` (a fold's), and with
    several folds ``folds``, each fold's held-out tasks or classes. Task
    datasets wider than every task left to train on cannot be scored; they are
    trained on instead (``trained_on_too_wide``). A fold left with no task to
    score on is dropped from ``folds``, and the others share its episodes.
n_features_in_ : int
    Width of the data (the widest task's, for task datasets of different
    widths; ``adapt`` then takes any width up to it).
task_widths_ : list of int
    The task datasets' widths; set only when they differ.
{n_way}unit_ : {{"tasks", "groups", None}}
    What a task was at fit.

See Also
--------
sklmeta.model_selection.compare : Scores fitted estimators on shared episodes.
sklmeta.transfer.PerSupport : How classical learners join the candidates.

Notes
-----
The choice is honest as far as the held-out tasks resemble new ones: on
{unseen}, the candidates never saw the held-out ones. The winner's held-out
score is the best of several, so it is optimistic by about the selection
noise, the width of the intervals.

Examples
--------
{example}
"""

_CLF_EXAMPLE = """>>> from sklearn.linear_model import LogisticRegression
>>> from sklearn.neighbors import KNeighborsClassifier
>>> from sklmeta import AutoMetaClassifier, ProtoNetClassifier, TaskSplitter
>>> from sklmeta.datasets import make_classification_tasks
>>> tasks = make_classification_tasks(n_tasks=30, random_state=0)
>>> splitter = TaskSplitter(n_way=2, k_shot=5, n_query=5, n_tasks=32, random_state=0)
>>> auto = AutoMetaClassifier(
...     {"protonet": ProtoNetClassifier(task_splitter=splitter, max_epochs=2, random_state=0),
...      "logistic": LogisticRegression(), "1-nn": KNeighborsClassifier(1)},
...     task_splitter=splitter, n_episodes=20, random_state=0).fit(tasks)
>>> list(auto.leaderboard_.columns[:3]), len(auto.leaderboard_)
(['mean', 'ci_low', 'ci_high'], 3)
>>> X, y = tasks[0]
>>> auto.adapt(X[:10], y[:10]).predict(X[10:13]).shape    # the winner, adapted
(3,)"""

_REG_EXAMPLE = """>>> from sklearn.linear_model import Ridge
>>> from sklmeta import AutoMetaRegressor, MAMLRegressor, TaskSplitter
>>> from sklmeta.datasets import make_sinusoid_tasks
>>> from sklmeta.transfer import PooledRegressor
>>> tasks = make_sinusoid_tasks(n_tasks=30, random_state=0)
>>> splitter = TaskSplitter(k_shot=5, n_query=5, n_tasks=32, random_state=0)
>>> auto = AutoMetaRegressor(
...     {"maml": MAMLRegressor(task_splitter=splitter, max_epochs=2, random_state=0),
...      "ridge": Ridge(), "pooled": PooledRegressor()},
...     task_splitter=splitter, n_episodes=20, random_state=0).fit(tasks)
>>> auto.best_name_ in auto.leaderboard_.index
True
>>> X, y = tasks[0]
>>> auto.adapt(X[:5], y[:5]).predict(X[5:8]).shape
(3,)"""


class AutoMetaClassifier(_AutoMetaBase):
    def _is_classifier(self):
        return True


class AutoMetaRegressor(_AutoMetaBase):
    def _is_classifier(self):
        return False


AutoMetaClassifier.__doc__ = _DOC.format(
    summary="The best few-shot classifier for your tasks, chosen on held-out tasks or classes.",
    rows="whole classes (unseen classes), else rows", metric="accuracy",
    n_way="n_way_ : int\n    Classes per episode.\n",
    unseen="task datasets, groups or classes", example=_CLF_EXAMPLE)
AutoMetaRegressor.__doc__ = _DOC.format(
    summary="The best few-shot regressor for your tasks, chosen on held-out tasks.",
    rows="rows", metric="R^2", n_way="", unseen="task datasets or groups",
    example=_REG_EXAMPLE)
