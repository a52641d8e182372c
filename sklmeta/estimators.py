"""MAML estimators with the scikit-learn API.

A meta-estimator (:class:`MAMLClassifier`, :class:`MAMLRegressor`) is *fitted* by
meta-training on many tasks; it does not predict by itself. ``adapt(X, y)`` runs
the inner loop on a new task's support set and returns a new, fitted
:class:`AdaptedClassifier` / :class:`AdaptedRegressor` that predicts; the
meta-estimator is never changed by it.
"""

import copy
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.metrics import accuracy_score
from sklearn.utils import ClassifierTags, RegressorTags, _safe_indexing, check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_feature_names,
    _check_n_features,
    check_is_fitted,
    check_X_y,
    column_or_1d,
    validate_data,
)
from skorch.callbacks import PassthroughScoring, ProgressBar
from skorch.helper import predefined_split
from skorch.utils import noop
from torch.func import functional_call

from ._functional import EpisodeLoss, adapt_many, predict_many
from ._training import (
    EpisodeDataset,
    EpisodeLoader,
    EpisodePools,
    MetaNet,
    RandomStartEarlyStopping,
)
from ._validation import check_hidden_layer_sizes, check_int, check_positive
from .tasks import TaskSplitter, _EpisodeSampler, _label

__all__ = ["MAMLClassifier", "MAMLRegressor", "AdaptedClassifier", "AdaptedRegressor", "adapt"]

_ACTIVATIONS = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "gelu": torch.nn.GELU}
_ADAPT_CHUNK = 512  # episodes per vmap call when adapting many at once


def _is_task_list(X, y):
    """``fit(tasks)``: a list of ``(X_i, y_i)`` pairs rather than one ``(X, y)``."""
    if y is not None or not isinstance(X, (list, tuple)):
        return False
    return len(X) == 0 or all(
        isinstance(t, (list, tuple)) and len(t) == 2 and np.ndim(t[0]) == 2 for t in X
    )


def make_mlp(n_features, hidden_layer_sizes, n_outputs, activation="relu"):
    """The default network: ``Linear -> activation`` per hidden layer, then ``Linear``."""
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}; got {activation!r}.")
    layers, width = [], n_features
    for h in hidden_layer_sizes:
        layers += [torch.nn.Linear(width, h), _ACTIVATIONS[activation]()]
        width = h
    layers.append(torch.nn.Linear(width, n_outputs))
    return torch.nn.Sequential(*layers)


def _embed(X, width, mean, scale, device):
    """Standardise (when ``mean`` is given) and zero-pad ``X`` to ``width`` columns."""
    X = np.asarray(X, dtype=np.float32)
    if mean is not None:
        X = (X - mean) / scale
    if X.shape[1] < width:
        X = np.pad(X, ((0, 0), (0, width - X.shape[1])))
    return torch.as_tensor(X, device=device)


def _standardiser(X):
    mean = X.mean(axis=0).astype(np.float32)
    scale = X.std(axis=0).astype(np.float32)
    scale[scale == 0] = 1.0
    return mean, scale


