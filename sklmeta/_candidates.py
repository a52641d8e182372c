"""AutoMeta's candidates: the defaults, and what a user's list or dict becomes.

The default candidates are every meta-estimator of
:data:`sklmeta.estimators.META_ESTIMATORS` with its defaults, classical learners
fit on each support set (:class:`sklmeta.transfer.PerSupport`), raw and behind a
support-set scaler, and the transfer learners of :mod:`sklmeta.transfer`.
"""


from sklearn.base import clone, is_classifier
from sklearn.pipeline import Pipeline

__all__ = ["default_candidates", "final_step", "fit_candidate", "named_candidates"]


def default_candidates(task="classification", task_splitter=None, random_state=None):
    """Build AutoMeta's default candidates, cheapest first, by name.

    - classical learners fit on each support set
      (:class:`~sklmeta.transfer.PerSupport`): logistic regression (Ridge for a
      regressor) and 1-nearest-neighbour, each on the raw features and behind a
      ``StandardScaler`` fit on the support set, and a RandomForest;
    - transfer learners fit on the pooled meta-training data:
      :class:`~sklmeta.transfer.PretrainedEmbeddingClassifier` with a logistic
      and a nearest-centroid head, or :class:`~sklmeta.transfer.PooledRegressor`
      with an intercept and a ridge correction;
    - every meta-estimator of :data:`sklmeta.estimators.META_ESTIMATORS` of the
      task's kind, with its defaults (only ``task_splitter`` and
      ``random_state`` set), so new algorithms and new defaults come in as they are.

    Parameters
    ----------
    task : {"classification", "regression"}, default="classification"
        Which kind of learner.
    task_splitter : TaskSplitter, default=None
        Given to every candidate.
    random_state : int or None, default=None
        Given to every candidate that takes one.

    Returns
    -------
    dict of str to estimator
        Unfitted candidates.

    See Also
    --------
    AutoMetaClassifier : Chooses among them (``candidates=None``).

    Examples
    --------
    >>> from sklmeta.automl import default_candidates
    >>> names = list(default_candidates("regression"))
    >>> names[:5]
    ['Ridge', '1-NN', 'scaled Ridge', 'scaled 1-NN', 'RandomForest']
    >>> "MAML" in names
    True
    """
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from .estimators import META_ESTIMATORS
    from .transfer import PerSupport, PooledRegressor, PretrainedEmbeddingClassifier

    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression'; got {task!r}.")
    classifier = task == "classification"
    common = dict(task_splitter=task_splitter, random_state=random_state)
    if classifier:
        linear, nn = LogisticRegression(max_iter=1000), KNeighborsClassifier(n_neighbors=1)
        forest = RandomForestClassifier(random_state=random_state)
    else:
        linear, nn = Ridge(), KNeighborsRegressor(n_neighbors=1)
        forest = RandomForestRegressor(random_state=random_state)
    name = type(linear).__name__
    # Raw and behind a StandardScaler fit on the support set: on a few rows the scaler's
    # estimates are noise (on digits 1-shot it costs 1-NN 15 points), on features of
    # different units it is what makes 1-NN and a penalised linear model work.
    classical = {name: linear, "1-NN": nn,
                 f"scaled {name}": make_pipeline(StandardScaler(), clone(linear)),
                 "scaled 1-NN": make_pipeline(StandardScaler(), clone(nn)),
                 "RandomForest": forest}  # trees: the scale does not matter
    out = {name: PerSupport(est, **common) for name, est in classical.items()}
    if classifier:
        out["pretrained embedding + logistic"] = PretrainedEmbeddingClassifier(**common)
        out["pretrained embedding + centroid"] = PretrainedEmbeddingClassifier(
            head="centroid", **common)
    else:
        out["pooled Ridge + intercept"] = PooledRegressor(**common)
        out["pooled Ridge + ridge"] = PooledRegressor(correction="ridge", **common)
    for cls in META_ESTIMATORS:
        if is_classifier(cls()) == classifier:
            name = cls.__name__.removesuffix("Classifier").removesuffix("Regressor")
            out[name] = cls(**common)
    return out


def named_candidates(candidates, classifier, task_splitter, random_state):
    """Candidates as an ordered dict; plain estimators are fit on each support set."""
    from .transfer import PerSupport

    if isinstance(candidates, dict):
        items = list(candidates.items())
    else:
        items, seen = [], {}
        for est in candidates:
            base = type(est).__name__
            seen[base] = seen.get(base, 0) + 1
            items.append((base if seen[base] == 1 else f"{base}-{seen[base]}", est))
    if not items:
        raise ValueError("candidates is empty; give at least one estimator (or None for "
                         "the defaults).")
    out = {}
    for name, est in items:
        if not isinstance(name, str):
            raise TypeError(f"candidate names must be strings; got {name!r}.")
        if not hasattr(est, "fit"):
            raise TypeError(f"candidate {name!r} is not an estimator (it has no fit): {est!r}.")
        if is_classifier(est) != classifier:
            kind = "classifier" if classifier else "regressor"
            raise ValueError(f"candidate {name!r} ({type(est).__name__}) is not a {kind}.")
        if not hasattr(final_step(est), "adapt"):  # ordinary: fit on each support set
            est = PerSupport(est, task_splitter=task_splitter, random_state=random_state)
        out[name] = est
    return out


def final_step(est):
    while isinstance(est, Pipeline):
        est = est.steps[-1][1]
    return est


def fit_candidate(est, args, kwargs):
    """``est.fit(*args, **kwargs)``; a Pipeline's groups go to its last step."""
    if isinstance(est, Pipeline) and "groups" in kwargs:
        kwargs = {f"{est.steps[-1][0]}__groups": kwargs["groups"]}
    return est.fit(*args, **kwargs)


