"""The shared machinery of every meta-estimator: meta-training, adaptation, scoring.

:class:`_MetaEstimatorBase` validates the data, draws the episodes, holds out
meta-validation tasks, runs the skorch loop and adapts; a public estimator
(:mod:`sklmeta.estimators`) only declares its parameters and which algorithm
(:mod:`sklmeta._algorithms`) they configure.
"""

import copy
import math
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_is_fitted,
    check_X_y,
    column_or_1d,
    validate_data,
)
from skorch.callbacks import PassthroughScoring, ProgressBar
from skorch.helper import predefined_split
from skorch.history import History
from skorch.utils import noop

from ._functional import EpisodeLoss, predict_many
from ._training import (
    EpisodeDataset,
    EpisodeLoader,
    EpisodePools,
    MetaNet,
    MetaTrainingDiverged,
    RandomStartEarlyStopping,
    accelerated_net_class,
)
from ._validation import check_hidden_layer_sizes, check_int, check_positive, unique_labels
from .tasks import TaskSplitter, _EpisodeSampler, _label

_ACTIVATIONS = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "gelu": torch.nn.GELU}
_ADAPT_CHUNK = 512  # episodes per vmap call when adapting many at once


def store_params(estimator, params):
    """The body of every ``__init__``: store each keyword argument verbatim.

    Called as ``store_params(self, locals())`` first thing in ``__init__``, so
    the signature lists the parameters and scikit-learn's rule (parameters
    stored as given, nothing else) holds by construction.
    """
    for name, value in params.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)

def _is_task_list(X, y):
    """``fit(tasks)``: a list of ``(X_i, y_i)`` pairs rather than one ``(X, y)``."""
    if y is not None or not isinstance(X, (list, tuple)):
        return False
    return len(X) == 0 or all(
        isinstance(t, (list, tuple)) and len(t) == 2 and np.ndim(t[0]) == 2 for t in X
    )


def make_mlp(n_features, hidden_layer_sizes, n_outputs, activation="relu", generator=None):
    """The default network: ``Linear -> activation`` per hidden layer, then ``Linear``.

    With a ``torch.Generator`` the weights are drawn from it, exactly as
    ``torch.nn.Linear`` draws them (uniform in +-1/sqrt(fan_in)), without touching
    torch's global random state: fits in concurrent threads stay reproducible.
    """
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}; got {activation!r}.")
    layers, width = [], n_features
    for h in hidden_layer_sizes:
        layers += [torch.nn.Linear(width, h, device="meta"), _ACTIVATIONS[activation]()]
        width = h
    layers.append(torch.nn.Linear(width, n_outputs, device="meta"))
    module = torch.nn.Sequential(*layers).to_empty(device="cpu")
    with torch.no_grad():
        for layer in module:
            if isinstance(layer, torch.nn.Linear):
                bound = 1 / math.sqrt(layer.in_features) if layer.in_features > 0 else 0.0
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.uniform_(-bound, bound, generator=generator)
    return module


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _embed(X, width, mean, scale, device):
    """Standardise (when ``mean`` is given) and zero-pad ``X`` to ``width`` columns.

    Standardised in float64, then checked to fit float32 (the precision of the
    networks), so huge raw values do not overflow silently into inf or NaN.
    """
    X = np.asarray(X, dtype=np.float64)
    if mean is not None:
        X = (X - mean) / scale
    if X.size and np.abs(X).max() > _FLOAT32_MAX:
        raise ValueError(
            f"X has values beyond float32's range (|x| > {_FLOAT32_MAX:.3g}), the precision "
            "sklmeta computes in; rescale X or use standardize=True."
        )
    X = X.astype(np.float32)
    if X.shape[1] < width:
        X = np.pad(X, ((0, 0), (0, width - X.shape[1])))
    return torch.as_tensor(X, device=device)


def _standardiser(X):
    """Column means and standard deviations (1 for a constant column), in float64."""
    X = np.asarray(X, dtype=np.float64)
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale == 0] = 1.0
    return mean, scale


