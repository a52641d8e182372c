"""Few-shot model selection: episode scorers, shared episodes, confidence intervals.

- :func:`episode_scorer` turns any scikit-learn metric into a scorer for a
  meta-estimator: the mean of the metric over the meta-estimator's own episodes
  (adapt on each support set, score the query set), usable in
  ``GridSearchCV(scoring=...)`` and ``cross_validate(scoring={...})``.
- :func:`compare` draws the episodes once from a splitter (usually a
  :class:`~sklmeta.TaskSplitter`) and gives every estimator the same support and
  query sets, through :func:`sklearn.model_selection.cross_validate`:
  meta-estimators adapt on the support set (:func:`adapter`), ordinary
  estimators are fit on it from scratch.
- :func:`mean_ci` and :func:`paired_ci`: Student-t confidence intervals, from
  :mod:`scipy.stats`.

The one private member of an estimator this module calls is
``_scoring_splitter`` (the episodes ``score`` draws), in :func:`_score_episodes`.
"""

import numbers
import time

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import is_classifier
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import check_scoring, get_scorer
from sklearn.model_selection import check_cv, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.utils import _safe_indexing
from sklearn.utils.metadata_routing import MetadataRequest
from sklearn.utils.validation import check_is_fitted

from ._adaptation import episode_scores, scoring_splitter
from .adapted import AdaptedClassifier, AdaptedRegressor, adapt

__all__ = ["adapter", "compare", "episode_scorer", "mean_ci", "paired_ci"]


# ------------------------------------------------------------ confidence intervals
def _check_confidence(confidence):
    if not isinstance(confidence, numbers.Real) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a number in (0, 1); got {confidence!r}.")


def mean_ci(scores, confidence=0.95):
    """Mean of ``scores`` and its Student-t confidence interval ``(mean, low, high)``.

    The interval is ``scipy.stats.t.interval(confidence, n - 1, loc=mean,
    scale=sem)``; it is ``(nan, nan)`` for a single score and collapses to the
    mean when every score is the same. A NaN score gives a NaN mean and interval.

    Parameters
    ----------
    scores : array-like of shape (n,)
        One score per episode.
    confidence : float, default=0.95
        Confidence level of the interval, in (0, 1).

    Returns
    -------
    mean, low, high : float
        The mean and the interval's bounds.

    See Also
    --------
    paired_ci : The interval of a paired difference, for two estimators.

    Examples
    --------
    >>> from sklmeta.model_selection import mean_ci
    >>> m, lo, hi = mean_ci([0.5, 0.7, 0.6, 0.8])
    >>> round(m, 2), lo < m < hi
    (0.65, True)
    """
    _check_confidence(confidence)
    scores = np.asarray(scores, dtype=float).ravel()
    if scores.size == 0:
        raise ValueError("mean_ci needs at least one score; got none.")
    m = float(scores.mean())
    if scores.size < 2:
        return m, np.nan, np.nan
    if np.ptp(scores) == 0:  # scipy's interval is NaN for a zero scale
        return m, m, m
    low, high = stats.t.interval(confidence, scores.size - 1, loc=m, scale=stats.sem(scores))
    return m, float(low), float(high)


def paired_ci(a, b, confidence=0.95):
    """Mean of ``a - b`` and its paired Student-t interval ``(mean, low, high)``.

    For two estimators scored on the same episodes: the interval is
    ``scipy.stats.ttest_rel(a, b).confidence_interval(confidence)``, far tighter
    than comparing two separate intervals when the episodes vary in difficulty.

    Parameters
    ----------
    a, b : array-like of shape (n,)
        Scores on the same ``n`` episodes, in the same order.
    confidence : float, default=0.95
        Confidence level of the interval, in (0, 1).

    Returns
    -------
    mean, low, high : float
        The mean difference and the interval's bounds.

    See Also
    --------
    mean_ci : The interval of one estimator's mean score.

    Examples
    --------
    >>> from sklmeta.model_selection import paired_ci
    >>> m, lo, hi = paired_ci([0.9, 0.7, 0.8, 0.6], [0.8, 0.55, 0.75, 0.5])
    >>> round(m, 3), 0 < lo < m < hi
    (0.1, True)
    """
    _check_confidence(confidence)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(
            f"paired_ci needs two 1d arrays of scores on the same episodes; got shapes "
            f"{a.shape} and {b.shape}."
        )
    if a.size == 0:
        raise ValueError("paired_ci needs at least one pair of scores; got none.")
    diff = a - b
    m = float(diff.mean())
    if diff.size < 2:
        return m, np.nan, np.nan
    if np.ptp(diff) == 0:
        return m, m, m
    ci = stats.ttest_rel(a, b).confidence_interval(confidence)
    return m, float(ci.low), float(ci.high)


