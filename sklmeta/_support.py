"""What the learners of :mod:`sklmeta.transfer` and :mod:`sklmeta.automl` share.

:class:`SupportLearner` is the ``fit`` / ``adapt`` / ``score`` contract of a
learner that is not a meta-estimator of :mod:`sklmeta.estimators` (data checks,
task pools of one width, the mean score over the ``task_splitter``'s episodes,
no ``predict`` before ``adapt``); :class:`AdaptOnFit` is the estimator whose
``fit`` adapts, which :func:`sklmeta.model_selection.adapter` hands to
scikit-learn's cross-validation through ``__sklmeta_adapter__``.
"""

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import ClassifierTags, RegressorTags, get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, check_X_y

from ._adaptation import scoring_splitter, task_list_episodes
from ._doc_link import DocLinkMixin
from ._episodes import fit_pools, is_task_list, label_repr
from ._preprocessing import numeric_target
from .tasks import TaskSplitter

__all__ = ["AdaptOnFit", "SupportLearner"]

_NO_PREDICT = (
    "{name} predicts only after adapting to a task: use "
    "{name}.adapt(X_support, y_support).{method}(X)."
)


# ------------------------------------------------------------------ the adapter
class AdaptOnFit(BaseEstimator):
    """An unfitted estimator whose ``fit`` is ``meta_estimator.adapt``.

    What :func:`sklmeta.model_selection.adapter` returns for the learners of
    :mod:`sklmeta.transfer` (their ``__sklmeta_adapter__``): scikit-learn's
    cross-validation clones it and fits it on each support set. Clones share the
    (read-only) fitted meta-estimator.
    """

    def __init__(self, meta_estimator):
        self.meta_estimator = meta_estimator

    def __sklearn_clone__(self):
        return type(self)(meta_estimator=self.meta_estimator)

    def fit(self, X, y):
        """Adapt the meta-estimator to the support set ``(X, y)``."""
        self.estimator_ = self.meta_estimator.adapt(X, y)
        if hasattr(self.estimator_, "classes_"):
            self.classes_ = self.estimator_.classes_
        return self

    def predict(self, X):
        """The adapted estimator's predictions."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict(X)

    @available_if(lambda self: hasattr(getattr(self, "estimator_", None), "predict_proba")
                  or not hasattr(self, "estimator_"))
    def predict_proba(self, X):
        """The adapted estimator's class probabilities."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict_proba(X)

    def score(self, X, y, sample_weight=None):
        """The adapted estimator's ``score`` (accuracy or R^2)."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.score(X, y, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = get_tags(self.meta_estimator)
        tags.estimator_type = inner.estimator_type
        tags.classifier_tags = inner.classifier_tags
        tags.regressor_tags = inner.regressor_tags
        return tags


# --------------------------------------------------------------------- the base
class SupportLearner(DocLinkMixin, BaseEstimator):
    """``fit`` on meta-training tasks, ``adapt`` to a support set, ``score`` on episodes."""

    _parameter_constraints = {
        "task_splitter": [TaskSplitter, None],
        "random_state": ["random_state"],
    }

    # Whether fit needs task datasets of one width. Learners that refit on each support
    # set (PerSupport) and AutoMeta take task lists of different widths, as the
    # meta-estimators do; adapt then takes a support set of any width up to the widest.
    _one_width = True

    # Metadata routing, as for the meta-estimators: fit and score use groups.
    __metadata_request__fit = {"groups": True}
    __metadata_request__score = {"groups": True}

    def _is_classifier(self):  # pragma: no cover - every learner says
        raise NotImplementedError

    def _check_xy(self, X, y, where):
        try:
            X, y = check_X_y(X, y, dtype=[np.float64, np.float32],
                             y_numeric=not self._is_classifier(), estimator=self)
        except ValueError as e:
            if where is None:
                raise
            raise ValueError(f"{where}{e}") from e
        if self._is_classifier():
            check_classification_targets(y)
        else:
            y = numeric_target(y, where or "")
        return X, y

    def _pools(self, X, y, groups):
        """Validated task pools (of one width, if ``_one_width``), and ``n_way_``."""
        self._validate_params()
        splitter = self.task_splitter if self.task_splitter is not None else TaskSplitter()
        splitter.get_n_splits()  # validates the splitter's parameters
        if not self._is_classifier() and splitter.n_way is not None:
            raise ValueError("task_splitter.n_way is for classification; a regressor's "
                             "episodes count samples (k_shot, n_query) without n_way.")
        pools, unit = fit_pools(X, y, groups, self._check_xy)
        widths = sorted({p.X.shape[1] for p in pools})
        if len(widths) > 1 and self._one_width:
            raise ValueError(
                f"The task datasets have different widths {widths}; {type(self).__name__} "
                "needs one width (sklmeta's meta-estimators standardise and zero-pad tasks "
                "of different widths).")
        fitted = {"n_features_in_": widths[-1], "unit_": unit}
        vars(self).pop("task_widths_", None)  # a refit on tasks of one width forgets them
        if len(widths) > 1:
            fitted["task_widths_"] = widths
        if self._is_classifier():
            n_classes = max(len(np.unique(p.y)) for p in pools)
            if n_classes < 2:
                raise ValueError(f"{type(self).__name__} needs at least 2 classes per task; "
                                 f"{pools[0].name or 'y '}has only 1 class "
                                 f"({label_repr(pools[0].y[0])}).")
            fitted["n_way_"] = splitter.n_way if splitter.n_way is not None else n_classes
        return pools, fitted

    def _check_support(self, X, y):
        check_is_fitted(self, "n_features_in_", msg=(
            f"{type(self).__name__} is not fitted yet: call fit(tasks) before adapt."))
        X, y = check_X_y(X, y, dtype=[np.float64, np.float32],
                         y_numeric=not self._is_classifier())
        if hasattr(self, "task_widths_"):  # fit on tasks of different widths
            if X.shape[1] > self.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[1]} features, but {type(self).__name__} was fit on "
                    f"task datasets of widths {self.task_widths_}; it adapts to support "
                    f"sets of at most {self.n_features_in_} features.")
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input.")
        if self._is_classifier():
            check_classification_targets(y)
        return X, y

    def score(self, X, y=None, groups=None):
        """Mean few-shot score over the ``task_splitter``'s episodes of ``(X, y)``.

        Each episode's support set is adapted on and its query set scored with
        the adapted estimator's ``score`` (accuracy for classifiers, R^2 for
        regressors), as a meta-estimator's ``score`` does.

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
        check_is_fitted(self, "n_features_in_")
        return self._mean_score(X, y, groups, scoring=None)

    def _mean_score(self, X, y, groups, scoring):
        """``score``: ``scoring``'s mean over the episodes of ``(X, y)`` or of a task list.

        A task list's episodes are drawn across its tasks as groups, each adapted
        to and scored at its own task's width (:func:`task_list_episodes`).
        """
        from .model_selection import metric_on_episodes

        if is_task_list(X, y):
            if y is not None:
                raise ValueError("score(tasks) takes no y: each task carries its own targets.")
            tasks = [self._check_support(*task) for task in X]
            y_all = np.concatenate([t[1] for t in tasks])
            blocks = task_list_episodes(tasks, scoring_splitter(self, y_all))
        elif y is None:
            raise ValueError(f"{type(self).__name__}.score needs (X, y) or a list of tasks.")
        else:
            X, y = self._check_support(X, y)
            blocks = [(X, y, scoring_splitter(self, y).split(X, y, groups))]
        return float(np.mean([score for Xb, yb, episodes in blocks
                              for score in metric_on_episodes(self, scoring, Xb, yb, episodes)]))

    def __sklmeta_adapter__(self):
        """An unfitted estimator whose ``fit(X, y)`` is ``self.adapt(X, y)``.

        Returns
        -------
        estimator
            What :func:`sklmeta.model_selection.adapter` gives cross-validation.
        """
        return AdaptOnFit(self)

    @property
    def predict(self):
        """These learners predict only after ``adapt``: this raises AttributeError."""
        raise AttributeError(_NO_PREDICT.format(name=type(self).__name__, method="predict"))

    @property
    def predict_proba(self):
        """These learners predict only after ``adapt``: this raises AttributeError."""
        raise AttributeError(_NO_PREDICT.format(name=type(self).__name__,
                                                method="predict_proba"))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        if self._is_classifier():
            tags.estimator_type = "classifier"
            tags.classifier_tags = ClassifierTags()
        else:
            tags.estimator_type = "regressor"
            tags.regressor_tags = RegressorTags()
        return tags
