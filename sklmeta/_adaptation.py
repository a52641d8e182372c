"""Support sets in, adapted parameters and scores out.

One path, used alike by the adapted estimators (:mod:`sklmeta.adapted`), a
meta-estimator's ``score`` and :func:`sklmeta.model_selection.compare`:

1. :func:`validate_support` checks a support set against the fitted meta-estimator;
2. :func:`encode_support` standardises it, encodes its labels and makes its tensors
   (a :class:`Support`);
3. :func:`adapt_batches` adapts many supports at once, stacked by shape, through
   the algorithm's own adaptation (the inner loop meta-training ran);
4. :func:`episode_scores` scores episodes a batch at a time: no estimator object
   per episode, and memory bounded by the batch, not by the number of episodes.

What this module needs of a meta-estimator is its fitted attributes and one
protocol method, ``__sklmeta_algorithm__()``, which builds the algorithm from the
estimator's current parameters (so ``inner_lr`` and ``adapt_steps`` can be changed
after meta-training).
"""

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.base import clone, is_classifier
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_feature_names,
    _check_n_features,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from ._core import EpisodeLoss, select_inner_loop
from ._core.threads import compute_threads
from ._episodes import fitted_episode_size, is_task_list
from ._preprocessing import Scaling, numeric_target, scale_target, to_tensor
from ._validation import unique_labels
from .tasks import TaskSplitter

__all__ = ["Support", "adapt_batches", "check_meta_fitted", "check_known_labels",
           "encode_support", "episode_scores", "predict", "scoring_splitter",
           "validate_support"]

ADAPT_BATCH = 512  # episodes per stacked adaptation
SCORE_BATCH = 2048  # episodes encoded and scored per pass


@dataclass
class Support:
    """A support set ready to adapt on.

    Attributes
    ----------
    x : Tensor [n, width]
        Standardised (when the meta-estimator standardises) and zero-padded.
    y : Tensor [n]
        Class indices into ``classes``, or float targets.
    classes : ndarray or None
        The support set's labels, sorted (None for a regressor).
    mean, scale : ndarray or None
        Its inputs' scaling.
    y_mean, y_scale : float or None
        Its targets' scaling (regressors): predictions are mapped back with it.
    columns : ndarray of int or None
        The head's output of each of ``classes`` (``0..n-1``, or with
        ``label_mode="fixed"`` each class's own output).
    head_classes : int or None
        The outputs the support loss spans: ``len(classes)``, or with fixed
        labels every output of the head.
    """

    x: torch.Tensor
    y: torch.Tensor
    classes: object = None
    mean: object = None
    scale: object = None
    y_mean: object = None
    y_scale: object = None
    columns: object = None
    head_classes: object = None

    @property
    def n_classes(self):
        return None if self.classes is None else len(self.classes)


def check_meta_fitted(meta):
    check_is_fitted(meta, "net_", msg=(
        f"{type(meta).__name__} is not meta-trained yet: call fit(tasks) before adapt."))


def validate_support(meta, estimator, X, y):
    """The data checks of adaptation: a fitted meta-estimator, names, width, finite.

    ``estimator`` (the adapted estimator) records ``n_features_in_`` and
    ``feature_names_in_``.
    """
    check_meta_fitted(meta)
    _check_feature_names(meta, X, reset=False)
    classifier = is_classifier(meta)
    X, y = validate_data(estimator, X, y, dtype=[np.float64, np.float32],
                         y_numeric=not classifier)
    if _per_task(meta):
        if X.shape[1] > meta.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(meta).__name__} was meta-trained "
                f"on tasks zero-padded to {meta.n_features_in_}; adapt accepts at most "
                f"{meta.n_features_in_}."
            )
    else:
        _check_n_features(meta, X, reset=False)
    if classifier:
        unique_labels(y, "y")  # mixed types (None among strings): a named error
        check_classification_targets(y)
    else:
        y = numeric_target(y)
    return X, y


def _per_task(meta):
    return meta.standardize_ in ("per-task", True)  # True: files saved before "global"


def encode_support(meta, X, y):
    """A validated support set as a :class:`Support` on the meta-estimator's device.

    It is scaled as its task would have been in meta-training: by the global
    statistics, or (``standardize_="per-task"``) by its own.
    """
    regression = not is_classifier(meta)
    if _per_task(meta) and len(y) < 2:
        raise ValueError(
            "A support set with 1 sample cannot be standardised (the "
            "meta-estimator standardises each task); give at least 2 samples."
        )
    x_mean, x_scale, y_mean, y_scale = Scaling.of(meta, regression).of_task(X, y)
    device = meta.net_.data_device
    x = to_tensor(X, meta.n_features_in_, x_mean, x_scale, device)
    if regression:
        y_t = torch.as_tensor(scale_target(y, y_mean, y_scale), dtype=torch.float32,
                              device=device)
        return Support(x, y_t, None, x_mean, x_scale, y_mean, y_scale)
    # a single class adapts too: it is then what the adapted classifier predicts
    classes, y_enc = np.unique(y, return_inverse=True)
    fixed = getattr(meta, "label_classes_", None)
    if fixed is not None:  # label_mode="fixed": each class keeps its own output
        check_known_labels(classes, fixed, "the classes it was meta-trained on with "
                           "label_mode='fixed' (for new classes at adapt, meta-train with "
                           "label_mode='shuffle')")
        columns = np.searchsorted(fixed, classes)
        return Support(x, torch.as_tensor(columns[y_enc], device=device), classes, x_mean,
                       x_scale, columns=columns, head_classes=len(fixed))
    algorithm = meta.__sklmeta_algorithm__()
    if not getattr(algorithm, "any_number_of_classes", False) and len(classes) > meta.n_way_:
        raise ValueError(
            f"The support set has {len(classes)} classes, but {type(meta).__name__} was "
            f"meta-trained with n_way={meta.n_way_} outputs; adapt takes at most "
            f"{meta.n_way_} classes."
        )
    return Support(x, torch.as_tensor(y_enc, device=device), classes, x_mean, x_scale,
                   columns=np.arange(len(classes)), head_classes=len(classes))


