"""What every meta-estimator does: fit, adapt and score, orchestrated.

:class:`MetaEstimatorBase` validates its parameters (declared in
``_parameter_constraints``, in scikit-learn's style), turns the data into task
pools (:mod:`sklmeta._episodes`), holds out meta-validation tasks, builds the
skorch net (:mod:`sklmeta._training`) and trains it, then commits the fitted
attributes all at once. Adaptation and scoring go through
:mod:`sklmeta._adaptation`. A public estimator (:mod:`sklmeta.estimators`)
declares its parameters and builds its algorithm in ``__sklmeta_algorithm__``.

The interface this module offers the rest of the package: :class:`MetaEstimatorBase`,
:data:`SAVED_ATTRIBUTES`, :func:`build_learner`, :func:`fitted_state` and
:func:`restore_fitted` (for :mod:`sklmeta.persistence`).
"""

import numbers
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, clone, is_classifier
from sklearn.utils import ClassifierTags, RegressorTags, check_random_state
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _get_feature_names, check_X_y
from skorch.history import History

from ._adaptation import episode_scores
from ._core import ACTIVATIONS, network
from ._core.functional import seeded_rng
from ._core.threads import compute_threads
from ._doc_link import DocLinkMixin
from ._episodes import fit_pools, fitted_episode_size, hold_out, label_repr, usable
from ._preprocessing import Scaling, numeric_target
from ._training import (
    DivergenceWarning,
    EpisodeDataset,
    MetaTrainingDiverged,
    build_net,
    episode_tensors,
)
from ._validation import check_hidden_layer_sizes, unique_labels
from .tasks import TaskSplitter

__all__ = ["GRADIENT_CONSTRAINTS", "SAVED_ATTRIBUTES", "GradientBased", "MetaClassifierBase",
           "MetaEstimatorBase", "MetaRegressorBase", "build_learner", "fitted_state",
           "restore_fitted"]

# What sklmeta.save stores besides the Learner's weights and the history; the
# network-derived attributes (module_, inner_lrs_, inner_loop_) are rebuilt.
SAVED_ATTRIBUTES = ("n_way_", "n_features_in_", "feature_names_in_", "standardize_",
                    "x_mean_", "x_scale_", "y_mean_", "y_scale_", "label_mode_",
                    "label_classes_", "early_stopping_",
                    "validation_split_", "best_epoch_", "initial_valid_score_", "std_scale_")

# skorch's prefixed parameters a meta-estimator takes as keywords, as skorch's
# NeuralNet does (its ``prefixes_``): the outer optimizer's and torch.compile's.
SKORCH_PREFIXES = ("optimizer__", "compile__")

# Episodes each meta-validation scores under the meta-step budget (max_epochs=None):
# a fixed set, drawn once from the held-out tasks or classes.
VALIDATION_EPISODES = 256

_NO_PREDICT = (
    "{name} is a meta-estimator: it predicts only after adapting to a task. Use "
    "{name}.adapt(X_support, y_support).{method}(X) (or sklmeta.adapt(pipeline, "
    "X_support, y_support) for a Pipeline)."
)


def _positive_int(minimum=1):
    return Interval(numbers.Integral, minimum, None, closed="left")


_POSITIVE = Interval(numbers.Real, 0, None, closed="neither")  # finite: inf is refused


def _label_mode(est, unit):
    """"fixed" or "shuffle": ``label_mode``, with "auto" resolved for this data."""
    mode = getattr(est, "label_mode", "shuffle")
    if mode == "auto":
        return "fixed" if unit == "groups" else "shuffle"
    return mode


def _n_way(est, pools, splitter):
    if not is_classifier(est):
        return None
    if splitter.n_way is not None:
        return splitter.n_way
    counts = {len(np.unique(p.y)) for p in pools}
    if len(counts) > 1:
        raise ValueError(
            f"The tasks have different numbers of classes ({sorted(counts)}); set "
            "task_splitter.n_way to the number of classes per episode."
        )
    n_way = counts.pop()
    if n_way < 2:
        raise ValueError(
            f"{type(est).__name__} needs at least 2 classes per task; "
            f"{pools[0].name or 'y '}has only 1 class ({label_repr(pools[0].y[0])})."
        )
    return n_way


