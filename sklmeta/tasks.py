"""Few-shot episodes from ordinary datasets.

:class:`TaskSplitter` turns ``(X, y[, groups])`` into few-shot episodes and speaks
scikit-learn's CV-splitter protocol, so the very same episodes can score a
meta-learner and any other estimator (``cross_val_score(..., cv=splitter)``).
:func:`train_test_split_classes` splits a dataset into class-disjoint
meta-training and meta-test parts.
"""

import numbers

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import _num_samples, column_or_1d

from ._doc_link import DocLinkMixin
from ._episodes import EpisodeSampler, choose_classes, group_rows, label_repr, usable
from ._validation import check_int, unique_labels

__all__ = ["TaskSplitter", "stack_tasks", "train_test_split_classes"]


_SPLIT_BATCH = 256  # episodes drawn per call of the sampler while splitting


class TaskSplitter(DocLinkMixin, BaseEstimator):
    """Few-shot episodes as a scikit-learn cross-validation splitter.

    Each split is one episode: a *support* set (the few labelled examples a
    learner adapts on) and a disjoint *query* set (what it is scored on).

    - With ``n_way``: an episode draws ``n_way`` classes at random and, from each,
      ``k_shot`` support and ``n_query`` query samples ("N-way K-shot").
    - Without ``n_way`` (regression, or tasks defined by groups): ``k_shot`` and
      ``n_query`` count samples.
    - With ``groups``: every episode is drawn from a single group (one group, one
      task), chosen uniformly at random.

    Because it speaks the CV-splitter protocol (``split`` and ``get_n_splits``),
    ``cross_val_score(RandomForestClassifier(), X, y, cv=splitter)`` fits and scores
    any estimator on exactly the episodes a meta-learner is scored on.

    Parameters
    ----------
    n_way : int or None, default=None
        Classes per episode. ``None`` draws samples regardless of class.
    k_shot : int, default=5
        Support samples per class (per episode when ``n_way`` is None).
    n_query : int, default=15
        Query samples per class (per episode when ``n_way`` is None).
    n_tasks : int, default=100
        Number of episodes ``split`` yields; for meta-estimators, the number of
        training episodes per epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the episodes. An int gives the same episodes at every ``split`` call.

    See Also
    --------
    stack_tasks : A list of task datasets as one ``(X, y, groups)`` to split.
    train_test_split_classes : Class-disjoint meta-training and meta-test parts.
    sklmeta.model_selection.compare : Score several estimators on the same episodes.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.model_selection import cross_val_score
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> from sklmeta import TaskSplitter
    >>> X, y = load_iris(return_X_y=True)
    >>> splitter = TaskSplitter(n_way=2, k_shot=5, n_query=10, n_tasks=20, random_state=0)
    >>> support, query = next(splitter.split(X, y))
    >>> len(support), len(query), len(np.unique(y[support]))
    (10, 20, 2)
    >>> scores = cross_val_score(KNeighborsClassifier(1), X, y, cv=splitter)
    >>> scores.shape
    (20,)
    """

    # groups are requested for split, as scikit-learn's group splitters request them
    # (GroupsConsumerMixin): with metadata routing on, params={"groups": g} reach split.
    __metadata_request__split = {"groups": True}

    def __init__(self, n_way=None, k_shot=5, n_query=15, n_tasks=100, random_state=None):
        self.n_way = n_way
        self.k_shot = k_shot
        self.n_query = n_query
        self.n_tasks = n_tasks
        self.random_state = random_state

    def _check_params(self):
        if self.n_way is not None:
            check_int(self.n_way, "n_way", minimum=2)
        check_int(self.k_shot, "k_shot")
        check_int(self.n_query, "n_query")
        check_int(self.n_tasks, "n_tasks")

    def get_n_splits(self, X=None, y=None, groups=None):
        """Number of episodes ``split`` yields: ``n_tasks``.

        Parameters
        ----------
        X : object, default=None
            Ignored; present for the CV-splitter protocol.
        y : object, default=None
            Ignored; present for the CV-splitter protocol.
        groups : object, default=None
            Ignored; present for the CV-splitter protocol.

        Returns
        -------
        int
            The number of episodes, ``n_tasks``.
        """
        self._check_params()
        return self.n_tasks

    def _sampler(self, n_samples, y=None, groups=None):
        """The episode sampler over the pools (the whole data, or each group), and the
        original row of each of the sampler's rows."""
        self._check_params()
        if n_samples == 0:
            raise ValueError(
                "TaskSplitter.split got X with 0 samples; an episode needs k_shot + n_query "
                f"= {self.k_shot} + {self.n_query} samples{' per class' if self.n_way else ''}."
            )
        if self.n_way is not None:
            if y is None:
                raise ValueError("TaskSplitter with n_way needs y to draw classes from.")
            y = column_or_1d(y)
            if len(y) != n_samples:
                raise ValueError(f"X has {n_samples} samples but y has {len(y)}.")
            # Class labels, as the estimators (and scikit-learn's splitters) require:
            # mixed types, NaN or a continuous y are a named error, not a TypeError
            # from numpy or a "class" per distinct float.
            unique_labels(y, "y")
            y_type = type_of_target(y, input_name="y")
            if y_type not in ("binary", "multiclass"):
                raise ValueError(
                    f"Unknown label type: {y_type}. TaskSplitter with n_way draws episodes "
                    "by class and needs class labels in y; for a continuous target (a "
                    "regression) leave n_way=None."
                )
        if groups is None:
            pools, names = [np.arange(n_samples)], [""]
        else:
            keys, pools = group_rows(groups, n_samples)
            names = [f"group {label_repr(g)} " for g in keys]
        labels = [None if self.n_way is None else y[rows] for rows in pools]
        if groups is not None:  # groups too small for an episode: skipped, with a warning
            keep = usable(labels, [len(r) for r in pools], names, n_way=self.n_way,
                          k_shot=self.k_shot, n_query=self.n_query)
            pools, labels, names = ([v for v, k in zip(seq, keep) if k]
                                    for seq in (pools, labels, names))
        sampler = EpisodeSampler(labels, [len(r) for r in pools], n_way=self.n_way,
                                 k_shot=self.k_shot, n_query=self.n_query, names=names)
        return sampler, np.concatenate(pools)

    def split(self, X, y=None, groups=None):
        """Yield ``(support_idx, query_idx)`` for ``n_tasks`` episodes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The data; only its number of rows is used.
        y : array-like of shape (n_samples,), default=None
            Class labels; required when ``n_way`` is set.
        groups : array-like of shape (n_samples,), default=None
            Task membership: each episode is drawn from one group.

        Yields
        ------
        support : ndarray of int
            Row indices of the support set.
        query : ndarray of int
            Row indices of the query set, disjoint from ``support``.
        """
        sampler, original = self._sampler(_num_samples(X), y, groups)
        rng = check_random_state(self.random_state)
        for start in range(0, self.n_tasks, _SPLIT_BATCH):
            rows = sampler.draw(rng, min(_SPLIT_BATCH, self.n_tasks - start))
            for support, query in zip(*sampler.split(rows)):
                yield original[support], original[query]


