"""Learners that are not meta-learners, behind the meta-estimators' ``fit`` / ``adapt`` API.

So that :func:`sklmeta.model_selection.compare`, :class:`sklmeta.AutoMetaClassifier`
and the command line treat every candidate alike, each of these ``fit`` s on
meta-training tasks and ``adapt`` s to a new task's support set, returning a new
fitted estimator that predicts:

- :class:`PerSupport`: an ordinary estimator fit on each support set from
  scratch (``fit`` only records the width and the episodes; ``adapt`` is
  ``clone(estimator).fit(X_support, y_support)``).
- :class:`PretrainedEmbeddingClassifier`: an MLP trained by ordinary supervised
  classification on every meta-training class at once, whose penultimate layer
  embeds; ``adapt`` fits a logistic-regression or nearest-centroid head on the
  embedded support set (Tian et al., "Rethinking few-shot image classification:
  a good embedding is all you need?", ECCV 2020; Chen et al., "A closer look at
  few-shot classification", ICLR 2019).
- :class:`PooledRegressor`: one model fit on every meta-training row, and a
  per-task correction fit on the support rows' residuals (an intercept, or a
  ridge regression): a pooled model with a random intercept (or slopes), as a
  statistician would fit grouped data.

Each has ``score`` (the mean few-shot score over its ``task_splitter``'s
episodes, as the meta-estimators' ``score``) and ``__sklmeta_adapter__``, the
estimator whose ``fit`` adapts that :func:`sklmeta.model_selection.adapter`
hands to scikit-learn's cross-validation.
"""

import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin, clone, is_classifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import NearestCentroid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._core import ACTIVATIONS, make_mlp
from ._support import SupportLearner
from ._validation import check_hidden_layer_sizes

__all__ = ["PerSupport", "PooledRegressor", "PretrainedEmbeddingClassifier"]

# -------------------------------------------------------------------- PerSupport
class PerSupport(SupportLearner):
    """An ordinary estimator fit on each support set, with the meta-estimators' API.

    ``fit`` learns nothing from the meta-training tasks: it records their width
    (and, for a classifier, the classes per episode) so that ``score`` draws the
    same episodes a meta-estimator draws. ``adapt(X, y)`` returns
    ``clone(estimator).fit(X, y)``. It is how :class:`sklmeta.AutoMetaClassifier`
    puts logistic regression, 1-NN or a RandomForest beside the meta-learners.

    Parameters
    ----------
    estimator : estimator
        Any scikit-learn estimator (a Pipeline too), fit from scratch on each
        support set.
    task_splitter : TaskSplitter, default=None
        The episodes ``score`` draws (None: ``TaskSplitter()``).
    random_state : int, RandomState instance or None, default=None
        Seeds an unseeded ``task_splitter``'s episodes in ``score``.

    Attributes
    ----------
    n_features_in_ : int
        Width of the meta-training data (the widest task's, for task datasets
        of different widths; ``adapt`` then takes any width up to it).
    task_widths_ : list of int
        The task datasets' widths; set only when they differ.
    n_way_ : int
        Classes per episode (classifiers only).
    unit_ : {"tasks", "groups", None}
        What a task was at fit: a task dataset, a group, or the whole dataset.

    See Also
    --------
    sklmeta.model_selection.compare : Treats it as it treats a meta-estimator.
    PretrainedEmbeddingClassifier : A transfer learner.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklmeta import TaskSplitter
    >>> from sklmeta.datasets import make_classification_tasks
    >>> from sklmeta.transfer import PerSupport
    >>> tasks = make_classification_tasks(n_tasks=10, random_state=0)
    >>> splitter = TaskSplitter(n_way=2, k_shot=5, n_query=5, n_tasks=20, random_state=0)
    >>> learner = PerSupport(LogisticRegression(), task_splitter=splitter).fit(tasks)
    >>> X, y = tasks[0]
    >>> clf = learner.adapt(X[:10], y[:10])        # LogisticRegression fit on 10 rows
    >>> clf.predict(X[10:13]).shape
    (3,)
    >>> 0 <= learner.score(tasks) <= 1
    True
    """

    _parameter_constraints = {
        **SupportLearner._parameter_constraints,
        "estimator": [HasMethods(["fit", "predict"])],
    }
    _one_width = False  # each support set is fit from scratch, at its own width

    def __init__(self, estimator, *, task_splitter=None, random_state=None):
        self.estimator = estimator
        self.task_splitter = task_splitter
        self.random_state = random_state

    def _is_classifier(self):
        return is_classifier(self.estimator)

    def fit(self, X, y=None, groups=None):
        """Record the meta-training data's width; nothing is learned from them.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or list of (X_i, y_i)
            Meta-training data, as a meta-estimator's ``fit`` takes them.
        y : array-like of shape (n_samples,), default=None
            Targets; None when ``X`` is a list of tasks.
        groups : array-like of shape (n_samples,), default=None
            Task membership.

        Returns
        -------
        self : object
            This learner.
        """
        _, fitted = self._pools(X, y, groups)
        for name, value in fitted.items():
            setattr(self, name, value)
        return self

    def adapt(self, X, y):
        """``clone(estimator).fit(X, y)``: a fresh estimator fit on the support set.

        Parameters
        ----------
        X : array-like of shape (n_support, n_features)
            The support set's features.
        y : array-like of shape (n_support,)
            Its labels or targets.

        Returns
        -------
        estimator
            A clone of ``estimator``, fitted.
        """
        X, y = self._check_support(X, y)
        return clone(self.estimator).fit(X, y)