def _calibration(algorithm, net, valid_ds, n_tasks=1):
    """The fitted attributes an algorithm measures on the held-out episodes after training.

    Only an algorithm with a ``calibrate`` method (the closed-form regressors:
    their ``std_scale_``) measures anything; ``valid_ds`` None (no hold-out)
    gives it no episodes. ``n_tasks`` held-out tasks (or groups) are its
    exchangeable units; held-out rows of one dataset (1) leave the episodes so.
    """
    calibrate = getattr(algorithm, "calibrate", None)
    if calibrate is None:
        return {}
    episodes = None
    if valid_ds is not None:
        device = net.data_device
        episodes = ((b["xs"].to(device), b["ys"].to(device), b["xq"].to(device), yq.to(device))
                    for b, yq in valid_ds.batches(VALIDATION_EPISODES))
    with compute_threads():
        return calibrate(net.module_, episodes, loss=net.criterion_,
                         n_units=n_tasks if n_tasks > 1 else None)


def _budget(est, splitter):
    """``(epochs, training episodes per epoch, validation episodes)`` of a fit.

    With ``max_epochs=None`` (the default) an epoch is ``validation_interval``
    meta-steps and the budget is ``max_meta_steps``; otherwise the epochs of
    ``task_splitter.n_tasks`` episodes of old.
    """
    if est.max_epochs is not None:
        return est.max_epochs, splitter.n_tasks, splitter.n_tasks
    epochs = -(-est.max_meta_steps // est.validation_interval)  # ceil
    return (epochs, est.validation_interval * est.meta_batch_size,
            VALIDATION_EPISODES)


def _warn_divergence(est, stopper, best_epoch):
    """Say so when meta-validation diverged, at the start or during training."""
    what = []
    if stopper.initial_diverged_:
        what.append("the random start's meta-validation loss is not finite")
    if stopper.diverged_epoch_ is not None:
        what.append(f"meta-validation diverged at epoch {stopper.diverged_epoch_} (its "
                    f"loss is not finite), so meta-training stopped there")
    if not what:
        return
    kept = ("the random start (meta-training never improved on it)" if best_epoch == 0
            else f"the weights of epoch {best_epoch}, the best before it")
    inner = getattr(est, "inner_lr", None)
    advice = (f"a smaller inner_lr (now {inner}), fewer adapt_steps or a smaller "
              f"meta_lr (now {est.meta_lr})" if inner is not None else
              f"a smaller meta_lr (now {est.meta_lr})")
    warnings.warn(f"{type(est).__name__}: {'; '.join(what)}. Kept {kept}. Try {advice}.",
                  DivergenceWarning, stacklevel=3)


class MetaEstimatorBase(DocLinkMixin, BaseEstimator):
    """Shared meta-training, adaptation and scoring of every meta-estimator."""

    _parameter_constraints = {
        "task_splitter": [TaskSplitter, None],
        "hidden_layer_sizes": [tuple, list],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "module": [torch.nn.Module, None],
        "meta_lr": [_POSITIVE],
        "meta_batch_size": [_positive_int()],
        "max_meta_steps": [_positive_int(0)],
        "validation_interval": [_positive_int()],
        "max_epochs": [_positive_int(0), None],
        "early_stopping": [StrOptions({"auto"}), "boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_iter_no_change": [_positive_int()],
        "standardize": [StrOptions({"auto", "global", "per-task"}), "boolean"],
        "callbacks": [list, tuple, None],
        "verbose": ["verbose"],
        "device": [str, torch.device],
        "accelerator": [HasMethods(["backward", "prepare"]), None],
        "random_state": ["random_state"],
        "compile": ["boolean"],
    }

    # Metadata routing: fit and score use groups (each group a task).
    __metadata_request__fit = {"groups": True}
    __metadata_request__score = {"groups": True}

    def __sklmeta_algorithm__(self):  # pragma: no cover - every estimator defines it
        """The algorithm (:mod:`sklmeta._core.algorithms`) the current parameters build."""
        raise NotImplementedError

    def _output_width(self, n_way):
        """Output width the network must have (None: any, e.g. an embedding)."""
        return n_way or 1

    def _default_skip(self):
        """The default network's skip path (:func:`sklmeta._core.nets.network`'s ``skip``)."""
        return None

    # ------------------------------------------------------------------ checks
    def _check_params(self):
        """Validate every parameter; return the splitter in use."""
        self._validate_params()
        check_hidden_layer_sizes(self.hidden_layer_sizes)
        device = torch.device(self.device) if isinstance(self.device, str) else self.device
        if device.type == "meta":
            raise ValueError("device='meta' holds no data; use 'cpu' or 'cuda'.")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device={self.device!r} but CUDA is not available to torch here; use "
                "device='cpu' (or install a CUDA build of torch on a machine with a GPU)."
            )
        splitter = self.task_splitter if self.task_splitter is not None else TaskSplitter()
        splitter.get_n_splits()  # validates its parameters (a named ValueError)
        if not is_classifier(self) and splitter.n_way is not None:
            raise ValueError(
                "task_splitter.n_way is for classification; a regressor's episodes count "
                "samples (k_shot, n_query) without n_way."
            )
        self.__sklmeta_algorithm__()  # checks the algorithm's own parameters
        if "lr" in self._skorch_params("optimizer"):
            raise ValueError(
                f"optimizer__lr={self.optimizer__lr!r}: the outer optimizer's learning rate "
                "is meta_lr; set meta_lr instead."
            )
        return splitter

    # ------------------------------------------------- skorch's prefixed params
    def _set_skorch_params(self, kwargs):
        """Store ``optimizer__*`` and ``compile__*`` keywords verbatim, as skorch does.

        Any other keyword is a TypeError naming it, as Python's own for an
        unknown keyword argument.
        """
        unknown = sorted(k for k in kwargs if not k.startswith(SKORCH_PREFIXES))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}.__init__() got unexpected keyword argument(s) "
                f"{', '.join(map(repr, unknown))}; besides its named parameters it takes "
                f"only skorch's prefixed ones ({', '.join(p + '<name>' for p in SKORCH_PREFIXES)})."
            )
        vars(self).update(kwargs)

    def _skorch_params(self, prefix):
        """``{name: value}`` of the stored ``<prefix>__<name>`` parameters."""
        start = prefix + "__"
        return {k[len(start):]: v for k, v in vars(self).items()
                if k.startswith(start) and not k.endswith("_")}

    def get_params(self, deep=True):
        """Get parameters, skorch's prefixed ones (``optimizer__*``, ``compile__*``) included.

        Parameters
        ----------
        deep : bool, default=True
            Also return the parameters of contained estimators (the splitter's).

        Returns
        -------
        params : dict
            Parameter names mapped to their values.
        """
        params = super().get_params(deep=deep)
        params.update({k: v for k, v in vars(self).items()
                       if k.startswith(SKORCH_PREFIXES) and not k.endswith("_")})
        return params

    def set_params(self, **params):
        """Set parameters; ``task_splitter__*`` also works with the default splitter.

        Parameters
        ----------
        **params : dict
            Estimator parameters, nested ``task_splitter__<name>`` ones, and
            skorch's prefixed ``optimizer__<name>`` and ``compile__<name>``.

        Returns
        -------
        self : object
            This estimator.
        """
        prefixed = {k: params.pop(k) for k in list(params) if k.startswith(SKORCH_PREFIXES)}
        if self.task_splitter is None and any(k.startswith("task_splitter__") for k in params):
            self.task_splitter = TaskSplitter()
        super().set_params(**params)
        vars(self).update(prefixed)
        return self

    def _check_xy(self, X, y, where):
        """Validate one dataset of a fit (``where``: None for the fit's own data)."""
        classifier = is_classifier(self)
        try:
            X, y = check_X_y(X, y, dtype=[np.float64, np.float32], y_numeric=not classifier,
                             estimator=self)
        except ValueError as e:
            if where is None:
                raise
            raise ValueError(f"{where}{e}") from e
        if classifier:
            try:
                unique_labels(y, "y")  # mixed types (None among strings): a named error
            except ValueError as e:
                raise ValueError(f"{where or ''}{e}") from None
            check_classification_targets(y)
        else:
            y = numeric_target(y, where or "")
        return X, y

    def _net(self, n_way, n_features, init_seed, valid_ds=None, epochs=0):
        algorithm = self.__sklmeta_algorithm__()
        learner = build_learner(self, n_way, n_features, init_seed)
        return build_net(
            learner, algorithm, task="classification" if is_classifier(self) else "regression",
            n_way=n_way, meta_lr=self.meta_lr, max_epochs=epochs,
            meta_batch_size=self.meta_batch_size, callbacks=self.callbacks,
            verbose=self.verbose, device=self.device, accelerator=self.accelerator,
            patience=self.n_iter_no_change, valid_ds=valid_ds,
            optimizer_params=self._skorch_params("optimizer"),
            compile_options=self._skorch_params("compile") if self.compile else None,
        )

    # --------------------------------------------------------------------- fit
    def fit(self, X, y=None, groups=None):
        """Meta-train on episodes drawn from ``(X, y)`` or from a list of tasks.

        The fitted attributes are set all at once when training ends: a fit that
        fails before then leaves the estimator as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or list of (X_i, y_i)
            One dataset, episodes drawn by ``task_splitter``; or a list of task
            datasets (one per site, group or source dataset), episodes drawn from
            each. Task datasets may have different widths: they are then
            standardised per task and zero-padded to the widest.
        y : array-like of shape (n_samples,), default=None
            Targets; None when ``X`` is a list of tasks.
        groups : array-like of shape (n_samples,), default=None
            Task membership: each episode is drawn from one group.

        Returns
        -------
        self : object
            The meta-trained estimator.
        """
        splitter = self._check_params()
        # Seeds drawn up front: the initial weights do not depend on whether a
        # validation split is drawn, so max_meta_steps=0 (or max_epochs=0) gives this very
        # network's random start.
        init_seed, split_seed, train_seed, valid_seed = check_random_state(
            self.random_state).randint(2**31, size=4)
        pools, unit = fit_pools(X, y, groups, self._check_xy)
        fitted = {"n_features_in_": max(p.X.shape[1] for p in pools)}
        # a DataFrame's column names; a task list's where every task has the same ones
        task_names = ([_get_feature_names(Xi) for Xi, _ in X] if unit == "tasks"
                      else [_get_feature_names(X)])
        if task_names[0] is not None and all(
                n is not None and np.array_equal(n, task_names[0]) for n in task_names):
            fitted["feature_names_in_"] = task_names[0]
        widths = {p.X.shape[1] for p in pools}
        mode = {"auto": "per-task" if len(widths) > 1 else "global", True: "per-task"}.get(
            self.standardize, self.standardize)
        if len(widths) > 1 and mode != "per-task":
            raise ValueError(
                f"The task datasets have different widths {sorted(widths)}; use "
                "standardize='auto' or 'per-task' to standardise each and zero-pad them to "
                "the widest."
            )
        scaling = Scaling.fit(mode, [p.X for p in pools], [p.y for p in pools],
                              regression=not is_classifier(self))
        fitted.update(standardize_=mode, x_mean_=scaling.x_mean, x_scale_=scaling.x_scale,
                      y_mean_=scaling.y_mean, y_scale_=scaling.y_scale)
        n_way = _n_way(self, pools, splitter)  # classes per episode
        if self.task_splitter is None:  # the default splitter fits its episodes to small data
            k_shot, n_query = fitted_episode_size(
                splitter.k_shot, splitter.n_query, [p.y for p in pools],
                [len(p.y) for p in pools], n_way)
            splitter = clone(splitter).set_params(k_shot=k_shot, n_query=n_query)
        if unit is not None:  # groups or task datasets too small for an episode: skipped
            keep = usable([p.y for p in pools], [len(p.y) for p in pools],
                          [p.name for p in pools], n_way=n_way, k_shot=splitter.k_shot,
                          n_query=splitter.n_query, what=unit)
            pools = [p for p, k in zip(pools, keep) if k]
        label_classes, head = None, n_way
        if n_way is not None and _label_mode(self, unit) == "fixed":
            label_classes = np.unique(np.concatenate([p.y for p in pools]))
            head = len(label_classes)  # one output per class of the data
        fitted.update(label_mode_=None if n_way is None else _label_mode(self, unit),
                      label_classes_=label_classes)

        valid_pools, split, why_not = None, None, "early_stopping=False"
        train_pools = pools
        epochs, train_episodes, valid_episodes = _budget(self, splitter)
        if self.early_stopping and epochs > 0:
            train_pools, valid_pools, split, why_not = hold_out(
                pools, unit, n_way=n_way, need=splitter.k_shot + splitter.n_query,
                fraction=self.validation_fraction, rng=np.random.RandomState(split_seed))
        if valid_pools is None and self.early_stopping is True and epochs > 0:
            raise ValueError(f"early_stopping=True but the data do not allow it: {why_not}.")
        if valid_pools is None and self.early_stopping == "auto" and epochs > 0:
            warnings.warn(
                f"Meta-training without early stopping: {why_not}. Meta-learning on few "
                "tasks can meta-overfit; compare with the adapted random start "
                "(max_meta_steps=0).",
                UserWarning, stacklevel=2,
            )
        width = fitted["n_features_in_"]
        train_ds = EpisodeDataset(
            episode_tensors(train_pools, n_way, splitter, width, scaling, label_classes),
            train_episodes, train_seed)
        valid_ds = None
        if valid_pools is not None:
            valid_ds = EpisodeDataset(
                episode_tensors(valid_pools, n_way, splitter, width, scaling, label_classes),
                valid_episodes, valid_seed, fixed=True)
        net, algorithm = self._net(head, width, init_seed, valid_ds, epochs)
        fitted.update(n_way_=head, validation_split_=split,
                      early_stopping_=valid_pools is not None)
        try:
            # Ctrl-C ends skorch's loop quietly, with the best weights so far restored.
            # torch's generator (a custom module's dropout masks) is seeded too.
            with compute_threads(), seeded_rng(train_seed, net.data_device):
                net.fit(train_ds, None)
        except MetaTrainingDiverged:
            # the last finite weights stay usable; they are the latest, not the best
            self._commit(net, algorithm, {**fitted, "best_epoch_": len(net.history),
                                          "initial_valid_score_": None,
                                          **_calibration(algorithm, net, None)})
            raise
        stopper = dict(net.callbacks_).get("random_start_early_stopping")
        done = stopper is not None and hasattr(stopper, "best_epoch_")
        fitted["best_epoch_"] = stopper.best_epoch_ if done else len(net.history)
        fitted["initial_valid_score_"] = getattr(stopper, "initial_score_", None)
        if done:
            _warn_divergence(self, stopper, fitted["best_epoch_"])
        fitted.update(_calibration(algorithm, net, valid_ds, len(valid_pools or ())))
        return self._commit(net, algorithm, fitted)

    def _commit(self, net, algorithm, fitted):
        """Replace every fitted attribute at once."""
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]:
            delattr(self, name)
        learner = net.module_
        fitted.update(net_=net, module_=learner.net, history_=net.history,
                      n_meta_steps_=int(sum(row.get("train_batch_count", 0)
                                            for row in net.history)),
                      inner_loop_=learner.inner_loop.name,
                      compile_seconds_=net.compile_seconds(),
                      **algorithm.fitted_attributes(learner))
        for name, value in fitted.items():
            setattr(self, name, value)
        return self

    # ------------------------------------------------------------ adapt, score
    def adapt(self, X, y):
        """Adapt to a new task from its support set; return a new fitted estimator.

        Runs the algorithm's adaptation from what was meta-learned: ``adapt_steps``
        (default ``inner_steps``) steps of the inner loop, or, for ProtoNet, the
        class prototypes. The meta-estimator is not changed.

        Parameters
        ----------
        X : array-like of shape (n_support, n_features)
            The support set's features.
        y : array-like of shape (n_support,)
            Its labels (classifier) or targets (regressor).

        Returns
        -------
        AdaptedClassifier or AdaptedRegressor
            A new estimator, fitted to the support set, that predicts.
        """
        from .adapted import AdaptedClassifier, AdaptedRegressor

        adapted = AdaptedClassifier if is_classifier(self) else AdaptedRegressor
        return adapted(meta_estimator=self).fit(X, y)

    def score(self, X, y=None, groups=None):
        """Mean few-shot score over the ``task_splitter``'s episodes of ``(X, y)``.

        Each episode's support set is adapted on and its query set scored
        (accuracy for classifiers, R^2 for regressors).

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
        from .adapted import AdaptedClassifier, AdaptedRegressor

        probe = (AdaptedClassifier if is_classifier(self) else AdaptedRegressor)(self)
        return float(np.mean(episode_scores(self, X, y, groups, probe=probe)))

    @property
    def predict(self):
        """Meta-estimators predict only after ``adapt``: this raises AttributeError."""
        raise AttributeError(_NO_PREDICT.format(name=type(self).__name__, method="predict"))

    @property
    def predict_proba(self):
        """Meta-estimators predict only after ``adapt``: this raises AttributeError."""
        raise AttributeError(_NO_PREDICT.format(name=type(self).__name__,
                                                method="predict_proba"))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class MetaClassifierBase(MetaEstimatorBase):
    """A meta-estimator whose adapted estimators classify."""

    _parameter_constraints = {
        **MetaEstimatorBase._parameter_constraints,
        "label_mode": [StrOptions({"auto", "shuffle", "fixed"})],
    }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier"
        tags.classifier_tags = ClassifierTags()
        return tags


class MetaRegressorBase(MetaEstimatorBase):
    """A meta-estimator whose adapted estimators regress."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor"
        tags.regressor_tags = RegressorTags()
        return tags