# ---------------------------------------------------------------- meta-estimators
def _final_step(est):
    while isinstance(est, Pipeline):
        est = est.steps[-1][1]
    return est


def _is_meta(est):
    """A meta-estimator, or a Pipeline ending in one (anything with ``adapt``)."""
    return hasattr(_final_step(est), "adapt")


def _check_meta_trained(est):
    meta = _final_step(est)
    check_is_fitted(meta, msg=(
        f"{type(meta).__name__} must be meta-trained (fit) on meta-training data "
        "before it is scored on episodes: compare and episode_scorer only adapt it on "
        "each episode's support set."))


def adapter(estimator):
    """An unfitted estimator whose ``fit`` adapts ``estimator`` to the support set.

    For a meta-estimator this is ``AdaptedClassifier(meta)`` or
    ``AdaptedRegressor(meta)``. For a Pipeline ending in one, the fitted
    transformers are wrapped in :class:`sklearn.frozen.FrozenEstimator` (applied,
    never refit) and the last step is its adapter, so the fitted Pipeline
    predicts exactly as ``sklmeta.adapt(pipeline, X, y)`` does. Clones share the
    meta-estimator and the frozen transformers: hand the adapter to
    ``cross_validate(..., cv=TaskSplitter(...))`` and every split adapts anew.

    Parameters
    ----------
    estimator : meta-estimator or Pipeline ending in one
        Meta-trained.

    Returns
    -------
    AdaptedClassifier, AdaptedRegressor or Pipeline
        Not fitted.

    See Also
    --------
    sklmeta.adapt : Adapt once, to one support set.

    Examples
    --------
    >>> from sklearn.model_selection import cross_val_score
    >>> from sklmeta import MAMLClassifier, TaskSplitter
    >>> from sklmeta.datasets import make_classification_tasks
    >>> from sklmeta.model_selection import adapter
    >>> tasks = make_classification_tasks(n_tasks=20, random_state=0)
    >>> splitter = TaskSplitter(n_way=2, k_shot=5, n_query=5, n_tasks=8, random_state=0)
    >>> meta = MAMLClassifier(task_splitter=splitter, max_epochs=1, random_state=0).fit(tasks)
    >>> cross_val_score(adapter(meta), *tasks[0], cv=splitter).shape
    (8,)
    """
    if isinstance(estimator, Pipeline):
        *steps, (name, last) = estimator.steps
        frozen = [(n, s if s is None or isinstance(s, str) else FrozenEstimator(s))
                  for n, s in steps]
        return Pipeline(frozen + [(name, adapter(last))], memory=estimator.memory)
    if not hasattr(estimator, "adapt"):
        raise TypeError(
            f"{type(estimator).__name__} is not a meta-estimator (it has no adapt method)."
        )
    _check_meta_trained(estimator)
    if hasattr(estimator, "__sklmeta_adapter__"):  # sklmeta.transfer's learners, AutoMeta
        return estimator.__sklmeta_adapter__()
    adapted = AdaptedClassifier if is_classifier(estimator) else AdaptedRegressor
    return adapted(meta_estimator=estimator)


def _score_episodes(meta, X, y, groups):
    """The episodes ``meta.score`` draws from ``(X, y, groups)``.

    The one call into a private member of an estimator in this module:
    ``_scoring_splitter`` is the ``task_splitter`` as ``score`` uses it (an
    unseeded splitter takes the estimator's ``random_state``; classifier episodes
    draw ``min(n_way_, n_classes)`` classes).
    """
    return list(scoring_splitter(meta, y).split(X, y, groups))


def _check_known_labels(adapted, y):
    """Query labels absent from the support set are an error, as in ``score``."""
    unknown = np.setdiff1d(np.unique(np.asarray(y)), adapted.classes_)
    if len(unknown):
        raise ValueError(
            f"y has labels {unknown.tolist()} that are not among the support set's "
            f"classes {adapted.classes_.tolist()}."
        )