class _MetaEstimatorBase(BaseEstimator):
    """Shared meta-training, adaptation and scoring; subclasses set ``_task``."""

    _task = None  # "classification" or "regression"
    _adapted_class = None

    # ------------------------------------------------------------------ checks
    def _check_params(self):
        check_hidden_layer_sizes(self.hidden_layer_sizes)
        check_int(self.inner_steps, "inner_steps", 1)
        check_int(self.meta_batch_size, "meta_batch_size", 1)
        check_int(self.max_epochs, "max_epochs", 0)
        check_int(self.n_iter_no_change, "n_iter_no_change", 1)
        if self.adapt_steps is not None:
            check_int(self.adapt_steps, "adapt_steps", 1)
        check_positive(self.inner_lr, "inner_lr")
        check_positive(self.meta_lr, "meta_lr")
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
        groups = column_or_1d(groups)
        if len(groups) != len(y):
            raise ValueError(f"X has {len(y)} samples but groups has {len(groups)}.")
        keys, inverse = np.unique(groups, return_inverse=True)
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
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if self.module is None:
                module = make_mlp(
                    self.n_features_in_, self.hidden_layer_sizes, n_outputs, self.activation
                )
            else:
                module = copy.deepcopy(self.module)
        with torch.no_grad():
            out = module(torch.zeros(2, self.n_features_in_))
        if tuple(out.shape) != (2, n_outputs):
            raise ValueError(
                f"module maps 2 samples of {self.n_features_in_} features to shape "
                f"{tuple(out.shape)}; expected (2, {n_outputs})."
            )
        return module

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
        module = self._build_module(n_way or 1, init_seed)

        callbacks = []
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
        if self.verbose:
            callbacks.append(("progress_bar", ProgressBar()))

        self.net_ = MetaNet(
            module,
            criterion=EpisodeLoss, criterion__task=self._task, criterion__n_classes=n_way,
            optimizer=torch.optim.Adam, lr=self.meta_lr, max_epochs=self.max_epochs,
            # one fused kernel for all parameters: ~6x cheaper than Adam's default on CPU
            optimizer__fused=torch.device(self.device).type in ("cpu", "cuda"),
            batch_size=self.meta_batch_size,
            iterator_train=EpisodeLoader, iterator_valid=EpisodeLoader,
            train_split=predefined_split(valid_ds) if valid_ds is not None else None,
            callbacks=callbacks, verbose=self.verbose, device=self.device,
            inner_lr=self.inner_lr, inner_steps=self.inner_steps,
            adapt_steps=self._adapt_steps(), first_order=self.first_order,
        )
        self.net_.fit(train_ds, None)
        self.module_ = self.net_.module_
        self.history_ = self.net_.history
        stopper = dict(self.net_.callbacks_).get("random_start_early_stopping")
        self.best_epoch_ = stopper.best_epoch_ if stopper is not None else len(self.history_)
        self.initial_valid_score_ = stopper.initial_score_ if stopper is not None else None
        return self

    # ------------------------------------------------------------------- adapt
    def adapt(self, X, y):
        """Adapt to a new task from its support set; return a new fitted estimator.

        Runs ``adapt_steps`` (default ``inner_steps``) steps of the inner loop from
        the meta-learned initialisation. The meta-estimator is not changed.

        Parameters
        ----------
        X : array-like of shape (n_support, n_features)
        y : array-like of shape (n_support,)

        Returns
        -------
        AdaptedClassifier or AdaptedRegressor
        """
        return self._adapted_class(meta_estimator=self).fit(X, y)

    def _adapt_steps(self):
        """Inner steps at adaptation, read when adapting (like ``n_jobs`` at predict time)."""
        steps = self.adapt_steps if self.adapt_steps is not None else self.inner_steps
        return check_int(steps, "adapt_steps", 1)

    def _adapt_groups(self, xs, ys, n_classes, keys=None):
        """Adapt prepared support tensors in vmapped chunks of alike episodes.

        Episodes that share ``keys[i]`` (default: support shape and class count)
        are adapted together. Yields ``(indices, stacked adapted parameters)``.
        """
        params = {k: v.detach() for k, v in self.module_.named_parameters()}
        groups = {}
        for i, (x, c) in enumerate(zip(xs, n_classes)):
            key = keys[i] if keys is not None else (tuple(x.shape), c)
            groups.setdefault(key, []).append(i)
        for idx in groups.values():
            loss = EpisodeLoss(self._task, n_classes[idx[0]])
            for start in range(0, len(idx), _ADAPT_CHUNK):
                chunk = idx[start : start + _ADAPT_CHUNK]
                yield chunk, adapt_many(
                    self.module_, params,
                    torch.stack([xs[i] for i in chunk]), torch.stack([ys[i] for i in chunk]),
                    loss=loss, lr=self.inner_lr, steps=self._adapt_steps(),
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
            out = predict_many(self.module_, stacked, torch.stack([xq[i] for i in chunk]))
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
            splitter.set_params(n_way=min(self.n_way_, len(np.unique(column_or_1d(y)))))
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
        return X, y

    def _encode(self, X, y):
        """Set the support set's fitted attributes; return its tensors and class count.

        ``X, y`` are validated arrays (:meth:`_validate`).
        """
        meta = self.meta_estimator
        if meta.standardize_:
            if len(y) < 2:
                raise ValueError(
                    "A support set with a single sample cannot be standardised (the "
                    "meta-estimator standardises each task); give at least 2 samples."
                )
            self.mean_, self.scale_ = _standardiser(X)
        else:
            self.mean_ = self.scale_ = None
        # What predict needs is kept here, so a later refit of the meta-estimator
        # (another width, another architecture) leaves this estimator intact.
        self.module_, self.n_features_padded_ = meta.module_, meta.n_features_in_
        device = meta.net_.device
        x = _embed(X, self.n_features_padded_, self.mean_, self.scale_, device)
        if self._task == "classification":
            self.classes_, y_enc = np.unique(y, return_inverse=True)
            n = len(self.classes_)
            if n < 2:
                raise ValueError(
                    f"The support set has a single class ({_label(self.classes_[0])}); "
                    "adapting a classifier needs at least 2."
                )
            if n > meta.n_way_:
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
        unknown = np.setdiff1d(np.unique(y), self.classes_)
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
        with torch.no_grad():
            return functional_call(self.module_, self.params_, (x,))


class AdaptedClassifier(ClassifierMixin, _AdaptedBase):
    """A classifier adapted to a new task from a meta-trained initialisation.

    ``fit(X, y)`` adapts (it does not meta-train); usually obtained from
    ``meta.adapt(X, y)``. Because cloning keeps the same meta-estimator, it plugs
    into ``cross_val_score(..., cv=TaskSplitter(...))``.

    Parameters
    ----------
    meta_estimator : MAMLClassifier
        A meta-trained classifier; shared, never modified.

    Attributes
    ----------
    classes_ : ndarray
        The support set's labels, in sorted order.
    params_ : dict of str to Tensor
        The adapted network parameters.
    module_ : torch.nn.Module
        The network architecture they are applied to (the meta-estimator's).
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
    meta_estimator : MAMLRegressor
        A meta-trained regressor; shared, never modified.

    Attributes
    ----------
    params_ : dict of str to Tensor
        The adapted network parameters.
    module_ : torch.nn.Module
        The network architecture they are applied to (the meta-estimator's).
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


_PARAMS_DOC = """
    Parameters
    ----------
    task_splitter : TaskSplitter, default=None
        Draws the episodes: ``n_tasks`` training episodes per epoch from the
        fit data, and the episodes ``score`` averages over. None means
        ``TaskSplitter()``{n_way_note}.
    hidden_layer_sizes : tuple of int, default=(40, 40)
        Hidden widths of the default MLP.
    activation : {{"relu", "tanh", "gelu"}}, default="relu"
    module : torch.nn.Module, default=None
        A network to use instead of the MLP (deep-copied at fit); it must map
        ``[n, n_features]`` to ``[n, {n_out}]``.
    inner_lr : float, default={inner_lr}
        Step size of the inner loop (training and adaptation).
    inner_steps : int, default=1
        Inner gradient steps during meta-training.
    adapt_steps : int, default=None
        Inner steps at adaptation time (``adapt``, ``score``, meta-validation);
        None means ``inner_steps``. Read when adapting, so it can be changed with
        ``set_params`` after meta-training (as can ``inner_lr``).
    first_order : bool, default=False
        Drop the second-order terms of the meta-gradient (first-order MAML).
    meta_lr : float, default=1e-3
        Adam learning rate of the outer loop.
    meta_batch_size : int, default=16
        Tasks per meta-step.
    max_epochs : int, default=20
        Epochs of ``task_splitter.n_tasks`` episodes each; 0 keeps the random start.
    early_stopping : {{"auto", True, False}}, default="auto"
        Hold out tasks (groups or task datasets), or else classes, or else rows,
        for meta-validation; stop after ``n_iter_no_change`` epochs without
        improvement and restore the best weights, the random start (epoch 0)
        included. "auto" does so when the data allow it and warns when not.
    validation_fraction : float, default=0.2
        Fraction of tasks (classes, rows) held out when early stopping.
    n_iter_no_change : int, default=5
    standardize : {{"auto", True, False}}, default="auto"
        Standardise each task dataset (and each support set at ``adapt``) and
        zero-pad to the widest; "auto" does so when task widths differ.
    callbacks : list of skorch callbacks, default=None
        Passed to the skorch net (deep-copied), e.g. ``EarlyStopping``,
        ``Checkpoint``, ``LRScheduler``; they see ``valid_loss``{valid_acc}.
    verbose : int, default=0
        1 prints skorch's epoch table and progress bar.
    device : str, default="cpu"
        Torch device of the meta-parameters, e.g. "cuda".
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the held-out split and the training episodes.

    Attributes
    ----------
    net_ : MetaNet
        The fitted skorch net (history, callbacks, optimizer).
    module_ : torch.nn.Module
        The meta-learned initialisation.
    history_ : skorch.History
        Per-epoch ``train_loss``, ``valid_loss``{valid_acc}, durations.
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


class MAMLClassifier(_MetaEstimatorBase):
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

    _task = "classification"
    _adapted_class = AdaptedClassifier

    def __init__(self, *, task_splitter=None, hidden_layer_sizes=(40, 40), activation="relu",
                 module=None, inner_lr=0.4, inner_steps=1, adapt_steps=None, first_order=False,
                 meta_lr=1e-3, meta_batch_size=16, max_epochs=20, early_stopping="auto",
                 validation_fraction=0.2, n_iter_no_change=5, standardize="auto",
                 callbacks=None, verbose=0, device="cpu", random_state=None):
        self.task_splitter = task_splitter
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.module = module
        self.inner_lr = inner_lr
        self.inner_steps = inner_steps
        self.adapt_steps = adapt_steps
        self.first_order = first_order
        self.meta_lr = meta_lr
        self.meta_batch_size = meta_batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.standardize = standardize
        self.callbacks = callbacks
        self.verbose = verbose
        self.device = device
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier"
        tags.classifier_tags = ClassifierTags()
        return tags


class MAMLRegressor(_MetaEstimatorBase):
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

    _task = "regression"
    _adapted_class = AdaptedRegressor

    def __init__(self, *, task_splitter=None, hidden_layer_sizes=(40, 40), activation="relu",
                 module=None, inner_lr=0.01, inner_steps=1, adapt_steps=None, first_order=False,
                 meta_lr=1e-3, meta_batch_size=16, max_epochs=20, early_stopping="auto",
                 validation_fraction=0.2, n_iter_no_change=5, standardize="auto",
                 callbacks=None, verbose=0, device="cpu", random_state=None):
        self.task_splitter = task_splitter
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.module = module
        self.inner_lr = inner_lr
        self.inner_steps = inner_steps
        self.adapt_steps = adapt_steps
        self.first_order = first_order
        self.meta_lr = meta_lr
        self.meta_batch_size = meta_batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.standardize = standardize
        self.callbacks = callbacks
        self.verbose = verbose
        self.device = device
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor"
        tags.regressor_tags = RegressorTags()
        return tags


MAMLClassifier.__doc__ = MAMLClassifier.__doc__.format(params=_PARAMS_DOC.format(
    n_way_note=" (all classes of the data in each episode)", n_out="n_way", inner_lr=0.4,
    valid_acc=" and ``valid_acc``"))
MAMLRegressor.__doc__ = MAMLRegressor.__doc__.format(params=_PARAMS_DOC.format(
    n_way_note="", n_out="1", inner_lr=0.01, valid_acc=""))


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
