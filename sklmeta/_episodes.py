"""Task pools, the one hold-out and the one episode sampler.

Everything that turns data into episodes goes through here, for the splitter
(:class:`sklmeta.TaskSplitter`) and for meta-training alike:

- :func:`group_rows` is the one parser of a ``groups`` column into pools of rows;
  :func:`fit_pools` turns what ``fit`` receives (``(X, y)``, ``(X, y, groups)`` or a
  list of task datasets) into :class:`TaskPool` records;
- :func:`hold_out` is the one meta-validation split (whole tasks, else whole
  classes, else rows); :func:`choose_classes` is its class draw, which
  :func:`sklmeta.train_test_split_classes` shares;
- :class:`EpisodeSampler` is the one episode sampler: vectorised over a batch
  of episodes, with memory in line with the data (a flat row order and a
  ``[pool, class]`` table of offsets, never a dense ``[pool, class, row]`` one).
"""

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.utils.validation import column_or_1d

from ._validation import unique_labels

__all__ = ["EpisodeSampler", "TaskPool", "choose_classes", "fit_pools", "group_rows",
           "fitted_episode_size", "hold_out", "is_task_list", "label_repr", "n_folds", "pool_rows",
           "usable"]


def label_repr(value):
    """``repr`` of a label as the user wrote it (``2``, not ``np.int64(2)``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _listing(items, limit=10):
    """``items`` joined by commas, the first ``limit`` only (a continuous y has thousands)."""
    items = list(items)
    more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


@dataclass
class TaskPool:
    """The rows of one task: a task dataset, a group, or a whole dataset.

    Attributes
    ----------
    X : ndarray or None
        The task's features (None where only row indices matter: the splitter).
    y : ndarray or None
        Its targets.
    name : str
        How messages name it: ``"task 3 "``, ``"group 'a' "`` or ``""``.
    key : object
        The task index or group label; None for a whole dataset.
    """

    X: object
    y: object
    name: str = ""
    key: object = None


def is_task_list(X, y):
    """``fit(tasks)``: a list of ``(X_i, y_i)`` pairs rather than one ``(X, y)``."""
    if not isinstance(X, (list, tuple)):
        return False
    return len(X) == 0 or all(
        isinstance(t, (list, tuple)) and len(t) == 2 and np.ndim(t[0]) == 2 for t in X
    )


def group_rows(groups, n_samples):
    """The one parser of a groups column: ``(keys, [rows of each group])``.

    Raises a ValueError naming the problem for a 2-d column, a length mismatch
    or labels of mixed types.
    """
    shape = np.shape(groups)
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise ValueError(f"groups should be a 1d array, got an array of shape {shape} instead.")
    groups = column_or_1d(groups)
    if len(groups) != n_samples:
        raise ValueError(f"X has {n_samples} samples but groups has {len(groups)}.")
    keys, inverse = unique_labels(groups, "groups")
    order = np.argsort(inverse, kind="stable")  # one sort, not a mask per group
    return keys, np.split(order, np.cumsum(np.bincount(inverse))[:-1])


def fit_pools(X, y, groups, check_xy):
    """The task pools of a fit, and their unit.

    Parameters
    ----------
    X, y, groups
        As ``fit`` received them.
    check_xy : callable
        ``check_xy(X, y, where) -> (X, y)`` validates one dataset; ``where`` is
        None for the fit's own data (record its width and names) or a prefix for
        messages about one task dataset.

    Returns
    -------
    pools : list of TaskPool
    unit : {"tasks", "groups", None}
        What a pool is: a task dataset, a group, or the whole dataset (None).
    """
    if is_task_list(X, y):
        if y is not None:
            raise ValueError(
                "fit(tasks) takes no y: each task dataset (X_i, y_i) carries its own targets.")
        if len(X) == 0:
            raise ValueError("fit(tasks) got an empty task list; give at least one task.")
        if groups is not None:
            raise ValueError("groups go with fit(X, y); a task list is already split.")
        pools = [TaskPool(*check_xy(Xi, yi, f"task {i}: "), f"task {i} ", i)
                 for i, (Xi, yi) in enumerate(X)]
        return pools, "tasks"
    if y is None:
        raise ValueError("fit needs (X, y) or a list of (X_i, y_i) task datasets.")
    X, y = check_xy(X, y, None)
    if groups is None:
        return [TaskPool(X, y)], None
    keys, rows = group_rows(groups, len(y))
    return [TaskPool(X[r], y[r], f"group {label_repr(g)} ", g.item() if isinstance(
        g, np.generic) else g) for g, r in zip(keys, rows)], "groups"


def choose_classes(classes, n, rng):
    """``n`` of ``classes`` drawn at random: the one class hold-out draw."""
    return rng.permutation(classes)[:n]


def hold_out(pools, unit, *, n_way, need, fraction, rng, fold=0):
    """Split pools into meta-training and meta-validation pools.

    Held out: whole tasks (groups, task datasets) when there are several;
    otherwise whole classes (classification, ``n_way`` set); otherwise rows.
    ``fold`` j > 0 holds out the j-th next block of the same random order of
    tasks or classes (``rng`` seeded alike for each fold), so the folds of
    :func:`n_folds` are disjoint; fold 0 is the one hold-out of early stopping.

    Parameters
    ----------
    pools : list of TaskPool
    unit : str or None
        What a pool is (see :func:`fit_pools`).
    n_way : int or None
        Classes per episode; None for regression.
    need : int
        Rows of one episode (``k_shot + n_query``), for a hold-out of rows.
    fraction : float
        Share of the tasks, classes or rows held out.
    rng : numpy.random.RandomState
    fold : int, default=0
        Which block of ``n_val`` tasks or classes (not rows) is held out.

    Returns
    -------
    train, valid : list of TaskPool, and list or None
        ``valid`` is None when the data do not allow a hold-out.
    split : dict or None
        What was held out (``validation_split_``): ``unit``, ``held_out``, ``n_kept``.
    reason : str
        Why nothing was held out, when ``valid`` is None.
    """
    if len(pools) >= 2:
        n_val = max(1, int(round(fraction * len(pools))))
        if len(pools) - n_val < 1:
            return pools, None, None, f"{len(pools)} {unit} are too few to hold some out"
        order = np.roll(rng.permutation(len(pools)), -fold * n_val)
        split = {"unit": unit, "held_out": sorted(pools[i].key for i in order[:n_val]),
                 "n_kept": len(pools) - n_val}
        return [pools[i] for i in order[n_val:]], [pools[i] for i in order[:n_val]], split, ""
    (pool,) = pools
    if n_way is not None:
        classes = np.unique(pool.y)
        n_val = max(n_way, int(round(fraction * len(classes))))
        if len(classes) - n_val < n_way:
            return pools, None, None, (
                f"{len(classes)} classes are too few to hold out n_way={n_way} for "
                f"meta-validation and keep n_way for meta-training (needs {2 * n_way})"
            )
        val_classes = np.sort(np.roll(choose_classes(classes, len(classes), rng),
                                      -fold * n_val)[:n_val])
        held = np.isin(pool.y, val_classes)
        split = {"unit": "classes", "held_out": val_classes.tolist(),
                 "n_kept": len(classes) - n_val}
    else:
        n_val = int(round(fraction * len(pool.y)))
        if n_val < need or len(pool.y) - n_val < need:
            return pools, None, None, f"{len(pool.y)} rows are too few to hold some out"
        held = np.zeros(len(pool.y), dtype=bool)
        held[rng.permutation(len(pool.y))[:n_val]] = True
        split = {"unit": "rows", "held_out": np.flatnonzero(held).tolist(),
                 "n_kept": len(pool.y) - n_val}
    return ([TaskPool(pool.X[~held], pool.y[~held], pool.name, pool.key)],
            [TaskPool(pool.X[held], pool.y[held], pool.name, pool.key)], split, "")


def n_folds(pools, n_way, fraction, most=5, enough=10):
    """How many disjoint hold-outs of ``fraction`` the tasks or classes allow.

    One when a hold-out already holds ``enough`` tasks or classes (or when rows
    are held out); else as many as fit, at most ``most``: a choice made on
    4 held-out datasets or 5 held-out classes is mostly luck.
    """
    if len(pools) >= 2:
        units, n_val = len(pools), max(1, int(round(fraction * len(pools))))
    elif n_way is not None:
        units = len(np.unique(pools[0].y))
        n_val = max(n_way, int(round(fraction * units)))
    else:
        return 1
    if n_val >= enough or units - n_val < 1:
        return 1
    return int(max(1, min(most, units // n_val)))


def pool_rows(y, size, n_way, k_shot, n_query, name=""):
    """A pool's class sizes and its rows sorted by class (stable); a ValueError naming
    what is too small when it cannot give an episode."""
    need = k_shot + n_query
    if n_way is None:
        if size < need:
            raise ValueError(
                f"{name or 'X '}has {size} samples, fewer than k_shot + n_query = "
                f"{k_shot} + {n_query} = {need}."
            )
        return np.array([size]), np.arange(size)
    classes, y_idx = unique_labels(y, "y")
    if n_way > len(classes):
        of = f"of {name}" if name else "in y "
        raise ValueError(
            f"n_way={n_way} is larger than the number of classes {of}"
            f"({len(classes)}: {classes.tolist()})."
        )
    counts = np.bincount(y_idx, minlength=len(classes))
    small = counts < need
    if small.any():
        detail = _listing(
            f"class {label_repr(c)} has {n}" for c, n in zip(classes[small], counts[small])
        )
        raise ValueError(
            f"Every class{' of ' + name if name else ' '}needs at least k_shot + n_query = "
            f"{k_shot} + {n_query} = {need} samples; {detail}."
        )
    return counts, np.argsort(y_idx, kind="stable")


def fitted_episode_size(k_shot, n_query, labels, sizes, n_way):
    """``(k_shot, n_query)`` shrunk to what the largest pool can give, for a default splitter.

    Small data (a few rows per class) cannot give the default 5 + 15 rows; a
    splitter the user did not choose then takes as many as the best-supplied pool
    has: the support first (up to ``k_shot``, at least 1), then the query.
    """
    def rows(y, size):
        if n_way is None:
            return size
        counts = np.sort(np.unique(y, return_counts=True)[1])[::-1]
        return int(counts[n_way - 1]) if len(counts) >= n_way else 0
    most = max(rows(y, size) for y, size in zip(labels, sizes))
    if most >= k_shot + n_query or most < 2:
        return k_shot, n_query
    k = max(1, min(k_shot, most // 2))
    return k, max(1, min(n_query, most - k))


def usable(labels, sizes, names, *, n_way, k_shot, n_query, what="groups"):
    """Which pools can give an episode; one warning that counts the others.

    Real grouped data bring groups too small for an episode (a store open a
    month, a patient with three visits): they are skipped, with a warning that
    says how many and which. Only when none can give one is it an error (the
    first pool's reason).

    Returns
    -------
    list of bool
        One per pool.
    """
    keep, reasons = [], []
    for y, size, name in zip(labels, sizes, names):
        try:
            pool_rows(y, size, n_way, k_shot, n_query, name)
            keep.append(True)
        except ValueError as e:
            keep.append(False)
            reasons.append((name, e))
    if not any(keep):
        raise reasons[0][1]
    if reasons:
        warnings.warn(
            f"Skipped {len(reasons)} of {len(keep)} {what} too small for an episode "
            f"(k_shot + n_query = {k_shot + n_query} rows"
            f"{f' for each of n_way={n_way} classes' if n_way else ''}): "
            f"{_listing(name.strip() for name, _ in reasons)}. The first: {reasons[0][1]}",
            UserWarning, stacklevel=3,
        )
    return keep


class EpisodeSampler:
    """Draws few-shot episodes from pools of rows, a batch of episodes at a time.

    An episode picks a pool uniformly at random, then (with ``n_way``) ``n_way``
    of its classes, and from each ``k_shot + n_query`` distinct rows: a uniform
    random draw without replacement. Support rows come first, class by class in
    the order the classes were drawn, so episode labels ``0..n_way-1`` are a
    fresh random assignment.

    Parameters
    ----------
    labels : list of ndarray or None
        Each pool's class labels (None entries, or ``n_way=None``: rows are drawn
        regardless of class).
    sizes : list of int
        Rows in each pool.
    n_way : int or None
    k_shot, n_query : int
    names : list of str, default=None
        How messages name each pool.

    Notes
    -----
    Rows are kept as one flat order (pool by pool, class by class) with a
    ``[pool, class]`` table of offsets and counts: memory grows with the rows,
    not with ``pools x classes x largest class``. A batch is one ``argsort`` of
    random keys and one gather; batches whose keys would exceed ``_MAX_KEYS``
    (one huge pool) draw one episode at a time.
    """

    _MAX_KEYS = 1 << 18  # random keys per batch before falling back to a loop

    def __init__(self, labels, sizes, *, n_way, k_shot, n_query, names=None):
        self.n_way, self.k, self.q = n_way, k_shot, n_query
        names = names or [""] * len(sizes)
        per_pool, start = [], 0
        for y, size, name in zip(labels, sizes, names):
            counts, order = pool_rows(y, size, n_way, k_shot, n_query, name)
            per_pool.append((counts, order + start))
            start += size
        n_classes = max(len(c) for c, _ in per_pool)
        self.counts = np.zeros((len(sizes), n_classes), dtype=np.int64)
        self.offsets = np.zeros((len(sizes), n_classes), dtype=np.int64)
        at = 0
        for i, (counts, _) in enumerate(per_pool):
            self.counts[i, : len(counts)] = counts
            self.offsets[i, : len(counts)] = at + np.concatenate([[0], np.cumsum(counts)[:-1]])
            at += int(counts.sum())
        self.order = np.concatenate([o for _, o in per_pool])
        self._longest = int(self.counts.max())

    def draw(self, rng, n, with_classes=False):
        """Row indices ``[n, ways, k_shot + n_query]`` of ``n`` episodes.

        With ``with_classes``, also each episode's pool ``[n]`` and the index, in
        that pool's sorted classes, of each class drawn ``[n, ways]``.
        """
        ways = self.n_way or 1
        if n * ways * self._longest > self._MAX_KEYS:
            return self._draw_looped(rng, n, with_classes)
        return self.draw_many(rng, [n], with_classes)

    def draw_many(self, rng, sizes, with_classes=False):
        """The episodes of consecutive :meth:`draw` calls of ``sizes``, at once.

        The random numbers are taken from ``rng`` in the very order those calls
        take them, so the episodes are the same, concatenated; only the
        arithmetic on them is done once for all. Sizes whose keys would exceed
        ``_MAX_KEYS`` are drawn by :meth:`draw`, one call each.
        """
        ways = self.n_way or 1
        if any(n * ways * self._longest > self._MAX_KEYS for n in sizes):
            parts = [self.draw(rng, n, with_classes=True) for n in sizes]
            out = tuple(np.concatenate(p) for p in zip(*parts))
            return out if with_classes else out[0]
        pools, class_keys, keys = [], [], []
        for n in sizes:  # the order draw() takes them in
            pools.append(rng.randint(len(self.counts), size=n))
            if self.n_way:
                class_keys.append(rng.random_sample((n, self.counts.shape[1])))
            keys.append(rng.random_sample((n, ways, self._longest)))
        pools = np.concatenate(pools)
        counts = self.counts[pools]  # [n, classes]
        classes = self._classes(counts, np.concatenate(class_keys) if self.n_way else None)
        chosen = np.take_along_axis(counts, classes, axis=1)  # rows of each drawn class
        keys = np.concatenate(keys)
        keys[np.arange(self._longest) >= chosen[..., None]] = np.inf
        pick = np.argsort(keys, axis=-1)[..., : self.k + self.q]
        return self._rows(pools, classes, pick, with_classes)

    def _classes(self, counts, keys):
        if keys is None:
            return np.zeros((len(counts), 1), dtype=np.int64)
        keys[counts == 0] = np.inf  # a pool may have fewer classes than the widest
        return np.argsort(keys, axis=1)[:, : self.n_way]

    def _draw_looped(self, rng, n, with_classes):
        pools = rng.randint(len(self.counts), size=n)
        counts = self.counts[pools]
        classes = self._classes(counts, rng.random_sample(counts.shape) if self.n_way else None)
        chosen = np.take_along_axis(counts, classes, axis=1)
        need = self.k + self.q
        pick = np.stack([
            np.stack([rng.choice(m, need, replace=False) for m in per_episode])
            for per_episode in chosen
        ])
        return self._rows(pools, classes, pick, with_classes)

    def _rows(self, pools, classes, pick, with_classes):
        start = self.offsets[pools[:, None], classes]  # [n, ways]
        rows = self.order[start[..., None] + pick]
        return (rows, pools, classes) if with_classes else rows

    def split(self, rows):
        """``(support, query)`` row indices ``[n, ways * k]`` and ``[n, ways * q]``."""
        n = len(rows)
        return rows[..., : self.k].reshape(n, -1), rows[..., self.k :].reshape(n, -1)
