"""Meta-estimators with the scikit-learn API, one per algorithm.

A meta-estimator (:class:`MAMLClassifier`, :class:`MetaSGDRegressor`, ...) is
*fitted* by meta-training on many tasks; it does not predict by itself.
``adapt(X, y)`` adapts it to a new task's support set and returns a new, fitted
:class:`AdaptedClassifier` / :class:`AdaptedRegressor` that predicts; the
meta-estimator is never changed by it.

Every algorithm is the same estimator machinery (:mod:`sklmeta._base`) and the
same skorch loop, configured with a small strategy from :mod:`sklmeta._algorithms`;
a class here only declares its parameters and which strategy they build.
"""

import copy
import inspect

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score
from sklearn.utils import ClassifierTags, RegressorTags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_feature_names,
    _check_n_features,
    check_is_fitted,
    column_or_1d,
    validate_data,
)
from torch.func import functional_call

from . import _algorithms
from ._base import (
    _embed,
    _MetaEstimatorBase,
    _numeric_target,
    _standardiser,
    make_mlp,
    store_params,
)
from ._validation import check_int, check_positive, unique_labels
from .tasks import _label

__all__ = [
    "MAMLClassifier", "MAMLRegressor", "MetaSGDClassifier", "MetaSGDRegressor",
    "ANILClassifier", "ANILRegressor", "ReptileClassifier", "ReptileRegressor",
    "ProtoNetClassifier", "AdaptedClassifier", "AdaptedRegressor", "adapt", "make_mlp",
]