def check_known_labels(y, classes, among="the support set's classes"):
    unknown = np.setdiff1d(unique_labels(y, "y")[0], classes)
    if len(unknown):
        raise ValueError(
            f"y has labels {unknown.tolist()} that are not among {among} "
            f"{classes.tolist()}."
        )


def adapt_batches(meta, supports, keys=None):
    """Adapt many supports, stacked by shape; yield ``(indices, stacked parameters)``.

    Supports that share ``keys[i]`` (default: their shape and class count) are
    adapted together, ``ADAPT_BATCH`` at a time.
    """
    algorithm, learner = meta.__sklmeta_algorithm__(), meta.net_.module_
    task = "classification" if is_classifier(meta) else "regression"
    alike = {}
    for i, s in enumerate(supports):
        key = keys[i] if keys is not None else (tuple(s.x.shape), s.head_classes)
        alike.setdefault(key, []).append(i)
    for idx in alike.values():
        loss = EpisodeLoss(task, supports[idx[0]].head_classes)
        for start in range(0, len(idx), ADAPT_BATCH):
            chunk = idx[start : start + ADAPT_BATCH]
            with compute_threads():
                adapted = algorithm.adapt(
                    learner, torch.stack([supports[i].x for i in chunk]),
                    torch.stack([supports[i].y for i in chunk]), loss=loss,
                )
            yield chunk, adapted


def adapt_one(meta, support):
    """Adapted parameters (one dict, no task axis) for one support set."""
    ((_, stacked),) = adapt_batches(meta, [support])
    return {k: v[0].clone() for k, v in stacked.items()}


def predictor(meta):
    """The module the adapted parameters are applied to."""
    module, _ = meta.__sklmeta_algorithm__().predictor(meta.net_.module_)
    return module


def predict(module, params, x):
    """Outputs of ``module`` under ``params`` for ``x [n, width]``, computed in float64.

    float32 matrix products change a row's result in its last bits when the rows
    around it change (BLAS blocking); in float64 that effect is ~1e-16, so a row's
    prediction does not depend on the rest of the batch. Thread-safe: nothing is
    swapped into a shared module without the inner loop's lock.
    """
    params = {k: v.double()[None] if v.is_floating_point() else v[None]
              for k, v in params.items()}
    with torch.no_grad(), compute_threads():
        out = select_inner_loop(module).forward(params, x.double()[None])[0]
    bad = ~torch.isfinite(out).all(dim=-1)
    if bad.any():
        rows = torch.nonzero(bad).flatten().tolist()
        raise ValueError(
            f"The adapted network's output is not finite for rows {rows[:10]}"
            f"{' ...' if len(rows) > 10 else ''} of X: their values (after scaling, up to "
            f"|x| = {x[bad].abs().max().item():.3g}) are too large for it. Check those rows, "
            "or keep standardize='auto'."
        )
    return out


def scoring_splitter(meta, y):
    """The task_splitter as ``score`` uses it.

    Classifier episodes always draw classes: with ``n_way=None``, as many as the
    data have, up to ``n_way_``. An unseeded splitter takes the estimator's
    ``random_state``, so a seeded estimator scores reproducibly.
    """
    splitter = clone(meta.task_splitter if meta.task_splitter is not None else TaskSplitter())
    if splitter.random_state is None:
        splitter.set_params(random_state=meta.random_state)
    if is_classifier(meta) and splitter.n_way is None:
        n_classes = len(unique_labels(column_or_1d(y), "y")[0])
        if n_classes < 2:
            raise ValueError(f"{type(meta).__name__}.score draws episodes of at least 2 "
                             f"classes; y has {n_classes}.")
        splitter.set_params(n_way=min(meta.n_way_, n_classes))
    if meta.task_splitter is None:  # the default splitter fits its episodes to small data
        y = column_or_1d(y)
        k_shot, n_query = fitted_episode_size(splitter.k_shot, splitter.n_query, [y], [len(y)],
                                              splitter.n_way)
        splitter.set_params(k_shot=k_shot, n_query=n_query)
    return splitter