# ------------------------------------------------------------------ the scorer
def metric_on_episodes(estimator, scoring, X, y, episodes):
    """``scoring`` of ``estimator`` adapted to each episode's support set, on its query set.

    ``scoring`` is a scikit-learn scorer name or callable, or None (the adapted
    estimator's ``score``). Returns a list, an entry per episode.
    """
    scores = []
    for s, q in episodes:
        adapted = adapt(estimator, _safe_indexing(X, s), _safe_indexing(y, s))
        X_q, y_q = _safe_indexing(X, q), _safe_indexing(y, q)
        if is_classifier(adapted):
            _check_known_labels(adapted, y_q)
        scores.append(check_scoring(adapted, scoring)(adapted, X_q, y_q))
    return scores


class _EpisodeScorer:
    """A scorer ``(estimator, X, y, groups=None)``; see :func:`episode_scorer`."""

    def __init__(self, scoring):
        if isinstance(scoring, _EpisodeScorer):
            scoring = scoring.scoring
        if isinstance(scoring, str):
            get_scorer(scoring)  # an unknown name is scikit-learn's ValueError, now
        elif scoring is not None and not callable(scoring):
            raise TypeError(
                "episode_scorer takes one metric: a scorer name, a scorer callable or "
                f"None; got {type(scoring).__name__}. For several, make one each: "
                "{name: episode_scorer(name) for name in names}."
            )
        self.scoring = scoring
        self._groups_request = True

    def __repr__(self):
        return f"episode_scorer({self.scoring!r})"

    def __call__(self, estimator, X, y=None, groups=None):
        if not _is_meta(estimator):
            # An adapted or an ordinary estimator: the metric, on (X, y) as given.
            if isinstance(_final_step(estimator), AdaptedClassifier) and y is not None:
                _check_known_labels(estimator, y)
            return check_scoring(estimator, self.scoring)(estimator, X, y)
        _check_meta_trained(estimator)
        if y is None:
            raise ValueError(
                "episode_scorer needs (X, y): the episodes are drawn from them. For a "
                "list of task datasets use X, y, groups = sklmeta.stack_tasks(tasks)."
            )
        episodes = _score_episodes(_final_step(estimator), X, y, groups)
        return float(np.mean(metric_on_episodes(estimator, self.scoring, X, y, episodes)))

    # metadata routing: groups are requested for score, as the meta-estimators'
    # own score requests them
    def set_score_request(self, *, groups=True):
        """Whether ``groups`` are routed to this scorer (metadata routing).

        Parameters
        ----------
        groups : bool, None or str, default=True

        Returns
        -------
        self
        """
        MetadataRequest(owner=repr(self)).score.add_request(param="groups", alias=groups)
        self._groups_request = groups  # valid: scikit-learn did not raise above
        return self

    def get_metadata_routing(self):
        """The metadata this scorer requests: ``groups`` for ``score``."""
        request = MetadataRequest(owner=repr(self))
        request.score.add_request(param="groups", alias=self._groups_request)
        return request