class _AdaptedBase(BaseEstimator):
    """An estimator adapted from a meta-estimator's initialisation; ``fit`` adapts."""

    _task = None

    def __init__(self, meta_estimator):
        self.meta_estimator = meta_estimator

    def __sklearn_clone__(self):
        # The meta-estimator is a pre-trained, read-only resource (like
        # FrozenEstimator): clones share it rather than refit it.
        return type(self)(meta_estimator=self.meta_estimator)

    def _validate(self, X, y):
        """The data checks of adaptation (fitted meta-estimator, names, width, finite)."""
        meta = self.meta_estimator
        check_is_fitted(meta, msg=(
            f"{type(meta).__name__} is not meta-trained yet: call fit(tasks) before adapt."))
        if not meta.standardize_:
            _check_feature_names(meta, X, reset=False)
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32],
                             y_numeric=self._task == "regression")
        if meta.standardize_:
            if X.shape[1] > meta.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[1]} features, but {type(meta).__name__} was meta-trained "
                    f"on tasks zero-padded to {meta.n_features_in_}; adapt accepts at most "
                    f"{meta.n_features_in_}."
                )
        else:
            _check_n_features(meta, X, reset=False)
        if self._task == "classification":
            check_classification_targets(y)
        else:
            y = _numeric_target(y)
        return X, y

    def _encode(self, X, y):
        """Set the support set's fitted attributes; return its tensors and class count.

        ``X, y`` are validated arrays (:meth:`_validate`).
        """
        meta = self.meta_estimator
        if meta.standardize_:
            if len(y) < 2:
                raise ValueError(
                    "A support set with 1 sample cannot be standardised (the "
                    "meta-estimator standardises each task); give at least 2 samples."
                )
            self.mean_, self.scale_ = _standardiser(X)
        else:
            self.mean_ = self.scale_ = None
        # What predict needs is kept here, so a later refit of the meta-estimator
        # (another width, another architecture) leaves this estimator intact.
        self.module_, self.n_features_padded_ = meta._predict_module_, meta.n_features_in_
        device = meta.net_.data_device
        x = _embed(X, self.n_features_padded_, self.mean_, self.scale_, device)
        if self._task == "classification":
            self.classes_, y_enc = np.unique(y, return_inverse=True)
            n = len(self.classes_)
            if n < 2:
                raise ValueError(
                    f"The support set has a single class ({_label(self.classes_[0])}); "
                    "adapting a classifier needs at least 2."
                )
            if meta._limits_classes and n > meta.n_way_:
                raise ValueError(
                    f"The support set has {n} classes, but {type(meta).__name__} was "
                    f"meta-trained with n_way={meta.n_way_} outputs; adapt takes at most "
                    f"{meta.n_way_} classes."
                )
            return x, torch.as_tensor(y_enc, device=device), n
        return x, torch.as_tensor(y, dtype=torch.float32, device=device), None

    def _prepare(self, X, y):
        """Validate a support set; set fitted attributes; return its tensors."""
        return self._encode(*self._validate(X, y))

    def _check_known_labels(self, y):
        unknown = np.setdiff1d(unique_labels(y, "y")[0], self.classes_)
        if len(unknown):
            raise ValueError(
                f"y has labels {unknown.tolist()} that are not among the support set's "
                f"classes {self.classes_.tolist()}."
            )

    def fit(self, X, y):
        """Adapt the meta-learned initialisation to the support set ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_support, n_features)
        y : array-like of shape (n_support,)

        Returns
        -------
        self
        """
        x, y_t, n_classes = self._prepare(X, y)
        (self.params_,) = self.meta_estimator._adapt_prepared([x], [y_t], [n_classes])
        return self

    def _outputs(self, X):
        check_is_fitted(self, "params_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        device = next(iter(self.params_.values())).device
        x = _embed(X, self.n_features_padded_, self.mean_, self.scale_, device)
        # Predict in float64: float32 matrix products change a row's result in its
        # last bits when the rows around it change (BLAS blocking), so a float32
        # forward makes a row's prediction depend on the rest of the batch; in
        # float64 that effect is ~1e-16, far below what any caller can see.
        params = {k: v.double() if v.is_floating_point() else v for k, v in
                  {**dict(self.module_.named_buffers()), **self.params_}.items()}
        with torch.no_grad():
            return functional_call(self.module_, params, (x.double(),))


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

    _task = "classification"

    def predict_proba(self, X):
        """Class probabilities, columns ordered as ``classes_``."""
        logits = self._outputs(X)[:, : len(self.classes_)]
        return torch.softmax(logits, dim=-1).cpu().numpy()

    def predict(self, X):
        """Most probable class among ``classes_``."""
        logits = self._outputs(X)[:, : len(self.classes_)]
        return self.classes_[logits.argmax(-1).cpu().numpy()]

    def score(self, X, y, sample_weight=None):
        """Accuracy on ``(X, y)``; labels absent from the support set are an error."""
        check_is_fitted(self, "params_")
        self._check_known_labels(column_or_1d(y))
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

    _task = "regression"

    def predict(self, X):
        """Predicted targets."""
        return self._outputs(X)[:, 0].cpu().numpy().astype(np.float64)


# ----------------------------------------------------------------- documentation
# One description per parameter and attribute; each class's docstring lists its
# own, in signature order, with the defaults read from the signature.
_PARAM_DOCS = {
    "task_splitter": ("TaskSplitter", """
        Draws the episodes: ``n_tasks`` training episodes per epoch from the
        fit data, and the episodes ``score`` averages over. None means
        ``TaskSplitter()`` (for a classifier: all classes of the data in each
        episode)."""),
    "hidden_layer_sizes": ("tuple of int", """
        Hidden widths of the default MLP."""),
    "embedding_dim": ("int", """
        Output width of the default MLP: the embedding the prototypes live in."""),
    "activation": ('{"relu", "tanh", "gelu"}', """
        Activation of the default MLP."""),
    "module": ("torch.nn.Module", """
        A network to use instead of the MLP (deep-copied at fit). It maps
        ``[n, n_features]`` to ``[n, n_way]`` (classifiers), ``[n, 1]``
        (regressors), or to an embedding of any width (ProtoNet)."""),
    "inner_lr": ("float", """
        Step size of the inner loop (training and adaptation). Read when
        adapting, so it can be changed with ``set_params`` after meta-training."""),
    "inner_steps": ("int", """
        Inner gradient steps of each task during meta-training."""),
    "adapt_steps": ("int", """
        Inner steps at adaptation time (``adapt``, ``score``, meta-validation);
        None means ``inner_steps``. Read when adapting, like ``inner_lr``."""),
    "first_order": ("bool", """
        Drop the second-order terms of the meta-gradient (first-order MAML)."""),
    "lr_mode": ('{"element", "tensor-step"}', """
        What Meta-SGD learns: one step size per parameter element, shared by the
        inner steps (the paper), or one per parameter tensor and inner step
        (MAML++'s LSLR; ``adapt_steps`` may then not exceed ``inner_steps``).
        The rates start at ``inner_lr`` and are ``inner_lrs_`` after fit."""),
    "meta_lr": ("float", """
        Learning rate of the outer loop: Adam's, or for Reptile the step size of
        its plain SGD outer loop."""),
    "meta_batch_size": ("int", """
        Tasks per meta-step."""),
    "max_epochs": ("int", """
        Epochs of ``task_splitter.n_tasks`` episodes each; 0 keeps the random start."""),
    "early_stopping": ('{"auto", True, False}', """
        Hold out tasks (groups or task datasets), or else classes, or else rows,
        for meta-validation; stop after ``n_iter_no_change`` epochs without
        improvement and restore the best weights, the random start (epoch 0)
        included. "auto" does so when the data allow it and warns when not."""),
    "validation_fraction": ("float", """
        Fraction of tasks (classes, rows) held out when early stopping."""),
    "n_iter_no_change": ("int", """
        Epochs without improvement of the meta-validation score before stopping."""),
    "standardize": ('{"auto", True, False}', """
        Standardise each task dataset (and each support set at ``adapt``) and
        zero-pad to the widest; "auto" does so when task widths differ."""),
    "callbacks": ("list of skorch callbacks", """
        Passed to the skorch net (deep-copied), e.g. ``EarlyStopping``,
        ``Checkpoint``, ``LRScheduler``; they see ``valid_loss`` (and
        ``valid_acc`` for classifiers)."""),
    "verbose": ("int", """
        1 prints skorch's epoch table and progress bar."""),
    "device": ("str", """
        Torch device of the meta-parameters, e.g. "cuda"."""),
    "accelerator": ("accelerate.Accelerator", """
        Meta-train through Hugging Face accelerate (skorch's ``AccelerateMixin``):
        mixed precision, and several GPUs or machines with ``accelerate launch``
        (each process draws its own episodes; meta-gradients are averaged). The
        accelerator places the parameters; ``device`` is then not used."""),
    "random_state": ("int, RandomState instance or None", """
        Seeds the initial weights, the held-out split and the training episodes."""),
}

_ATTRIBUTE_DOCS = """
    Attributes
    ----------
    net_ : MetaNet
        The fitted skorch net (history, callbacks, optimizer); its ``module_``
        holds everything meta-learned.
    module_ : torch.nn.Module
        The meta-learned network.{extra}
    history_ : skorch.History
        Per-epoch ``train_loss``, ``valid_loss`` (and ``valid_acc``), durations.
    n_way_ : int or None
        Classes per training episode (None for regressors).
    n_features_in_ : int
        Width of the (padded) inputs.
    feature_names_in_ : ndarray of str
        Column names, when fit on a DataFrame.
    standardize_ : bool
    early_stopping_ : bool
        Whether meta-validation episodes were held out.
    validation_split_ : dict or None
        What was held out for meta-validation: ``unit`` ("tasks", "groups",
        "classes" or "rows"), ``held_out`` (task indices, group or class labels,
        row indices) and ``n_kept`` (how many remain for meta-training). With few
        classes this is a real trade-off: digits 0-5 in 3-way episodes keep only 3
        classes for meta-training.
    best_epoch_ : int
        Epoch whose weights were kept; 0 is the random start.
    initial_valid_score_ : float or None
        Meta-validation score of the random start.
"""

_INNER_LRS_DOC = """
    inner_lrs_ : dict of str to ndarray
        The learned step sizes per parameter of ``module_``: arrays of the
        parameter's shape (``lr_mode="element"``) or of length ``inner_steps``."""


def _documented(extra_attributes="", note=""):
    """Fill a class docstring's ``{params}`` from its ``__init__`` signature (and ``{note}``)."""

    def decorate(cls):
        lines = ["", "    Parameters", "    ----------"]
        for name, p in inspect.signature(cls.__init__).parameters.items():
            if name == "self":
                continue
            kind, text = _PARAM_DOCS[name]
            lines.append(f"    {name} : {kind}, default={p.default!r}" + text)
        params = "\n".join(lines) + "\n" + _ATTRIBUTE_DOCS.format(extra=extra_attributes)
        cls.__doc__ = cls.__doc__.format(params=params, note=note)
        return cls

    return decorate


# ------------------------------------------------------------------- the families
class _MetaClassifier(_MetaEstimatorBase):
    _task = "classification"
    _adapted_class = AdaptedClassifier

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier"
        tags.classifier_tags = ClassifierTags()
        return tags


class _MetaRegressor(_MetaEstimatorBase):
    _task = "regression"
    _adapted_class = AdaptedRegressor

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor"
        tags.regressor_tags = RegressorTags()
        return tags


class _GradientBased:
    """The inner-loop parameters shared by MAML, Meta-SGD, ANIL and Reptile."""

    _strategy = _algorithms.MAML

    def _inner(self):
        check_positive(self.inner_lr, "inner_lr")
        check_int(self.inner_steps, "inner_steps", 1)
        steps = self.adapt_steps if self.adapt_steps is not None else self.inner_steps
        check_int(steps, "adapt_steps", 1)
        return dict(inner_lr=self.inner_lr, inner_steps=self.inner_steps, adapt_steps=steps)

    def _algorithm(self):
        return self._strategy(**self._inner(), first_order=self.first_order)


class _MetaSGD(_GradientBased):
    def _algorithm(self):
        if self.lr_mode not in ("element", "tensor-step"):
            raise ValueError(
                f"lr_mode must be 'element' or 'tensor-step'; got {self.lr_mode!r}.")
        return _algorithms.MetaSGD(**self._inner(), first_order=self.first_order,
                                   lr_mode=self.lr_mode)

    def _fitted_extras(self, algorithm, learner):
        self.inner_lrs_ = algorithm.learned_step_sizes(learner)


class _ANIL(_GradientBased):
    _strategy = _algorithms.ANIL


class _Reptile(_GradientBased):
    def _algorithm(self):
        return _algorithms.Reptile(**self._inner())


# ------------------------------------------------------------------------ MAML
@_documented()
class MAMLClassifier(_GradientBased, _MetaClassifier):
    """Model-Agnostic Meta-Learning (Finn et al., 2017) for few-shot classification.

    ``fit`` meta-trains an initialisation on N-way K-shot episodes; ``adapt(X, y)``
    takes a few gradient steps on a new task's support set and returns an
    :class:`AdaptedClassifier`. The head has ``n_way`` outputs and episode labels
    are re-mapped to ``0..n_way-1``; ``adapt`` maps them back to your labels.
    {params}
    References
    ----------
    Finn, Abbeel and Levine, "Model-Agnostic Meta-Learning for Fast Adaptation of
    Deep Networks", ICML 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from sklmeta import MAMLClassifier, TaskSplitter
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X / 16.0
    >>> seen, unseen = y < 6, y >= 6
    >>> splitter = TaskSplitter(n_way=3, k_shot=5, n_query=10, n_tasks=64, random_state=0)
    >>> meta = MAMLClassifier(task_splitter=splitter, max_epochs=2, random_state=0)
    >>> meta = meta.fit(X[seen], y[seen])
    >>> s, q = next(splitter.split(X[unseen], y[unseen]))
    >>> clf = meta.adapt(X[unseen][s], y[unseen][s])
    >>> clf.classes_.tolist() == sorted(set(y[unseen][s]))
    True
    >>> 0.0 <= meta.score(X[unseen], y[unseen]) <= 1.0
    True
    """

    def __init__(self, *, task_splitter=None, hidden_layer_sizes=(40, 40), activation="relu",
                 module=None, inner_lr=0.4, inner_steps=1, adapt_steps=None, first_order=False,
                 meta_lr=1e-3, meta_batch_size=16, max_epochs=20, early_stopping="auto",
                 validation_fraction=0.2, n_iter_no_change=5, standardize="auto",
                 callbacks=None, verbose=0, device="cpu", accelerator=None,
                 random_state=None):
        store_params(self, locals())


@_documented()
class MAMLRegressor(_GradientBased, _MetaRegressor):
    """Model-Agnostic Meta-Learning (Finn et al., 2017) for few-shot regression.

    ``fit`` meta-trains an initialisation on K-shot episodes (e.g. the sinusoid
    tasks of the MAML paper); ``adapt(X, y)`` takes a few gradient steps on a new
    task's support set and returns an :class:`AdaptedRegressor`.
    {params}
    References
    ----------
    Finn, Abbeel and Levine, "Model-Agnostic Meta-Learning for Fast Adaptation of
    Deep Networks", ICML 2017.

    Examples
    --------
    >>> from sklmeta import MAMLRegressor, TaskSplitter
    >>> from sklmeta.datasets import make_sinusoid_tasks
    >>> tasks = make_sinusoid_tasks(n_tasks=100, random_state=0)
    >>> splitter = TaskSplitter(k_shot=10, n_query=10, n_tasks=100, random_state=0)
    >>> reg = MAMLRegressor(task_splitter=splitter, max_epochs=2, random_state=0).fit(tasks)
    >>> x, y = tasks[0]
    >>> reg.adapt(x[:10], y[:10]).predict(x[10:15]).shape
    (5,)
    """

    def __init__(self, *, task_splitter=None, hidden_layer_sizes=(40, 40), activation="relu",
                 module=None, inner_lr=0.01, inner_steps=1, adapt_steps=None, first_order=False,
                 meta_lr=1e-3, meta_batch_size=16, max_epochs=20, early_stopping="auto",
                 validation_fraction=0.2, n_iter_no_change=5, standardize="auto",
                 callbacks=None, verbose=0, device="cpu", accelerator=None,
                 random_state=None):
        store_params(self, locals())


# -------------------------------------------------------------------- Meta-SGD
@_documented(_INNER_LRS_DOC)
class MetaSGDClassifier(_MetaSGD, _MetaClassifier):
    """Meta-SGD (Li et al., 2017) for few-shot classification: MAML with learned step sizes.

    The inner loop is MAML's, but every parameter has its own step size, and the
    step sizes are meta-learned with the initialisation (``inner_lrs_``).
    {params}
    References
    ----------
    Li, Zhou, Chen and Li, "Meta-SGD: Learning to Learn Quickly for Few-Shot
    Learning", arXiv:1707.09835, 2017. Antoniou, Edwards and Storkey, "How to
    train your MAML", ICLR 2019 (per-step rates, ``lr_mode="tensor-step"``).

    Examples
    --------
    >>> from sklmeta import MetaSGDClassifier, TaskSplitter
    >>> from sklmeta.datasets import make_classification_tasks
    >>> tasks = make_classification_tasks(n_tasks=20, random_state=0)
    >>> splitter = TaskSplitter(n_way=2, k_shot=5, n_query=5, n_tasks=32, random_state=0)
    >>> meta = MetaSGDClassifier(task_splitter=splitter, max_epochs=2, random_state=0)
    >>> meta = meta.fit(tasks)
    >>> meta.inner_lrs_["0.weight"].shape == meta.module_[0].weight.shape
    True
    """

    def __init__(self, *, task_splitter=None, hidden_layer_sizes=(40, 40), activation="relu",
                 module=None, inner_lr=0.4, inner_steps=1, adapt_steps=None, first_order=False,
                 lr_mode="element", meta_lr=1e-3, meta_batch_size=16, max_epochs=20,
                 early_stopping="auto", validation_fraction=0.2, n_iter_no_change=5,
                 standardize="auto", callbacks=None, verbose=0, device="cpu",
                 accelerator=None, random_state=None):
        store_params(self, locals())


@_documented(_INNER_LRS_DOC)
class MetaSGDRegressor(_MetaSGD, _MetaRegressor):
    """Meta-SGD (Li et al., 2017) for few-shot regression: MAML with learned step sizes.

    The inner loop is MAML's, but every parameter has its own step size, and the
    step sizes are meta-learned with the initialisation (``inner_lrs_``).
    {params}
    References
    ----------
    Li, Zhou, Chen and Li, "Meta-SGD: Learning to Learn Quickly for Few-Shot
    Learning", arXiv:1707.09835, 2017.

    Examples
    --------
    >>> from sklmeta import MetaSGDRegressor, TaskSplitter
    >>> from sklmeta.datasets import make_sinusoid_tasks
    >>> tasks = make_sinusoid_tasks(n_tasks=100, random_state=0)
    >>> splitter = TaskSplitter(k_shot=5, n_query=5, n_tasks=100, random_state=0)
    >>> reg = MetaSGDRegressor(task_splitter=splitter, max_epochs=2, random_state=0).fit(tasks)
    >>> sorted(reg.inner_lrs_) == sorted(name for name, _ in reg.module_.named_parameters())
    True
    """

    def __init__(self, *, task_splitter=None, hidden_layer_sizes=(40, 40), activation="relu",
                 module=None, inner_lr=0.01, inner_steps=1, adapt_steps=None, first_order=False,
                 lr_mode="element", meta_lr=1e-3, meta_batch_size=16, max_epochs=20,
                 early_stopping="auto", validation_fraction=0.2, n_iter_no_change=5,
                 standardize="auto", callbacks=None, verbose=0, device="cpu",
                 accelerator=None, random_state=None):
        store_params(self, locals())


# ------------------------------------------------------------------------ ANIL
@_documented()
class ANILClassifier(_ANIL, _MetaClassifier):
    """ANIL (Raghu et al., 2020) for few-shot classification: adapt only the head.

    Meta-training is MAML's, but the inner loop updates only the output layer
    (the last submodule with parameters); the body is meta-learned and then
    shared, unchanged, by every adapted model. Adaptation is much cheaper: the
    body's features are computed once per task.
    {params}
    References
    ----------
    Raghu, Raghu, Bengio and Vinyals, "Rapid Learning or Feature Reuse? Towards
    Understanding the Effectiveness of MAML", ICLR 2020.

    Examples
    --------
    >>> from sklmeta import ANILClassifier, TaskSplitter
    >>> from sklmeta.datasets import make_classification_tasks
    >>> tasks = make_classification_tasks(n_tasks=20, random_state=0)
    >>> splitter = TaskSplitter(n_way=2, k_shot=5, n_query=5, n_tasks=32, random_state=0)
    >>> meta = ANILClassifier(task_splitter=splitter, max_epochs=2, random_state=0).fit(tasks)
    >>> X, y = tasks[0]
    >>> clf = meta.adapt(X[:10], y[:10])
    >>> bool((clf.params_["0.weight"] == meta.module_[0].weight).all())  # body unchanged
    True
    """

    def __init__(self, *, task_splitter=None, hidden_layer_sizes=(40, 40), activation="relu",
                 module=None, inner_lr=0.4, inner_steps=1, adapt_steps=None, first_order=False,
                 meta_lr=1e-3, meta_batch_size=16, max_epochs=20, early_stopping="auto",
                 validation_fraction=0.2, n_iter_no_change=5, standardize="auto",
                 callbacks=None, verbose=0, device="cpu", accelerator=None,
                 random_state=None):
        store_params(self, locals())


@_documented()
class ANILRegressor(_ANIL, _MetaRegressor):
    """ANIL (Raghu et al., 2020) for few-shot regression: adapt only the head.

    Meta-training is MAML's, but the inner loop updates only the output layer;
    the body is meta-learned and then shared, unchanged, by every adapted model.
    {params}
    References
    ----------
    Raghu, Raghu, Bengio and Vinyals, "Rapid Learning or Feature Reuse? Towards
    Understanding the Effectiveness of MAML", ICLR 2020.

    Examples
    --------
    >>> from sklmeta import ANILRegressor, TaskSplitter
    >>> from sklmeta.datasets import make_sinusoid_tasks
    >>> tasks = make_sinusoid_tasks(n_tasks=100, random_state=0)
    >>> splitter = TaskSplitter(k_shot=5, n_query=5, n_tasks=100, random_state=0)
    >>> reg = ANILRegressor(task_splitter=splitter, max_epochs=2, random_state=0).fit(tasks)
    >>> x, y = tasks[0]
    >>> reg.adapt(x[:5], y[:5]).predict(x[5:8]).shape
    (3,)
    """

    def __init__(self, *, task_splitter=None, hidden_layer_sizes=(40, 40), activation="relu",
                 module=None, inner_lr=0.01, inner_steps=1, adapt_steps=None, first_order=False,
                 meta_lr=1e-3, meta_batch_size=16, max_epochs=20, early_stopping="auto",
                 validation_fraction=0.2, n_iter_no_change=5, standardize="auto",
                 callbacks=None, verbose=0, device="cpu", accelerator=None,
                 random_state=None):
        store_params(self, locals())


# --------------------------------------------------------------------- Reptile
_REPTILE_NOTE = """
    Reptile is first-order by construction and needs no separate query set: each
    task of a meta-batch is adapted with ``inner_steps`` SGD steps on all its
    rows (support and query), and the weights move towards the mean adapted
    weights, ``w += meta_lr * mean(adapted - w)`` (plain SGD in the outer loop,
    so ``meta_lr`` is Reptile's outer step size). ``adapt`` runs the same inner
    loop on the support set."""


@_documented(note=_REPTILE_NOTE)
class ReptileClassifier(_Reptile, _MetaClassifier):
    """Reptile (Nichol et al., 2018) for few-shot classification.
    {note}
    {params}
    References
    ----------
    Nichol, Achiam and Schulman, "On First-Order Meta-Learning Algorithms",
    arXiv:1803.02999, 2018.

    Examples
    --------
    >>> from sklmeta import ReptileClassifier, TaskSplitter
    >>> from sklmeta.datasets import make_classification_tasks
    >>> tasks = make_classification_tasks(n_tasks=20, random_state=0)
    >>> splitter = TaskSplitter(n_way=2, k_shot=5, n_query=5, n_tasks=32, random_state=0)
    >>> meta = ReptileClassifier(task_splitter=splitter, max_epochs=2, random_state=0)
    >>> X, y = tasks[0]
    >>> meta.fit(tasks).adapt(X[:10], y[:10]).predict(X[10:13]).shape
    (3,)
    """

    def __init__(self, *, task_splitter=None, hidden_layer_sizes=(40, 40), activation="relu",
                 module=None, inner_lr=0.1, inner_steps=5, adapt_steps=None, meta_lr=0.5,
                 meta_batch_size=16, max_epochs=20, early_stopping="auto",
                 validation_fraction=0.2, n_iter_no_change=5, standardize="auto",
                 callbacks=None, verbose=0, device="cpu", accelerator=None,
                 random_state=None):
        store_params(self, locals())


@_documented(note=_REPTILE_NOTE)
class ReptileRegressor(_Reptile, _MetaRegressor):
    """Reptile (Nichol et al., 2018) for few-shot regression.
    {note}
    {params}
    References
    ----------
    Nichol, Achiam and Schulman, "On First-Order Meta-Learning Algorithms",
    arXiv:1803.02999, 2018.

    Examples
    --------
    >>> from sklmeta import ReptileRegressor, TaskSplitter
    >>> from sklmeta.datasets import make_sinusoid_tasks
    >>> tasks = make_sinusoid_tasks(n_tasks=100, random_state=0)
    >>> splitter = TaskSplitter(k_shot=5, n_query=5, n_tasks=100, random_state=0)
    >>> reg = ReptileRegressor(task_splitter=splitter, max_epochs=2, random_state=0).fit(tasks)
    >>> x, y = tasks[0]
    >>> reg.adapt(x[:5], y[:5]).predict(x[5:8]).shape
    (3,)
    """

    def __init__(self, *, task_splitter=None, hidden_layer_sizes=(40, 40), activation="relu",
                 module=None, inner_lr=0.01, inner_steps=10, adapt_steps=None, meta_lr=0.5,
                 meta_batch_size=16, max_epochs=20, early_stopping="auto",
                 validation_fraction=0.2, n_iter_no_change=5, standardize="auto",
                 callbacks=None, verbose=0, device="cpu", accelerator=None,
                 random_state=None):
        store_params(self, locals())


# -------------------------------------------------------------------- ProtoNet
@_documented()
class ProtoNetClassifier(_MetaClassifier):
    """Prototypical Networks (Snell et al., 2017): nearest class mean in a learned embedding.

    ``fit`` meta-trains an embedding network so that, in each episode, a query
    row is classified by its squared Euclidean distance to the mean embedding
    (the prototype) of each class's support rows. ``adapt(X, y)`` computes the
    prototypes: no gradient steps, and any number of classes (not limited to
    ``n_way``). The adapted model is the embedding followed by a linear head
    (``W = 2 p``, ``b = -||p||^2``), whose argmax is the nearest prototype.
    {params}
    References
    ----------
    Snell, Swersky and Zemel, "Prototypical Networks for Few-shot Learning",
    NeurIPS 2017.

    Examples
    --------
    >>> from sklmeta import ProtoNetClassifier, TaskSplitter
    >>> from sklmeta.datasets import make_classification_tasks
    >>> tasks = make_classification_tasks(n_tasks=20, random_state=0)
    >>> splitter = TaskSplitter(n_way=2, k_shot=5, n_query=5, n_tasks=32, random_state=0)
    >>> meta = ProtoNetClassifier(task_splitter=splitter, max_epochs=2, random_state=0)
    >>> X, y = tasks[0]
    >>> meta.fit(tasks).adapt(X[:10], y[:10]).predict_proba(X[10:13]).shape
    (3, 2)
    """

    _limits_classes = False

    def __init__(self, *, task_splitter=None, hidden_layer_sizes=(40, 40), embedding_dim=40,
                 activation="relu", module=None, meta_lr=1e-3, meta_batch_size=16,
                 max_epochs=20, early_stopping="auto", validation_fraction=0.2,
                 n_iter_no_change=5, standardize="auto", callbacks=None, verbose=0,
                 device="cpu", accelerator=None, random_state=None):
        store_params(self, locals())

    def _algorithm(self):
        check_int(self.embedding_dim, "embedding_dim", 1)
        return _algorithms.ProtoNet()

    def _n_outputs(self, n_way):
        return self.embedding_dim if self.module is None else None


# Every public meta-estimator, once: sklmeta.load's allow-list and the tests' list.
META_ESTIMATORS = (
    MAMLClassifier, MAMLRegressor, MetaSGDClassifier, MetaSGDRegressor, ANILClassifier,
    ANILRegressor, ReptileClassifier, ReptileRegressor, ProtoNetClassifier,
)


def adapt(estimator, X, y):
    """Adapt a meta-estimator, or a fitted Pipeline ending in one, to a new task.

    For a Pipeline, the fitted transformers are applied to ``X`` (not refit) and
    the last step is adapted; the result is a new Pipeline with copies of the
    fitted transformers and the adapted estimator. Nothing is modified.

    Parameters
    ----------
    estimator : MAMLClassifier, MAMLRegressor or Pipeline
    X : array-like of shape (n_support, n_features)
    y : array-like of shape (n_support,)

    Returns
    -------
    AdaptedClassifier, AdaptedRegressor or Pipeline

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