# The inner-loop parameters of MAML, Meta-SGD, ANIL and Reptile.
GRADIENT_CONSTRAINTS = {
    "inner_lr": [_POSITIVE],
    "inner_steps": [_positive_int()],
    "adapt_steps": [_positive_int(), None],
    "first_order": ["boolean"],
    "adapt_backtrack": ["boolean"],
}


class GradientBased:
    """The inner-loop options of the gradient-based meta-estimators."""

    def _inner_options(self):
        # read when adapting too, so checked here, not only at fit
        names = [k for k in GRADIENT_CONSTRAINTS if k in self._parameter_constraints]
        validate_parameter_constraints({k: self._parameter_constraints[k] for k in names},
                                       {k: getattr(self, k) for k in names},
                                       caller_name=type(self).__name__)
        steps = self.adapt_steps if self.adapt_steps is not None else self.inner_steps
        return dict(inner_lr=self.inner_lr, inner_steps=self.inner_steps, adapt_steps=steps,
                    adapt_backtrack=self.adapt_backtrack)


# ------------------------------------------------------------------ persistence
def build_learner(est, n_way, n_features, init_seed=0, device="cpu"):
    """What ``est`` meta-learns, as its fit builds it: the network and any step sizes.

    On ``device="meta"`` it is the architecture alone (shapes, no memory), what
    :func:`sklmeta.load` checks a file's weights against before building anything.
    """
    module = network(est.module, n_features, est._output_width(n_way), est.hidden_layer_sizes,
                     est.activation, init_seed, device=device, skip=est._default_skip())
    with torch.device(device):
        return est.__sklmeta_algorithm__().learner(module, n_features)