def episode_scorer(scoring=None):
    """A scikit-learn scorer: ``scoring`` averaged over a meta-estimator's episodes.

    Called as ``scorer(meta, X, y, groups=None)`` with a meta-trained
    meta-estimator (or a Pipeline ending in one), it draws the episodes
    ``meta.score(X, y, groups)`` draws (the estimator's own ``task_splitter``;
    an unseeded splitter takes the estimator's ``random_state``; classifier
    episodes draw ``min(n_way_, n_classes)`` classes) and returns the mean over
    episodes of ``check_scoring(adapted, scoring)(adapted, X[query], y[query])``,
    where ``adapted = sklmeta.adapt(meta, X[support], y[support])``. Called with
    any other estimator (one already adapted or fit on a support set, as in
    :func:`compare`), it is ``scoring`` on ``(X, y)`` as given.

    Use it wherever scikit-learn takes a scorer: ``GridSearchCV(meta, grid,
    scoring=episode_scorer("roc_auc"))``, ``cross_validate(meta, X, y,
    scoring={"auc": episode_scorer("roc_auc"), "ll": episode_scorer("neg_log_loss")})``.
    With metadata routing on it requests ``groups`` (as the meta-estimators'
    ``score`` does); ``set_score_request(groups=False)`` opts out.

    Parameters
    ----------
    scoring : str, callable or None, default=None
        A scikit-learn scorer name ("roc_auc", "neg_log_loss",
        "balanced_accuracy", "neg_mean_squared_error", "r2", ...), a scorer
        callable ``(estimator, X, y)``, or None for the adapted estimator's
        ``score`` (accuracy, R^2), the per-episode score ``meta.score`` averages.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y=None, groups=None) -> float``.

    See Also
    --------
    compare : Several estimators on identical episodes.

    Notes
    -----
    Binary metrics stay binary: "roc_auc" on a multi-class episode raises
    scikit-learn's own error; use "roc_auc_ovr" (or "roc_auc_ovo") there. Query
    labels that are not among the support set's classes are an error, as in
    ``score``.

    Examples
    --------
    >>> from sklmeta import MAMLClassifier, TaskSplitter, stack_tasks
    >>> from sklmeta.datasets import make_classification_tasks
    >>> from sklmeta.model_selection import episode_scorer
    >>> tasks = make_classification_tasks(n_tasks=20, random_state=0)
    >>> splitter = TaskSplitter(n_way=2, k_shot=5, n_query=5, n_tasks=8, random_state=0)
    >>> meta = MAMLClassifier(task_splitter=splitter, max_epochs=1, random_state=0).fit(tasks)
    >>> X, y, groups = stack_tasks(tasks)
    >>> auc = episode_scorer("roc_auc")(meta, X, y, groups=groups)
    >>> 0 <= auc <= 1
    True
    """
    return _EpisodeScorer(scoring)


# -------------------------------------------------------------------- compare
def _metric_names(scoring):
    """None for a single metric; else the names of several, as cross_validate names them."""
    if scoring is None or isinstance(scoring, str) or callable(scoring):
        return None
    if isinstance(scoring, dict):
        names = list(scoring)
    elif isinstance(scoring, (list, tuple, set)):
        names = list(scoring)
        if not all(isinstance(n, str) for n in names):
            raise ValueError("A list of metrics must be scorer names; use a dict to name "
                             "callables.")
    else:
        raise TypeError(f"scoring must be a str, a callable, a list, a dict or None; got "
                        f"{type(scoring).__name__}.")
    if not names:
        raise ValueError("scoring is an empty collection; give at least one metric.")
    return names


def _adapted_scoring(scoring, names):
    """The scoring of an adapted estimator: each metric through the query-label check."""
    if names is None:
        return episode_scorer(scoring)
    metrics = scoring if isinstance(scoring, dict) else {n: n for n in names}
    return {n: episode_scorer(m) for n, m in metrics.items()}


def _summary(scores, confidence, suffix=""):
    m, lo, hi = mean_ci(scores, confidence)
    std = float(np.std(scores, ddof=1)) if len(scores) > 1 else np.nan
    return {f"mean{suffix}": m, f"ci_low{suffix}": lo, f"ci_high{suffix}": hi,
            f"std{suffix}": std}


