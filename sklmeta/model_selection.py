"""Scoring many estimators on the very same few-shot episodes.

:func:`compare` draws the episodes once from a splitter (usually a
:class:`~sklmeta.TaskSplitter`) and gives every estimator the same support and
query sets: meta-estimators adapt on the support set, ordinary estimators are
fit on it from scratch. It reports the mean score with a 95% confidence
interval per estimator.
"""

import time

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv
from sklearn.pipeline import Pipeline
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import check_is_fitted

from ._adaptation import episode_scores
from ._base import MetaEstimatorBase
from .adapted import AdaptedClassifier, AdaptedRegressor, adapt

__all__ = ["compare", "mean_ci"]


def mean_ci(scores, confidence=0.95):
    """Mean of ``scores`` and its Student-t confidence interval ``(mean, low, high)``.

    Examples
    --------
    >>> from sklmeta.model_selection import mean_ci
    >>> m, lo, hi = mean_ci([0.5, 0.7, 0.6, 0.8])
    >>> round(m, 2), lo < m < hi
    (0.65, True)
    """
    scores = np.asarray(scores, dtype=float)
    m = float(scores.mean())
    if len(scores) < 2:
        return m, np.nan, np.nan
    half = stats.t.ppf(0.5 + confidence / 2, len(scores) - 1) * stats.sem(scores)
    return m, float(m - half), float(m + half)


def _final_step(est):
    return est.steps[-1][1] if isinstance(est, Pipeline) else est


def _episode_scores(est, X, y, episodes, scoring):
    meta = _final_step(est)
    if isinstance(meta, MetaEstimatorBase):
        check_is_fitted(meta, msg=(
            f"{type(meta).__name__} must be meta-trained (fit) on meta-training data "
            "before compare, which only adapts it on each episode's support set."))
        if est is meta and scoring is None:
            probe = (AdaptedClassifier if is_classifier(meta) else AdaptedRegressor)(meta)
            return episode_scores(meta, X, y, episodes=episodes, probe=probe)
        else:
            fitted = [adapt(est, _safe_indexing(X, s), _safe_indexing(y, s)) for s, _ in episodes]
    else:
        fitted = [clone(est).fit(_safe_indexing(X, s), _safe_indexing(y, s)) for s, _ in episodes]
    scorer = check_scoring(fitted[0], scoring=scoring)
    return np.array([
        scorer(f, _safe_indexing(X, q), _safe_indexing(y, q)) for f, (_, q) in zip(fitted, episodes)
    ])


def compare(estimators, X, y=None, *, cv, groups=None, scoring=None, return_scores=False):
    """Score estimators on identical few-shot episodes, with 95% confidence intervals.

    Parameters
    ----------
    estimators : dict of str to estimator
        Meta-estimators (or Pipelines ending in one) must already be meta-trained;
        they are adapted on each support set. Any other estimator is cloned and
        fit on each support set.
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    cv : TaskSplitter or any CV splitter
        Its episodes are drawn once and shared by all estimators.
    groups : array-like of shape (n_samples,), default=None
    scoring : str or callable, default=None
        A scikit-learn scorer; None uses each estimator's ``score`` (accuracy for
        classifiers, R^2 for regressors).
    return_scores : bool, default=False
        Also return every episode's score.

    Returns
    -------
    summary : pandas.DataFrame
        One row per estimator (the index): ``mean``, ``ci_low``, ``ci_high`` (95%
        Student-t interval over episodes), ``std``, ``n_episodes``, ``seconds``.
    scores : pandas.DataFrame
        Only with ``return_scores``: columns ``estimator``, ``episode``, ``score``.

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
    """
    if not estimators:
        raise ValueError("compare needs at least one estimator.")
    episodes = list(check_cv(cv).split(X, y, groups))
    rows, long = [], []
    for name, est in estimators.items():
        start = time.perf_counter()
        scores = _episode_scores(est, X, y, episodes, scoring)
        seconds = time.perf_counter() - start
        m, lo, hi = mean_ci(scores)
        rows.append(dict(name=name, mean=m, ci_low=lo, ci_high=hi,
                         std=float(np.std(scores, ddof=1)) if len(scores) > 1 else np.nan,
                         n_episodes=len(scores), seconds=seconds))
        long.append(pd.DataFrame(dict(estimator=name, episode=np.arange(len(scores)),
                                      score=scores)))
    summary = pd.DataFrame(rows).set_index("name")
    summary.index.name = None
    if return_scores:
        return summary, pd.concat(long, ignore_index=True)
    return summary