def fitted_state(est):
    """What :func:`sklmeta.save` stores of a fitted meta-estimator.

    Returns
    -------
    dict
        ``state_dict`` (the Learner's: the network and any step sizes),
        ``training`` (its mode), ``history`` (one dict per epoch) and
        ``attributes`` (the :data:`SAVED_ATTRIBUTES` it has).
    """
    learner = est.net_.module_
    return {
        "state_dict": learner.state_dict(), "training": learner.training,
        "history": list(est.history_),
        "attributes": {k: getattr(est, k) for k in SAVED_ATTRIBUTES if hasattr(est, k)},
    }


def restore_fitted(est, state_dict, history, attributes, training=False):
    """Rebuild an unfitted estimator as the fitted one that was saved.

    The net is the one ``fit`` builds, initialised, with the saved weights loaded,
    so ``adapt`` and ``score`` compute exactly what they computed before saving.

    Parameters
    ----------
    est : MetaEstimatorBase
        An unfitted estimator with the saved parameters.
    state_dict : dict of str to Tensor
        The Learner's state.
    history : list of dict
        One dict per epoch, as skorch's History holds them.
    attributes : dict
        Values of :data:`SAVED_ATTRIBUTES` (``feature_names_in_`` may be absent).
    training : bool, default=False
        The Learner's train/eval mode when it was saved.

    Returns
    -------
    MetaEstimatorBase
        ``est``, fitted.
    """
    est._check_params()
    net, algorithm = est._net(attributes["n_way_"], attributes["n_features_in_"], init_seed=0)
    net.initialize()
    net.module_.load_state_dict(state_dict)
    net.module_.train(training)
    net.history = History(history)
    return est._commit(net, algorithm, dict(attributes))