def compare(estimators, X, y=None, *, cv, groups=None, scoring=None, n_jobs=None,
            error_score="raise", confidence=0.95, return_scores=False):
    """Score estimators on identical few-shot episodes, with confidence intervals.

    The episodes are drawn once; each estimator goes through
    :func:`sklearn.model_selection.cross_validate` with ``cv=`` that list of
    episodes: a meta-estimator (or a Pipeline ending in one) as its
    :func:`adapter`, so it adapts on each support set; any other estimator is
    cloned and fit on each support set.

    Parameters
    ----------
    estimators : dict of str to estimator
        Meta-estimators (or Pipelines ending in one) must already be meta-trained;
        they are adapted on each support set. Any other estimator is cloned and
        fit on each support set.
    X : array-like of shape (n_samples, n_features)
        The data the episodes are drawn from.
    y : array-like of shape (n_samples,)
        Its labels or targets.
    cv : TaskSplitter, any CV splitter or an iterable of (support, query) indices
        Its episodes are drawn once and shared by all estimators.
    groups : array-like of shape (n_samples,), default=None
        Passed to ``cv.split``: with a TaskSplitter, each episode is drawn from
        one group.
    scoring : str, callable, list, tuple or dict, default=None
        One scikit-learn metric, or several (a list of names, or a dict of name
        to name or callable), as ``cross_validate`` takes them. None uses each
        estimator's ``score`` (accuracy for classifiers, R^2 for regressors).
    n_jobs : int, default=None
        Episodes scored in parallel (``cross_validate``'s ``n_jobs``).
    error_score : "raise" or float, default="raise"
        What a failing episode scores; "raise" stops with its error.
    confidence : float, default=0.95
        Confidence level of the Student-t intervals.
    return_scores : bool, default=False
        Also return every episode's score.

    Returns
    -------
    summary : pandas.DataFrame
        One row per estimator (the index): ``mean``, ``ci_low``, ``ci_high``
        (Student-t interval over episodes, :func:`mean_ci`), ``std``,
        ``n_episodes``, ``seconds`` (wall time of the estimator's whole
        evaluation), ``fit_time`` and ``score_time`` (mean seconds per episode to
        adapt or fit, and to score). A meta-estimator scored by its own ``score``
        (``scoring=None``, ``n_jobs`` None or 1) adapts and scores its episodes in
        stacked batches, as ``meta.score`` does: its ``fit_time`` is then the
        whole time per episode and ``score_time`` is NaN. With several metrics, one block
        ``mean_<name>``, ``ci_low_<name>``, ``ci_high_<name>``, ``std_<name>``
        per metric replaces the first four.
    scores : pandas.DataFrame
        Only with ``return_scores``: ``estimator``, ``episode``, ``score`` (with
        several metrics, ``score_<name>`` for each), ``fit_time``, ``score_time``.

    See Also
    --------
    episode_scorer : Any metric over a meta-estimator's own episodes.
    mean_ci : The intervals of the summary.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> from sklmeta import TaskSplitter
    >>> from sklmeta.model_selection import compare
    >>> X, y = load_iris(return_X_y=True)
    >>> cv = TaskSplitter(n_way=3, k_shot=1, n_query=10, n_tasks=20, random_state=0)
    >>> table = compare({"1-nn": KNeighborsClassifier(1),
    ...                  "rf": RandomForestClassifier(random_state=0)}, X, y, cv=cv)
    >>> list(table.index), list(table.columns[:3])
    (['1-nn', 'rf'], ['mean', 'ci_low', 'ci_high'])
    >>> table = compare({"1-nn": KNeighborsClassifier(1)}, X, y, cv=cv,
    ...                 scoring=["accuracy", "balanced_accuracy"])
    >>> list(table.columns[:2])
    ['mean_accuracy', 'ci_low_accuracy']
    """
    if not estimators:
        raise ValueError("compare needs at least one estimator.")
    _check_confidence(confidence)
    names = _metric_names(scoring)
    episodes = list(check_cv(cv).split(X, y, groups))
    rows, long = [], []
    for name, est in estimators.items():
        if _is_meta(est):
            est, est_scoring = adapter(est), _adapted_scoring(scoring, names)
        else:
            est_scoring = scoring
        start = time.perf_counter()
        if isinstance(est, (AdaptedClassifier, AdaptedRegressor)) and scoring is None and (
                n_jobs in (None, 1)):
            # the mean score meta.score averages: adapted and scored in stacked batches
            scores = episode_scores(est.meta_estimator, X, y, episodes=episodes, probe=est)
            seconds = time.perf_counter() - start
            result = {"test_score": scores, "fit_time": np.full(len(scores), seconds / len(
                scores)), "score_time": np.full(len(scores), np.nan)}
        else:
            result = cross_validate(est, X, y, cv=episodes, scoring=est_scoring, n_jobs=n_jobs,
                                    error_score=error_score, return_train_score=False)
        seconds = time.perf_counter() - start
        row, per_episode = {"name": name}, {}
        if names is None:
            row.update(_summary(result["test_score"], confidence))
            per_episode["score"] = result["test_score"]
        else:
            for metric in names:
                row.update(_summary(result[f"test_{metric}"], confidence, f"_{metric}"))
                per_episode[f"score_{metric}"] = result[f"test_{metric}"]
        row.update(n_episodes=len(episodes), seconds=seconds,
                   fit_time=float(np.mean(result["fit_time"])),
                   score_time=float(np.mean(result["score_time"])))
        rows.append(row)
        long.append(pd.DataFrame(dict(estimator=name, episode=np.arange(len(episodes)),
                                      **per_episode, fit_time=result["fit_time"],
                                      score_time=result["score_time"])))
    summary = pd.DataFrame(rows).set_index("name")
    summary.index.name = None
    if return_scores:
        return summary, pd.concat(long, ignore_index=True)
    return summary
