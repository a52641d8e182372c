"""Estimators adapted to one task: what ``meta.adapt(X, y)`` returns.

:class:`AdaptedClassifier` and :class:`AdaptedRegressor` hold a meta-estimator
(shared, never modified) and, after ``fit(X_support, y_support)`` (which *is*
adaptation), the adapted parameters. Because cloning keeps the same
meta-estimator, they plug into ``cross_val_score(..., cv=TaskSplitter(...))``.
:func:`adapt` adapts a meta-estimator or a Pipeline ending in one.
"""

import copy
import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
from torch.func import functional_call

from ._adaptation import (
    adapt_one,
    check_known_labels,
    encode_support,
    predict,
    predictor,
    validate_support,
)
from ._core.functional import SWAP_LOCK
from ._doc_link import DocLinkMixin
from ._preprocessing import to_tensor

__all__ = ["AdaptedClassifier", "AdaptedRegressor", "adapt"]


class _AdaptedBase(DocLinkMixin, BaseEstimator):
    """An estimator adapted from a meta-estimator's initialisation; ``fit`` adapts."""

    def __init__(self, meta_estimator):
        self.meta_estimator = meta_estimator

    def __sklearn_clone__(self):
        # The meta-estimator is a pre-trained, read-only resource (like
        # FrozenEstimator): clones share it rather than refit it.
        return type(self)(meta_estimator=self.meta_estimator)

    def fit(self, X, y):
        """Adapt the meta-learned initialisation to the support set ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_support, n_features)
            The support set's features.
        y : array-like of shape (n_support,)
            Its labels (classifier) or targets (regressor).

        Returns
        -------
        self : object
            This estimator, adapted.
        """
        meta = self.meta_estimator
        support = encode_support(meta, *validate_support(meta, self, X, y))
        self.params_ = adapt_one(meta, support)
        if support.classes is not None:
            self.classes_, self.columns_ = support.classes, support.columns
        self.mean_, self.scale_ = support.mean, support.scale
        if support.classes is None:
            self.y_mean_, self.y_scale_ = support.y_mean, support.y_scale
        # What predict needs is kept here, so a later refit of the meta-estimator
        # (another width, another architecture) leaves this estimator intact.
        self.module_, self.n_features_padded_ = predictor(meta), meta.n_features_in_
        return self

    def _outputs(self, X):
        check_is_fitted(self, "params_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        device = next(iter(self.params_.values())).device
        x = to_tensor(X, self.n_features_padded_, self.mean_, self.scale_, device)
        return predict(self.module_, self.params_, x)


class AdaptedClassifier(ClassifierMixin, _AdaptedBase):
    """A classifier adapted to a new task from a meta-trained initialisation.

    ``fit(X, y)`` adapts (it does not meta-train); usually obtained from
    ``meta.adapt(X, y)``. Because cloning keeps the same meta-estimator, it plugs
    into ``cross_val_score(..., cv=TaskSplitter(...))``.

    Parameters
    ----------
    meta_estimator : MAMLClassifier or another meta-trained classifier
        Shared, never modified.

    Attributes
    ----------
    classes_ : ndarray
        The support set's labels, in sorted order.
    params_ : dict of str to Tensor
        The adapted network parameters.
    module_ : torch.nn.Module
        The architecture they are applied to: the meta-estimator's network (for
        ProtoNet, its embedding followed by the prototype head).
    mean_, scale_ : ndarray or None
        The support set's standardisation, when the meta-estimator standardises.
    n_features_in_ : int
    n_features_padded_ : int
        Width the inputs are zero-padded to.

    See Also
    --------
    AdaptedRegressor : The same for a meta-trained regressor.
    adapt : Adapt a meta-estimator, or a Pipeline ending in one.

    Examples
    --------
    >>> import numpy as np
    >>> from sklmeta import MAMLClassifier, TaskSplitter, AdaptedClassifier
    >>> from sklmeta.datasets import make_classification_tasks
    >>> tasks = make_classification_tasks(n_tasks=20, random_state=0)
    >>> splitter = TaskSplitter(n_way=2, k_shot=5, n_query=5, n_tasks=32, random_state=0)
    >>> meta = MAMLClassifier(task_splitter=splitter, max_epochs=2, random_state=0).fit(tasks)
    >>> X, y = tasks[0]
    >>> clf = AdaptedClassifier(meta).fit(X[:10], y[:10])
    >>> clf.predict(X[10:13]).shape
    (3,)
    """

    def _logits(self, X):
        """The head's outputs for ``classes_``, in that order."""
        check_is_fitted(self, "params_")
        columns = getattr(self, "columns_", None)  # absent: saved before label modes
        columns = np.arange(len(self.classes_)) if columns is None else columns
        return self._outputs(X)[:, torch.as_tensor(columns)]

    def predict_proba(self, X):
        """Class probabilities, columns ordered as ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Query rows.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Probabilities of the support set's classes.
        """
        return torch.softmax(self._logits(X), dim=-1).cpu().numpy()

    def predict(self, X):
        """Most probable class among ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Query rows.

        Returns
        -------
        ndarray of shape (n_samples,)
            Predicted labels, from ``classes_``.
        """
        best = self._logits(X).argmax(-1).cpu().numpy()
        return self.classes_[best]

    def score(self, X, y, sample_weight=None):
        """Accuracy on ``(X, y)``; labels absent from the support set are an error.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Query rows.
        y : array-like of shape (n_samples,)
            Their true labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows.

        Returns
        -------
        float
            Mean accuracy.
        """
        check_is_fitted(self, "params_")
        check_known_labels(column_or_1d(y), self.classes_)
        return accuracy_score(y, self.predict(X), sample_weight=sample_weight)


class AdaptedRegressor(RegressorMixin, _AdaptedBase):
    """A regressor adapted to a new task from a meta-trained initialisation.

    ``fit(X, y)`` adapts; usually obtained from ``meta.adapt(X, y)``.

    Parameters
    ----------
    meta_estimator : MAMLRegressor or another meta-trained regressor
        Shared, never modified.

    Attributes
    ----------
    params_ : dict of str to Tensor
        The adapted network parameters.
    module_ : torch.nn.Module
        The architecture they are applied to: the meta-estimator's network (for
        ProtoNet, its embedding followed by the prototype head).
    mean_, scale_ : ndarray or None
        The support set's standardisation, when the meta-estimator standardises.
    n_features_in_ : int
    n_features_padded_ : int
        Width the inputs are zero-padded to.

    See Also
    --------
    AdaptedClassifier : The same for a meta-trained classifier.
    adapt : Adapt a meta-estimator, or a Pipeline ending in one.

    Examples
    --------
    >>> from sklmeta import MAMLRegressor, TaskSplitter, AdaptedRegressor
    >>> from sklmeta.datasets import make_sinusoid_tasks
    >>> tasks = make_sinusoid_tasks(n_tasks=50, random_state=0)
    >>> meta = MAMLRegressor(task_splitter=TaskSplitter(k_shot=5, n_query=5, n_tasks=50),
    ...                      max_epochs=1, random_state=0).fit(tasks)
    >>> X, y = tasks[0]
    >>> AdaptedRegressor(meta).fit(X[:5], y[:5]).predict(X[5:8]).shape
    (3,)
    """

    def predict(self, X, return_std=False):
        """Predicted targets, and their standard deviations where the learner has them.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Query rows.
        return_std : bool, default=False
            Also return the predictive standard deviation, as scikit-learn's
            ``GaussianProcessRegressor`` does. Only learners that know their
            uncertainty (their adapted network outputs a mean and a std) have it.

        Returns
        -------
        y_mean : ndarray of shape (n_samples,)
            Predicted targets (float64).
        y_std : ndarray of shape (n_samples,)
            Predictive standard deviations; only with ``return_std=True``.
        """
        out = self._outputs(X).cpu().numpy()
        y_mean, y_scale = self._target_scaling()
        mean = out[:, 0] * y_scale + y_mean
        if not return_std:
            return mean
        if out.shape[1] < 2:
            raise ValueError(
                f"{type(self.meta_estimator).__name__} predicts no standard deviation; "
                "return_std=True needs a learner that knows its uncertainty."
            )
        return mean, out[:, 1] * y_scale

    def sample_y(self, X, n_samples=1, random_state=0):
        """Draw targets from the joint predictive distribution at ``X``.

        As scikit-learn's ``GaussianProcessRegressor.sample_y``: the draws are
        correlated across the rows of ``X``. Only Gaussian learners have it
        (:class:`~sklmeta.DeepKernelGPRegressor`, :class:`~sklmeta.MetaRidgeRegressor`).

        Parameters
        ----------
        X : array-like of shape (n_samples_X, n_features)
            Query rows.
        n_samples : int, default=1
            Draws per row.
        random_state : int, RandomState instance or None, default=0
            Seeds the draws.

        Returns
        -------
        ndarray of shape (n_samples_X, n_samples)
            The draws, one column per draw (float64).
        """
        check_is_fitted(self, "params_")
        if not getattr(self.module_, "joint_predictive", False):
            raise ValueError(
                f"{type(self.meta_estimator).__name__} has no joint predictive distribution; "
                "sample_y needs a Gaussian learner such as DeepKernelGPRegressor or "
                "MetaRidgeRegressor."
            )
        if not isinstance(n_samples, numbers.Integral) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer; got {n_samples!r}.")
        mean, cov = self._joint(X)
        rng = check_random_state(random_state)
        return rng.multivariate_normal(mean, cov, int(n_samples)).T

    def _joint(self, X):
        """The joint predictive mean and covariance of y at ``X``, in float64."""
        check_is_fitted(self, "params_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        device = next(iter(self.params_.values())).device
        x = to_tensor(X, self.n_features_padded_, self.mean_, self.scale_, device).double()
        params = {k: v.double() if v.is_floating_point() else v for k, v in self.params_.items()}
        with torch.no_grad(), SWAP_LOCK:  # the shared network's weights are swapped in
            mean, cov = functional_call(self.module_, params, (x,), {"full_cov": True})
        cov = 0.5 * (cov + cov.T)  # exactly symmetric for numpy's sampler
        y_mean, y_scale = self._target_scaling()
        return mean.cpu().numpy() * y_scale + y_mean, cov.cpu().numpy() * y_scale**2

    def _target_scaling(self):
        """``(y_mean, y_scale)`` that map the network's outputs back to the targets."""
        y_mean = getattr(self, "y_mean_", None)  # absent: saved before targets were scaled
        return (0.0, 1.0) if y_mean is None else (y_mean, self.y_scale_)


def adapt(estimator, X, y):
    """Adapt a meta-estimator, or a fitted Pipeline ending in one, to a new task.

    For a Pipeline, the fitted transformers are applied to ``X`` (not refit) and
    the last step is adapted; the result is a new Pipeline with copies of the
    fitted transformers and the adapted estimator. Nothing is modified.

    Parameters
    ----------
    estimator : meta-estimator or Pipeline
        A fitted meta-estimator (:class:`~sklmeta.MAMLClassifier`, ...), or a
        fitted Pipeline whose last step is one.
    X : array-like of shape (n_support, n_features)
        The support set's features (raw: a Pipeline transforms them).
    y : array-like of shape (n_support,)
        Its labels or targets.

    Returns
    -------
    AdaptedClassifier, AdaptedRegressor or Pipeline
        A new fitted estimator (or Pipeline) that predicts for the task.

    See Also
    --------
    AdaptedClassifier : What a classifier's adaptation returns.
    AdaptedRegressor : What a regressor's adaptation returns.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> import sklmeta
    >>> from sklmeta import MAMLClassifier, TaskSplitter
    >>> from sklmeta.datasets import make_classification_tasks
    >>> X, y = make_classification_tasks(n_tasks=1, n_samples=200, random_state=0)[0]
    >>> splitter = TaskSplitter(n_way=2, k_shot=5, n_query=5, n_tasks=32, random_state=0)
    >>> pipe = make_pipeline(StandardScaler(), MAMLClassifier(task_splitter=splitter,
    ...                      max_epochs=1, early_stopping=False, random_state=0)).fit(X, y)
    >>> sklmeta.adapt(pipe, X[:10], y[:10]).predict(X[10:12]).shape
    (2,)
    """
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline):
        *steps, (name, last) = estimator.steps
        Xt = X
        for _, step in steps:
            if step is not None and step != "passthrough":
                Xt = step.transform(Xt)
        return Pipeline(
            [(n, copy.deepcopy(s)) for n, s in steps] + [(name, adapt(last, Xt, y))],
            memory=estimator.memory,
        )
    if not hasattr(estimator, "adapt"):
        raise TypeError(
            f"{type(estimator).__name__} is not a meta-estimator (it has no adapt method)."
        )
    return estimator.adapt(X, y)