def _numeric_target(y, where=""):
    """A regressor's target as float64, or a ValueError (not torch's TypeError) naming it."""
    try:
        return np.asarray(y, dtype=np.float64)
    except ValueError as e:
        raise ValueError(f"{where}y of a regressor must be numeric; got {y.dtype}: {e}") from None


class _MetaEstimatorBase(BaseEstimator):
    """Shared meta-training, adaptation and scoring.

    Subclasses set ``_task``, ``_adapted_class`` and ``_algorithm`` (which reads
    the algorithm's own parameters and returns a strategy from
    :mod:`sklmeta._algorithms`).
    """

    _task = None  # "classification" or "regression"
    _adapted_class = None
    # fit and score draw each episode from one group: with metadata routing on,
    # groups reach them (as they reach a group splitter's split).
    __metadata_request__fit = {"groups": True}
    __metadata_request__score = {"groups": True}
    _limits_classes = True  # adapt takes at most n_way classes (the head's outputs)

    def _algorithm(self):  # pragma: no cover - every public estimator defines it
        raise NotImplementedError

    def _fitted_extras(self, algorithm, learner):
        """Set algorithm-specific fitted attributes (Meta-SGD's ``inner_lrs_``)."""

    def _n_outputs(self, n_way):
        """Output width the network must have (None: any, e.g. an embedding)."""
        return n_way or 1

    # ------------------------------------------------------------------ checks
    def _check_params(self):
        check_hidden_layer_sizes(self.hidden_layer_sizes)
        check_int(self.meta_batch_size, "meta_batch_size", 1)
        check_int(self.max_epochs, "max_epochs", 0)
        check_int(self.n_iter_no_change, "n_iter_no_change", 1)
        check_positive(self.meta_lr, "meta_lr")
        self._algorithm()  # checks the algorithm's own parameters
        if not 0 < self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be in (0, 1); got {self.validation_fraction!r}."
            )
        if self.early_stopping not in ("auto", True, False):
            raise ValueError(
                f"early_stopping must be 'auto', True or False; got {self.early_stopping!r}."
            )
        if self.standardize not in ("auto", True, False):
            raise ValueError(
                f"standardize must be 'auto', True or False; got {self.standardize!r}."
            )
        if self.accelerator is not None and not hasattr(self.accelerator, "backward"):
            raise ValueError(
                "accelerator must be an accelerate.Accelerator; got "
                f"{type(self.accelerator).__name__}."
            )
        if str(self.device).startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(
                f"device={self.device!r} but CUDA is not available to torch here; use "
                "device='cpu' (or install a CUDA build of torch on a machine with a GPU)."
            )
        splitter = self.task_splitter if self.task_splitter is not None else TaskSplitter()
        if not isinstance(splitter, TaskSplitter):
            raise ValueError(
                f"task_splitter must be a sklmeta.TaskSplitter; got {type(splitter).__name__}."
            )
        splitter._check_params()
        if self._task == "regression" and splitter.n_way is not None:
            raise ValueError(
                "task_splitter.n_way is for classification; a regressor's episodes count "
                "samples (k_shot, n_query) without n_way."
            )
        return splitter

    def _check_xy(self, X, y, *, where="", reset=False):
        """Validate one dataset; with ``reset`` also record n_features_in_ and names."""
        kwargs = dict(dtype=[np.float64, np.float32], y_numeric=self._task == "regression")
        if reset:
            X, y = validate_data(self, X, y, **kwargs)
        else:
            try:
                X, y = check_X_y(X, y, **kwargs)
            except ValueError as e:
                raise ValueError(f"{where}{e}") from e
        if self._task == "classification":
            check_classification_targets(y)
        else:
            y = _numeric_target(y, where)
        return X, y

    def _pools(self, X, y, groups):
        """The task pools of a fit: ``[(X_i, y_i, name)]``, their unit and their keys.

        The unit is "tasks" (a task list; keys are task indices), "groups" (keys are
        the group labels) or None (a single dataset).
        """
        if _is_task_list(X, y):
            if len(X) == 0:
                raise ValueError("fit(tasks) got an empty task list; give at least one task.")
            if groups is not None:
                raise ValueError("groups go with fit(X, y); a task list is already split.")
            pools = [
                (*self._check_xy(Xi, yi, where=f"task {i}: "), f"task {i} ") for i, (Xi, yi) in
                enumerate(X)
            ]
            self.n_features_in_ = max(p[0].shape[1] for p in pools)
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            return pools, "tasks", list(range(len(pools)))
        if y is None:
            raise ValueError(
                f"{type(self).__name__}.fit needs (X, y) or a list of (X_i, y_i) task datasets."
            )
        X, y = self._check_xy(X, y, reset=True)
        if groups is None:
            return [(X, y, "")], None, [None]
        if np.ndim(groups) > 1 and np.shape(groups)[1:] != (1,):
            raise ValueError(
                f"groups should be a 1d array, got an array of shape {np.shape(groups)} instead.")
        groups = column_or_1d(groups)
        if len(groups) != len(y):
            raise ValueError(f"X has {len(y)} samples but groups has {len(groups)}.")
        keys, inverse = unique_labels(groups, "groups")
        order = np.argsort(inverse, kind="stable")  # one sort, not a mask per group
        rows = np.split(order, np.cumsum(np.bincount(inverse))[:-1])
        pools = [(X[r], y[r], f"group {_label(g)} ") for g, r in zip(keys, rows)]
        return pools, "groups", [k.item() if isinstance(k, np.generic) else k for k in keys]

    def _validation_split(self, pools, unit, keys, n_way, splitter, rng):
        """Split pools into meta-training and meta-validation pools.

        Held out: whole tasks (groups, task datasets) when there are several;
        otherwise whole classes (classification); otherwise rows (regression).
        Returns ``(train_pools, valid_pools, split, reason)``: ``split`` describes
        what was held out (the ``validation_split_`` attribute); ``valid_pools`` is
        None when the data do not allow it, and ``reason`` says why.
        """
        frac = self.validation_fraction
        if len(pools) >= 2:
            n_val = max(1, int(round(frac * len(pools))))
            if len(pools) - n_val < 1:
                return pools, None, None, f"{len(pools)} {unit} are too few to hold some out"
            order = rng.permutation(len(pools))
            split = {"unit": unit, "held_out": sorted(keys[i] for i in order[:n_val]),
                     "n_kept": len(pools) - n_val}
            return [pools[i] for i in order[n_val:]], [pools[i] for i in order[:n_val]], split, ""
        X, y, name = pools[0]
        if self._task == "classification":
            classes = np.unique(y)
            n_val = max(n_way, int(round(frac * len(classes))))
            if len(classes) - n_val < n_way:
                return pools, None, None, (
                    f"{len(classes)} classes are too few to hold out n_way={n_way} for "
                    f"meta-validation and keep n_way for meta-training (needs {2 * n_way})"
                )
            val_classes = np.sort(rng.permutation(classes)[:n_val])
            held = np.isin(y, val_classes)
            split = {"unit": "classes", "held_out": val_classes.tolist(),
                     "n_kept": len(classes) - n_val}
        else:
            need = splitter.k_shot + splitter.n_query
            n_val = int(round(frac * len(y)))
            if n_val < need or len(y) - n_val < need:
                return pools, None, None, f"{len(y)} rows are too few to hold some out"
            held = np.zeros(len(y), dtype=bool)
            held[rng.permutation(len(y))[:n_val]] = True
            split = {"unit": "rows", "held_out": np.flatnonzero(held).tolist(),
                     "n_kept": len(y) - n_val}
        return [(X[~held], y[~held], name)], [(X[held], y[held], name)], split, ""

    def _episode_pools(self, pools, n_way, splitter):
        samplers, tensors, targets = [], [], []
        for X, y, name in pools:
            samplers.append(_EpisodeSampler(
                len(y), y if n_way is not None else None, n_way=n_way,
                k_shot=splitter.k_shot, n_query=splitter.n_query, where=name,
            ))
            mean, scale = _standardiser(X) if self.standardize_ else (None, None)
            tensors.append(_embed(X, self.n_features_in_, mean, scale, "cpu"))
            targets.append(y)
        return EpisodePools(tensors, targets, samplers, self._task)

    def _n_way(self, pools, splitter):
        if self._task == "regression":
            return None
        if splitter.n_way is not None:
            return splitter.n_way
        counts = {len(np.unique(y)) for _, y, _ in pools}
        if len(counts) > 1:
            raise ValueError(
                f"The tasks have different numbers of classes ({sorted(counts)}); set "
                "task_splitter.n_way to the number of classes per episode."
            )
        n_way = counts.pop()
        if n_way < 2:
            (X, y, name), = pools[:1]
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes per task; "
                f"{name or 'y '}has only 1 class ({_label(y[0])})."
            )
        return n_way

    def _build_module(self, n_outputs, seed):
        """The network: the default MLP, or a copy of ``module`` (checked)."""
        if self.module is None:
            module = make_mlp(self.n_features_in_, self.hidden_layer_sizes, n_outputs,
                              self.activation, torch.Generator().manual_seed(int(seed)))
        else:
            module = copy.deepcopy(self.module)
        with torch.no_grad():
            out = module(torch.zeros(2, self.n_features_in_))
        expected = (2, n_outputs) if n_outputs is not None else (2, "any width")
        if out.dim() != 2 or out.shape[0] != 2 or (
                n_outputs is not None and out.shape[1] != n_outputs):
            raise ValueError(
                f"module maps 2 samples of {self.n_features_in_} features to shape "
                f"{tuple(out.shape)}; expected {expected}."
            )
        return module

    def _make_net(self, n_way, init_seed, valid_ds=None):
        """The skorch net of a fit, around a fresh Learner; and the algorithm.

        ``fit`` trains it; :meth:`_restore` (:func:`sklmeta.load`) loads saved
        weights into it. ``valid_ds`` (meta-validation episodes) adds early stopping.
        """
        algorithm = self._algorithm()
        learner = algorithm.learner(self._build_module(self._n_outputs(n_way), init_seed),
                                    self.n_features_in_)

        # The progress bar first: a callback that stops training (early stopping)
        # raises at epoch end, and a bar not yet closed would leak into the next fit.
        callbacks = [("progress_bar", ProgressBar())] if self.verbose else []
        if valid_ds is not None and self._task == "classification":
            callbacks.append(("valid_acc", PassthroughScoring(
                "valid_acc", lower_is_better=False, on_train=False)))
        callbacks += list(copy.deepcopy(self.callbacks or []))
        if valid_ds is not None:
            classification = self._task == "classification"
            callbacks.append(("random_start_early_stopping", RandomStartEarlyStopping(
                monitor="valid_acc" if classification else "valid_loss",
                lower_is_better=not classification, patience=self.n_iter_no_change,
                threshold=0.0, threshold_mode="abs", load_best=True,
                sink=print if self.verbose else noop,
            )))

        if self.accelerator is None:
            net_class, place = MetaNet, dict(device=self.device)
            device = torch.device(self.device)
        else:  # accelerate places the parameters; device is not used
            net_class = accelerated_net_class()
            place = dict(device=None, accelerator=self.accelerator)
            device = self.accelerator.device
        net = net_class(
            learner,
            criterion=EpisodeLoss, criterion__task=self._task, criterion__n_classes=n_way,
            optimizer=algorithm.optimizer, lr=self.meta_lr, max_epochs=self.max_epochs,
            # one fused kernel for all parameters: ~6x cheaper than Adam's default on CPU
            optimizer__fused=device.type in ("cpu", "cuda"),
            batch_size=self.meta_batch_size,
            iterator_train=EpisodeLoader, iterator_valid=EpisodeLoader,
            train_split=predefined_split(valid_ds) if valid_ds is not None else None,
            callbacks=callbacks, verbose=self.verbose, algorithm=algorithm, **place,
        )
        return net, algorithm

    # --------------------------------------------------------------------- fit
    def fit(self, X, y=None, groups=None):
        """Meta-train on episodes drawn from ``(X, y)`` or from a list of tasks.

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
        self
        """
        splitter = self._check_params()
        # Seeds drawn up front: the initial weights do not depend on whether a
        # validation split is drawn, so max_epochs=0 gives this very network's random start.
        init_seed, split_seed, train_seed, valid_seed = check_random_state(
            self.random_state).randint(2**31, size=4)
        pools, unit, keys = self._pools(X, y, groups)
        widths = {p[0].shape[1] for p in pools}
        if self.standardize == "auto":
            self.standardize_ = len(widths) > 1
        else:
            self.standardize_ = bool(self.standardize)
        if len(widths) > 1 and not self.standardize_:
            raise ValueError(
                f"The task datasets have different widths {sorted(widths)}; use "
                "standardize='auto' or True to standardise and zero-pad them to the widest."
            )
        n_way = self._n_way(pools, splitter)
        self.n_way_ = n_way

        valid_pools, self.validation_split_, why_not = None, None, "early_stopping=False"
        if self.early_stopping and self.max_epochs > 0:
            train_pools, valid_pools, self.validation_split_, why_not = self._validation_split(
                pools, unit, keys, n_way, splitter, np.random.RandomState(split_seed))
        else:
            train_pools = pools
        if valid_pools is None and self.early_stopping is True and self.max_epochs > 0:
            raise ValueError(f"early_stopping=True but the data do not allow it: {why_not}.")
        if valid_pools is None and self.early_stopping == "auto" and self.max_epochs > 0:
            warnings.warn(
                f"Meta-training without early stopping: {why_not}. Meta-learning on few "
                "tasks can meta-overfit; compare with the adapted random start (max_epochs=0).",
                UserWarning, stacklevel=2,
            )
        self.early_stopping_ = valid_pools is not None

        train_ds = EpisodeDataset(
            self._episode_pools(train_pools, n_way, splitter), splitter.n_tasks, train_seed
        )
        valid_ds = None
        if valid_pools is not None:
            valid_ds = EpisodeDataset(
                self._episode_pools(valid_pools, n_way, splitter), splitter.n_tasks,
                valid_seed, fixed=True,
            )
        self.net_, algorithm = self._make_net(n_way, init_seed, valid_ds)
        try:
            # Ctrl-C ends skorch's loop quietly, with the best weights so far restored.
            self.net_.fit(train_ds, None)
        except MetaTrainingDiverged:
            self._set_fitted(algorithm)  # the last finite weights stay usable
            self.best_epoch_ = len(self.history_)  # they are the latest, not the best
            raise
        return self._set_fitted(algorithm)

    def _set_fitted(self, algorithm):
        """The fitted attributes, from the trained net."""
        self._set_learned(algorithm)
        stopper = dict(self.net_.callbacks_).get("random_start_early_stopping")
        done = stopper is not None and hasattr(stopper, "best_epoch_")
        self.best_epoch_ = stopper.best_epoch_ if done else len(self.history_)
        self.initial_valid_score_ = getattr(stopper, "initial_score_", None)
        return self

    def _set_learned(self, algorithm):
        """The fitted attributes read off the net: its Learner and its history."""
        self.module_ = self.net_.module_.net
        self._predict_module_ = algorithm.predict_module(self.net_.module_)
        self._fitted_extras(algorithm, self.net_.module_)
        self.history_ = self.net_.history

    # What :func:`sklmeta.save` stores besides the Learner's weights and the history;
    # ``module_``, ``inner_lrs_`` and the rest are read off the rebuilt net.
    _saved_attributes = ("n_way_", "n_features_in_", "feature_names_in_", "standardize_",
                         "early_stopping_", "validation_split_", "best_epoch_",
                         "initial_valid_score_")

    def _restore(self, state_dict, history, attributes, training=False):
        """Rebuild this (unfitted) estimator as the fitted one that was saved.

        Used by :func:`sklmeta.load`: the net is the one ``fit`` builds
        (:meth:`_make_net`), initialised, with the saved weights loaded, so
        ``adapt`` and ``score`` compute exactly what they computed before saving.

        Parameters
        ----------
        state_dict : dict of str to Tensor
            The Learner's state: the network and, for Meta-SGD, the step sizes.
        history : list of dict
            One dict per epoch, as skorch's History holds them.
        attributes : dict
            Values of ``_saved_attributes`` (``feature_names_in_`` may be absent).
        training : bool, default=False
            The Learner's train/eval mode when it was saved.

        Returns
        -------
        self
        """
        self._check_params()
        for name in self._saved_attributes:
            if name in attributes:
                setattr(self, name, attributes[name])
        self.net_, algorithm = self._make_net(self.n_way_, init_seed=0)
        self.net_.initialize()
        self.net_.module_.load_state_dict(state_dict)
        self.net_.module_.train(training)
        self.net_.history = History(history)
        self._set_learned(algorithm)
        return self

    # ------------------------------------------------------------------- adapt
    def adapt(self, X, y):
        """Adapt to a new task from its support set; return a new fitted estimator.

        Runs the algorithm's adaptation from what was meta-learned: ``adapt_steps``
        (default ``inner_steps``) steps of the inner loop, or, for ProtoNet, the
        class prototypes. The meta-estimator is not changed.

        Parameters
        ----------
        X : array-like of shape (n_support, n_features)
        y : array-like of shape (n_support,)

        Returns
        -------
        AdaptedClassifier or AdaptedRegressor
        """
        return self._adapted_class(meta_estimator=self).fit(X, y)

    def _adapt_groups(self, xs, ys, n_classes, keys=None):
        """Adapt prepared support tensors in vmapped chunks of alike episodes.

        Episodes that share ``keys[i]`` (default: support shape and class count)
        are adapted together. Yields ``(indices, stacked adapted parameters)``.
        """
        algorithm, learner = self._algorithm(), self.net_.module_
        groups = {}
        for i, (x, c) in enumerate(zip(xs, n_classes)):
            key = keys[i] if keys is not None else (tuple(x.shape), c)
            groups.setdefault(key, []).append(i)
        for idx in groups.values():
            loss = EpisodeLoss(self._task, n_classes[idx[0]])
            for start in range(0, len(idx), _ADAPT_CHUNK):
                chunk = idx[start : start + _ADAPT_CHUNK]
                yield chunk, algorithm.adapt(
                    learner, torch.stack([xs[i] for i in chunk]),
                    torch.stack([ys[i] for i in chunk]), loss=loss,
                )

    def _adapt_prepared(self, xs, ys, n_classes):
        """Adapted parameters (one dict each) for prepared support tensors."""
        out = [None] * len(xs)
        for chunk, stacked in self._adapt_groups(xs, ys, n_classes):
            for j, i in enumerate(chunk):
                out[i] = {k: v[j].clone() for k, v in stacked.items()}
        return out

    def _score_batched(self, X, y, episodes):
        """Accuracy or R^2 of every episode, as ``adapt(...).score(...)`` gives it.

        The data are validated once, each episode is encoded with numpy only, and
        adaptation and prediction run stacked: no estimator object per episode.
        """
        probe = self._adapted_class(meta_estimator=self)
        X, y = probe._validate(X, y)
        xs, ys, xq, yq, n_classes = [], [], [], [], []
        for s, q in episodes:
            x_t, y_t, c = probe._encode(X[s], y[s])
            xs.append(x_t)
            ys.append(y_t)
            xq.append(_embed(X[q], probe.n_features_padded_, probe.mean_, probe.scale_,
                             x_t.device))
            if c is not None:
                probe._check_known_labels(y[q])
                yq.append(np.searchsorted(probe.classes_, y[q]))
            else:
                yq.append(np.asarray(y[q], dtype=np.float64))
            n_classes.append(c)
        keys = [(tuple(a.shape), tuple(b.shape), c) for a, b, c in zip(xs, xq, n_classes)]
        scores = np.empty(len(episodes))
        for chunk, stacked in self._adapt_groups(xs, ys, n_classes, keys):
            out = predict_many(self._predict_module_, stacked,
                               torch.stack([xq[i] for i in chunk]))
            truth = np.stack([yq[i] for i in chunk])
            if n_classes[chunk[0]] is not None:
                pred = out[..., : n_classes[chunk[0]]].argmax(-1).cpu().numpy()
                scores[chunk] = (pred == truth).mean(axis=1)
            else:
                pred = out[..., 0].cpu().numpy().astype(np.float64)
                ss_res = ((truth - pred) ** 2).sum(axis=1)
                ss_tot = ((truth - truth.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    r2 = 1 - ss_res / ss_tot
                # scikit-learn's r2_score for a constant target: 1 if perfect, else 0
                scores[chunk] = np.where(ss_tot == 0, np.where(ss_res == 0, 1.0, 0.0), r2)
        return scores

    def _adapt_episodes(self, X, y, episodes):
        """One adapted estimator per ``(support, query)`` episode, adapted in batches."""
        check_is_fitted(self)
        adapted = [self._adapted_class(meta_estimator=self) for _ in episodes]
        prepared = [
            a._prepare(_safe_indexing(X, s), _safe_indexing(y, s))
            for a, (s, _) in zip(adapted, episodes)
        ]
        params = self._adapt_prepared(*zip(*prepared))
        for a, p in zip(adapted, params):
            a.params_ = p
        return adapted

    # ------------------------------------------------------------------- score
    def score(self, X, y=None, groups=None):
        """Mean few-shot score over the ``task_splitter``'s episodes of ``(X, y)``.

        Each episode's support set is adapted on and its query set scored
        (accuracy for classifiers, R^2 for regressors). ``X`` may also be a list
        of ``(X_i, y_i)`` tasks, as in ``fit``.

        Returns
        -------
        float
        """
        return float(np.mean(self._episode_scores(X, y, groups)))

    def _scoring_splitter(self, y):
        """The task_splitter as ``score`` uses it.

        Classifier episodes always draw classes: with ``n_way=None``, as many as
        the data have, up to ``n_way_``. An unseeded splitter takes the
        estimator's ``random_state``, so a seeded estimator scores reproducibly.
        """
        splitter = clone(self.task_splitter if self.task_splitter is not None else TaskSplitter())
        if splitter.random_state is None:
            splitter.set_params(random_state=self.random_state)
        if self._task == "classification" and splitter.n_way is None:
            n_classes = len(unique_labels(column_or_1d(y), "y")[0])
            if n_classes < 2:
                raise ValueError(f"{type(self).__name__}.score draws episodes of at least 2 "
                                 f"classes; y has {n_classes}.")
            splitter.set_params(n_way=min(self.n_way_, n_classes))
        return splitter

    def _episode_scores(self, X, y=None, groups=None, episodes=None):
        check_is_fitted(self)
        if _is_task_list(X, y):
            if not X:
                raise ValueError("score got an empty task list.")
            # Episodes are drawn across tasks as groups; each task is adapted at its own width.
            offsets = np.cumsum([0] + [len(t[1]) for t in X])
            y_all = np.concatenate([column_or_1d(t[1]) for t in X])
            groups = np.repeat(np.arange(len(X)), np.diff(offsets))
            per_task = [[] for _ in X]
            splitter = self._scoring_splitter(y_all)
            for s, q in splitter.split(np.empty((len(y_all), 0)), y_all, groups):
                t = np.searchsorted(offsets, s[0], side="right") - 1
                per_task[t].append((s - offsets[t], q - offsets[t]))
            return np.concatenate([
                self._episode_scores(Xt, yt, episodes=eps)
                for (Xt, yt), eps in zip(X, per_task) if eps
            ])
        if episodes is None:
            if y is None:
                raise ValueError(f"{type(self).__name__}.score needs (X, y) or a list of tasks.")
            episodes = list(self._scoring_splitter(y).split(X, y, groups))
        return self._score_batched(X, y, episodes)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