def train_test_split_classes(X, y, *, test_size=0.25, random_state=None):
    """Split a dataset into class-disjoint meta-training and meta-test parts.

    Few-shot evaluation asks how well a learner adapts to classes it has never
    seen, so the classes (not the rows) are split.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The data.
    y : array-like of shape (n_samples,)
        The class labels; the classes are what is split.
    test_size : float or int, default=0.25
        Fraction of the classes (float in (0, 1)) or number of classes (int) that go
        to the test part.
    random_state : int, RandomState instance or None, default=None
        Seeds which classes go to the test part.

    Returns
    -------
    X_train, X_test, y_train, y_test
        Rows of the training classes and of the test classes.

    See Also
    --------
    TaskSplitter : Few-shot episodes from either part.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from sklmeta import train_test_split_classes
    >>> X, y = load_digits(return_X_y=True)
    >>> X_tr, X_te, y_tr, y_te = train_test_split_classes(X, y, test_size=4, random_state=0)
    >>> len(np.unique(y_tr)), len(np.unique(y_te)), set(y_tr) & set(y_te)
    (6, 4, set())
    """
    y_arr = column_or_1d(y)
    if _num_samples(X) != len(y_arr):
        raise ValueError(f"X has {_num_samples(X)} samples but y has {len(y_arr)}.")
    classes = np.unique(y_arr)
    n = len(classes)
    if isinstance(test_size, numbers.Integral):
        n_test = int(test_size)
    elif isinstance(test_size, numbers.Real) and 0 < test_size < 1:
        n_test = int(round(test_size * n))
    else:
        raise ValueError(f"test_size must be a float in (0, 1) or an int; got {test_size!r}.")
    if not 1 <= n_test <= n - 1:
        raise ValueError(
            f"test_size={test_size!r} leaves {n_test} of {n} classes for the test part; "
            "both parts need at least one class."
        )
    rng = check_random_state(random_state)
    test_classes = choose_classes(classes, n_test, rng)
    test = np.isin(y_arr, test_classes)
    train_idx, test_idx = np.flatnonzero(~test), np.flatnonzero(test)
    return (
        _safe_indexing(X, train_idx), _safe_indexing(X, test_idx),
        _safe_indexing(y, train_idx), _safe_indexing(y, test_idx),
    )


def stack_tasks(tasks):
    """A list of ``(X_i, y_i)`` task datasets as one ``(X, y, groups)`` dataset.

    ``groups`` holds each row's task index, so ``TaskSplitter.split(X, y, groups)``
    (and :func:`~sklmeta.model_selection.compare` with ``groups=``) draws every
    episode from a single task.

    Parameters
    ----------
    tasks : list of (X_i, y_i)
        Task datasets of one width.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        The tasks' rows, task after task.
    y : ndarray of shape (n_samples,)
        Their targets.
    groups : ndarray of int of shape (n_samples,)
        The index in ``tasks`` of each row's task.

    See Also
    --------
    TaskSplitter : Draws every episode from one group when given ``groups``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklmeta import stack_tasks
    >>> X, y, groups = stack_tasks([(np.zeros((2, 3)), [0, 1]), (np.ones((3, 3)), [1, 0, 1])])
    >>> X.shape, groups.tolist()
    ((5, 3), [0, 0, 1, 1, 1])
    """
    if len(tasks) == 0:
        raise ValueError("stack_tasks got an empty task list.")
    widths = sorted({np.shape(Xi)[1] for Xi, _ in tasks})
    if len(widths) > 1:
        raise ValueError(
            f"The tasks have different widths {widths}; one (X, y, groups) dataset needs one."
        )
    X = np.concatenate([np.asarray(Xi) for Xi, _ in tasks])
    y = np.concatenate([column_or_1d(yi) for _, yi in tasks])
    groups = np.repeat(np.arange(len(tasks)), [len(column_or_1d(yi)) for _, yi in tasks])
    return X, y, groups