def _score_batch(meta, X, y, episodes):
    """Scores of some episodes, adapted and predicted stacked."""
    supports, xq, yq = [], [], []
    for s, q in episodes:
        support = encode_support(meta, X[s], y[s])
        supports.append(support)
        xq.append(to_tensor(X[q], meta.n_features_in_, support.mean, support.scale,
                            support.x.device))
        if support.classes is not None:
            check_known_labels(y[q], support.classes)
            yq.append(np.searchsorted(support.classes, y[q]))
        else:
            yq.append(np.asarray(y[q], dtype=np.float64))
    keys = [(tuple(s.x.shape), tuple(q.shape), s.head_classes, s.n_classes)
            for s, q in zip(supports, xq)]
    _, loop = meta.__sklmeta_algorithm__().predictor(meta.net_.module_)
    scores = np.empty(len(episodes))
    for chunk, stacked in adapt_batches(meta, supports, keys):
        with compute_threads():
            out = loop.predict_many(stacked, torch.stack([xq[i] for i in chunk]))
        truth = np.stack([yq[i] for i in chunk])
        if supports[chunk[0]].classes is not None:
            columns = torch.as_tensor(np.stack([supports[i].columns for i in chunk]),
                                      device=out.device)  # [T, C]
            logits = torch.gather(out, -1, columns[:, None, :].expand(-1, out.shape[1], -1))
            pred = logits.argmax(-1).cpu().numpy()
            scores[chunk] = (pred == truth).mean(axis=1)
        else:
            pred = out[..., 0].cpu().numpy().astype(np.float64)
            y_mean = np.array([supports[i].y_mean or 0.0 for i in chunk])[:, None]
            y_scale = np.array([supports[i].y_scale or 1.0 for i in chunk])[:, None]
            pred = pred * y_scale + y_mean
            ss_res = ((truth - pred) ** 2).sum(axis=1)
            ss_tot = ((truth - truth.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                r2 = 1 - ss_res / ss_tot
            # scikit-learn's r2_score for a constant target: 1 if perfect, else 0
            scores[chunk] = np.where(ss_tot == 0, np.where(ss_res == 0, 1.0, 0.0), r2)
    return scores


def task_list_episodes(tasks, splitter):
    """``splitter``'s episodes of a task list, each in its own task's rows.

    The tasks are drawn from as the groups of one stacked dataset; each episode
    comes back re-indexed into its task, so a task is adapted to (and scored)
    at its own width. Returns ``[(X_t, y_t, episodes of t)]`` for the tasks that
    have episodes, in task order.
    """
    offsets = np.cumsum([0] + [len(t[1]) for t in tasks])
    y_all = np.concatenate([column_or_1d(t[1]) for t in tasks])
    task_of = np.repeat(np.arange(len(tasks)), np.diff(offsets))
    per_task = [[] for _ in tasks]
    for s, q in splitter.split(np.empty((len(y_all), 0)), y_all, task_of):
        t = task_of[s[0]]
        per_task[t].append((s - offsets[t], q - offsets[t]))
    return [(Xt, yt, eps) for (Xt, yt), eps in zip(tasks, per_task) if eps]


def episode_scores(meta, X, y=None, groups=None, episodes=None, probe=None):
    """Accuracy or R^2 of each episode, as ``adapt(...).score(...)`` gives it.

    Parameters
    ----------
    meta : fitted meta-estimator
    X, y, groups
        One dataset, or ``X`` a list of ``(X_i, y_i)`` tasks (episodes are then
        drawn across tasks as groups; each task is adapted at its own width).
    episodes : iterable of (support, query), default=None
        The episodes; by default :func:`scoring_splitter`'s.
    probe : estimator
        An unfitted adapted estimator, to validate ``X`` and ``y`` once.

    Returns
    -------
    ndarray of shape (n_episodes,)
    """
    check_meta_fitted(meta)
    if is_task_list(X, y):
        if y is not None:
            raise ValueError("score(tasks) takes no y: each task carries its own targets.")
        if not X:
            raise ValueError("score got an empty task list.")
        y_all = np.concatenate([column_or_1d(t[1]) for t in X])
        return np.concatenate([
            episode_scores(meta, Xt, yt, episodes=eps, probe=clone(probe))
            for Xt, yt, eps in task_list_episodes(X, scoring_splitter(meta, y_all))
        ])
    if y is None:
        raise ValueError(f"{type(meta).__name__}.score needs (X, y) or a list of tasks.")
    if episodes is None:
        # the splitter checks y and groups before X is validated, as it did when
        # scikit-learn's cross-validation drew the episodes
        episodes = scoring_splitter(meta, y).split(X, y, groups)
        first = next(episodes, None)
        episodes = itertools.chain([first] if first is not None else [], episodes)
    X, y = validate_support(meta, probe, X, y)
    scores, batch = [], []
    for episode in episodes:
        batch.append(episode)
        if len(batch) == SCORE_BATCH:
            scores.append(_score_batch(meta, X, y, batch))
            batch = []
    if batch or not scores:
        scores.append(_score_batch(meta, X, y, batch))
    return np.concatenate(scores)