# -------------------------------------------------------- a pretrained embedding
class PretrainedEmbeddingClassifier(SupportLearner):
    """A supervised embedding of every meta-training class, and a head per support set.

    ``fit`` trains an MLP (with skorch) by ordinary classification on all
    meta-training classes at once: with one dataset its classes; with groups or
    task datasets, every (task, class) pair is a class of its own. The network
    without its output layer is the embedding. ``adapt(X, y)`` embeds the
    support set (L2-normalised features, as Tian et al. do) and fits the head on
    it: a logistic regression or a nearest-centroid classifier (Tian et al.,
    ECCV 2020; the "baseline" of Chen et al., ICLR 2019).

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(128, 64)
        The MLP's hidden layers; the last is the embedding's width.
    activation : {"relu", "tanh", "gelu"}, default="relu"
        Hidden activation.
    head : {"logistic", "centroid"}, default="logistic"
        What is fit on each embedded support set: ``LogisticRegression()`` or
        ``NearestCentroid()``.
    lr : float, default=1e-3
        Adam's learning rate for the pretraining.
    max_epochs : int, default=30
        Pretraining epochs over the pooled meta-training rows.
    batch_size : int, default=128
        Rows per pretraining step.
    weight_decay : float, default=1e-4
        Adam's weight decay.
    task_splitter : TaskSplitter, default=None
        The episodes ``score`` draws (None: ``TaskSplitter()``).
    device : str, default="cpu"
        Where the network trains and embeds.
    verbose : int, default=0
        Positive: skorch's epoch table during pretraining.
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the batches and an unseeded splitter's episodes.

    Attributes
    ----------
    module_ : torch.nn.Sequential
        The pretrained network; ``module_[:-1]`` embeds.
    mean_, scale_ : ndarray of shape (n_features,)
        The standardisation of the pooled meta-training rows.
    n_classes_pretrained_ : int
        Classes the network was trained to tell apart.
    n_features_in_ : int
        Width of the data.
    n_way_ : int
        Classes per episode of ``score``.
    unit_ : {"tasks", "groups", None}
        What a task was at fit.

    See Also
    --------
    PerSupport : An estimator fit on each support set from scratch.
    sklmeta.ProtoNetClassifier : An embedding meta-learned on episodes.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklmeta import TaskSplitter
    >>> from sklmeta.transfer import PretrainedEmbeddingClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> splitter = TaskSplitter(n_way=3, k_shot=5, n_query=5, n_tasks=10, random_state=0)
    >>> emb = PretrainedEmbeddingClassifier(max_epochs=3, task_splitter=splitter,
    ...                                     random_state=0).fit(X[y < 6], y[y < 6])
    >>> unseen = y >= 6
    >>> clf = emb.adapt(X[unseen][:40], y[unseen][:40])   # a head on the embedded support
    >>> sorted(clf.classes_.tolist())
    [6, 7, 8, 9]
    >>> emb.embed(X[:2]).shape
    (2, 64)
    """

    _parameter_constraints = {
        **SupportLearner._parameter_constraints,
        "hidden_layer_sizes": [tuple, list],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "head": [StrOptions({"logistic", "centroid"})],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "max_epochs": [Interval(numbers.Integral, 0, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "device": [str, torch.device],
        "verbose": ["verbose"],
    }

    def __init__(self, *, hidden_layer_sizes=(128, 64), activation="relu", head="logistic",
                 lr=1e-3, max_epochs=30, batch_size=128, weight_decay=1e-4, task_splitter=None,
                 device="cpu", verbose=0, random_state=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.head = head
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.task_splitter = task_splitter
        self.device = device
        self.verbose = verbose
        self.random_state = random_state

    def _is_classifier(self):
        return True

    def fit(self, X, y=None, groups=None):
        """Train the embedding by classification of every meta-training class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or list of (X_i, y_i)
            Meta-training data, as a meta-estimator's ``fit`` takes them.
        y : array-like of shape (n_samples,), default=None
            Class labels; None when ``X`` is a list of tasks.
        groups : array-like of shape (n_samples,), default=None
            Task membership: each (group, class) pair is a class of its own.

        Returns
        -------
        self : object
            The pretrained learner.
        """
        from skorch import NeuralNetClassifier

        pools, fitted = self._pools(X, y, groups)
        check_hidden_layer_sizes(self.hidden_layer_sizes)
        if len(self.hidden_layer_sizes) == 0:
            raise ValueError("hidden_layer_sizes must have at least one layer: the last "
                             "hidden layer is the embedding.")
        X_all = np.concatenate([p.X for p in pools])
        # every (task, class) pair its own class: tasks may reuse labels 0..k-1
        labels, offset = [], 0
        for p in pools:
            _, enc = np.unique(p.y, return_inverse=True)
            labels.append(enc + offset)
            offset += int(enc.max()) + 1
        y_all = np.concatenate(labels).astype(np.int64)
        mean, scale = X_all.mean(axis=0), X_all.std(axis=0)
        scale[scale == 0] = 1.0
        seed = int(check_random_state(self.random_state).randint(2**31))
        module = make_mlp(X_all.shape[1], tuple(self.hidden_layer_sizes), offset,
                          self.activation, torch.Generator().manual_seed(seed))
        net = NeuralNetClassifier(
            module, criterion=torch.nn.CrossEntropyLoss, optimizer=torch.optim.Adam,
            optimizer__weight_decay=self.weight_decay, lr=self.lr, max_epochs=self.max_epochs,
            batch_size=self.batch_size, iterator_train__shuffle=True,
            iterator_train__generator=torch.Generator().manual_seed(seed + 1),
            train_split=None, device=self.device, verbose=self.verbose,
            **({} if self.verbose else {"callbacks__print_log": None}))
        net.fit(((X_all - mean) / scale).astype(np.float32), y_all)
        module = net.module_.eval()
        fitted.update(module_=module, mean_=mean, scale_=scale, n_classes_pretrained_=offset)
        for name, value in fitted.items():
            setattr(self, name, value)
        return self

    def embed(self, X):
        """The embedding: penultimate-layer features, L2-normalised.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to embed.

        Returns
        -------
        ndarray of shape (n_samples, hidden_layer_sizes[-1])
            The embedded rows, each of unit norm (or zero).
        """
        check_is_fitted(self, "module_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        x = torch.as_tensor(((X - self.mean_) / self.scale_).astype(np.float32))
        with torch.no_grad():
            e = self.module_[:-1](x.to(next(self.module_.parameters()).device))
        e = e.cpu().double().numpy()
        norm = np.linalg.norm(e, axis=1, keepdims=True)
        return e / np.where(norm > 0, norm, 1.0)

    def adapt(self, X, y):
        """Fit the head on the embedded support set; return the fitted Pipeline.

        Parameters
        ----------
        X : array-like of shape (n_support, n_features)
            The support set's features.
        y : array-like of shape (n_support,)
            Its labels.

        Returns
        -------
        sklearn.pipeline.Pipeline
            The embedding (this learner's :meth:`embed`, never refit) then the
            fitted head; it predicts and has ``classes_``.
        """
        X, y = self._check_support(X, y)
        if len(np.unique(y)) < 2:
            raise ValueError("The support set has a single class; adapting a classifier "
                             "needs at least 2.")
        head = LogisticRegression() if self.head == "logistic" else NearestCentroid()
        # NearestCentroid's within-class spread divides by n_samples - n_classes: 0 at one
        # shot (numpy warns); balanced support sets predict by the nearest centroid alone
        with np.errstate(divide="ignore", invalid="ignore"):
            return make_pipeline(FrozenEstimator(_Embedding(self)), head).fit(X, y)


class _Embedding(TransformerMixin, BaseEstimator):
    """A pretrained learner's :meth:`PretrainedEmbeddingClassifier.embed` as a transformer."""

    def __init__(self, learner):
        self.learner = learner

    def __sklearn_is_fitted__(self):
        return True  # pretrained

    def fit(self, X, y=None):
        """Nothing to fit: the embedding is pretrained."""
        return self

    def transform(self, X):
        """The embedded rows."""
        return self.learner.embed(X)


# ---------------------------------------------------------- a pooled regressor
class _CorrectedRegressor(RegressorMixin, BaseEstimator):
    """A fitted pooled model plus a correction that ``fit`` fits to one task's residuals."""

    def __init__(self, pooled, scaler, correction="intercept", alpha=1.0):
        self.pooled = pooled
        self.scaler = scaler
        self.correction = correction
        self.alpha = alpha

    def fit(self, X, y):
        """Fit the correction to the residuals of ``(X, y)``."""
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], y_numeric=True)
        residual = np.asarray(y, dtype=np.float64) - self.pooled.predict(X)
        if self.correction == "intercept":
            self.correction_ = float(residual.mean())
        else:
            self.correction_ = Ridge(alpha=self.alpha).fit(self.scaler.transform(X), residual)
        return self

    def predict(self, X):
        """The pooled prediction plus the task's correction."""
        check_is_fitted(self, "correction_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        base = self.pooled.predict(X)
        if isinstance(self.correction_, float):
            return base + self.correction_
        return base + self.correction_.predict(self.scaler.transform(X))


class PooledRegressor(SupportLearner):
    """A model of all meta-training rows, corrected per task on the support rows.

    ``fit`` fits ``estimator`` on every meta-training row pooled (task
    membership ignored). ``adapt(X, y)`` fits a correction to the support
    rows' residuals ``y - pooled.predict(X)``: their mean (a per-task
    intercept, as a random-intercept model) or a ridge regression of them on
    the standardised features (per-task slopes, shrunk to zero by ``alpha``).
    Where tasks are groups of one dataset that share most of their structure,
    this can beat every meta-learner.

    Parameters
    ----------
    estimator : estimator, default=None
        The pooled model; None is ``make_pipeline(StandardScaler(), Ridge())``.
        An MLP (:class:`sklmeta.baselines.SkorchMLPRegressor`) works too.
    correction : {"intercept", "ridge"}, default="intercept"
        The per-task correction of the residuals.
    alpha : float, default=1.0
        The ridge penalty of ``correction="ridge"``.
    task_splitter : TaskSplitter, default=None
        The episodes ``score`` draws (None: ``TaskSplitter()``).
    random_state : int, RandomState instance or None, default=None
        Seeds an unseeded splitter's episodes in ``score``.

    Attributes
    ----------
    estimator_ : estimator
        The pooled model, fitted.
    scaler_ : StandardScaler
        Fit on the pooled rows; the ridge correction sees its features.
    n_features_in_ : int
        Width of the data.
    unit_ : {"tasks", "groups", None}
        What a task was at fit.

    See Also
    --------
    PerSupport : An estimator fit on each support set from scratch.

    Examples
    --------
    >>> import numpy as np
    >>> from sklmeta import TaskSplitter
    >>> from sklmeta.transfer import PooledRegressor
    >>> rng = np.random.RandomState(0)
    >>> tasks = []
    >>> for _ in range(20):              # a shared slope, a task's own intercept
    ...     X = rng.randn(30, 2)
    ...     tasks.append((X, 2 * X[:, 0] + rng.randn() * 3 + 0.1 * rng.randn(30)))
    >>> splitter = TaskSplitter(k_shot=5, n_query=10, n_tasks=20, random_state=0)
    >>> reg = PooledRegressor(task_splitter=splitter).fit(tasks)
    >>> X_new = rng.randn(15, 2)
    >>> y_new = 2 * X_new[:, 0] + 7.0                         # an unseen intercept
    >>> float(abs(reg.adapt(X_new[:5], y_new[:5]).predict(X_new[5:]) - y_new[5:]).max()) < 1
    True
    """

    _parameter_constraints = {
        **SupportLearner._parameter_constraints,
        "estimator": [HasMethods(["fit", "predict"]), None],
        "correction": [StrOptions({"intercept", "ridge"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
    }

    def __init__(self, estimator=None, *, correction="intercept", alpha=1.0,
                 task_splitter=None, random_state=None):
        self.estimator = estimator
        self.correction = correction
        self.alpha = alpha
        self.task_splitter = task_splitter
        self.random_state = random_state

    def _is_classifier(self):
        return False

    def fit(self, X, y=None, groups=None):
        """Fit the pooled model on every meta-training row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or list of (X_i, y_i)
            Meta-training data, as a meta-estimator's ``fit`` takes them.
        y : array-like of shape (n_samples,), default=None
            Targets; None when ``X`` is a list of tasks.
        groups : array-like of shape (n_samples,), default=None
            Task membership (the pooled model ignores it).

        Returns
        -------
        self : object
            The fitted learner.
        """
        pools, fitted = self._pools(X, y, groups)
        X_all = np.concatenate([p.X for p in pools])
        y_all = np.concatenate([p.y for p in pools])
        estimator = (make_pipeline(StandardScaler(), Ridge()) if self.estimator is None
                     else clone(self.estimator))
        fitted.update(estimator_=estimator.fit(X_all, y_all),
                      scaler_=StandardScaler().fit(X_all))
        for name, value in fitted.items():
            setattr(self, name, value)
        return self

    def adapt(self, X, y):
        """Fit the correction to the support rows' residuals; return the corrected model.

        Parameters
        ----------
        X : array-like of shape (n_support, n_features)
            The support set's features.
        y : array-like of shape (n_support,)
            Its targets.

        Returns
        -------
        estimator
            A fitted regressor: the pooled prediction plus the correction.
        """
        X, y = self._check_support(X, y)
        return _CorrectedRegressor(FrozenEstimator(self.estimator_), FrozenEstimator(self.scaler_),
                                   self.correction, self.alpha).fit(X, y)
