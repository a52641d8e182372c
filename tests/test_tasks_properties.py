"""Property-based tests of TaskSplitter: the promises of every episode, on any data.

Hypothesis draws the data (classes, class sizes, groups, label types, row order)
and the splitter's parameters; each test states what must hold for all of them.
``derandomize=True`` makes every run draw the same examples, so the suite is
deterministic; the budgets keep the whole file to a few seconds.
"""

import math

import numpy as np
from hypothesis import Phase, assume, given, settings
from hypothesis import strategies as st

from sklmeta import TaskSplitter

# Deterministic and quick: the same examples every run, no example database on disk,
# and no "explain" phase (it re-runs a failing example dozens of times).
FAST = settings(max_examples=30, derandomize=True, deadline=None, database=None,
                phases=[Phase.explicit, Phase.generate, Phase.shrink])
SEED = st.integers(0, 2**32 - 1)


@st.composite
def class_data(draw, max_groups=3):
    """``(y, groups, splitter parameters, p_min)`` of a dataset every episode can be drawn from.

    Every group has at least ``n_way`` classes and every class at least
    ``k_shot + n_query`` rows. Rows are shuffled, so neither classes nor groups are
    contiguous, and labels are ints or strings. ``p_min`` is a lower bound on the
    probability that one episode contains a given row.
    """
    n_way = draw(st.integers(2, 4))
    k_shot, n_query = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    need = k_shot + n_query
    n_groups = draw(st.integers(1, max_groups))
    y, groups, p_min = [], [], 1.0
    for g in range(n_groups):
        n_classes = draw(st.integers(n_way, 5))
        counts = draw(st.lists(st.integers(need, need + 4), min_size=n_classes,
                               max_size=n_classes))
        # groups share some class labels, as the classes of different tasks often do
        y.append(np.repeat(np.arange(n_classes) + g, counts))
        groups.append(np.full(sum(counts), g))
        p_min = min(p_min, n_way / n_classes * need / max(counts) / n_groups)
    order = np.asarray(draw(st.permutations(range(sum(map(len, y))))))
    y, groups = np.concatenate(y)[order], np.concatenate(groups)[order]
    if draw(st.booleans()):
        y = np.array([f"class-{v}" for v in y])
    params = dict(n_way=n_way, k_shot=k_shot, n_query=n_query)
    return y, (groups if n_groups > 1 else None), params, p_min


@st.composite
def regression_data(draw, max_groups=3):
    """``(n_samples, groups, splitter parameters, p_min)`` for episodes without n_way."""
    k_shot, n_query = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    need = k_shot + n_query
    sizes = draw(st.lists(st.integers(need, need + 15), min_size=1, max_size=max_groups))
    groups = np.repeat(np.arange(len(sizes)), sizes)
    groups = groups[np.asarray(draw(st.permutations(range(len(groups)))))]
    p_min = need / max(sizes) / len(sizes)
    return len(groups), (groups if len(sizes) > 1 else None), dict(k_shot=k_shot,
                                                                   n_query=n_query), p_min


def n_tasks_to_reach_every_row(n_rows, p_min, miss=1e-9):
    """Episodes after which any row has been drawn with probability above ``1 - miss``."""
    if p_min >= 1:
        return 1
    return math.ceil(math.log(miss / n_rows) / math.log1p(-p_min))


def episodes(splitter, n_samples, y=None, groups=None):
    return list(splitter.split(np.zeros((n_samples, 1)), y, groups))


def check_one_pool(support, query, groups, n_samples):
    rows = np.concatenate([support, query])
    assert rows.dtype.kind == "i" and rows.min() >= 0 and rows.max() < n_samples
    assert len(np.unique(rows)) == len(rows)  # no row twice, support and query disjoint
    if groups is not None:
        assert len(np.unique(groups[rows])) == 1  # one group, one task


@FAST
@given(data=class_data(), seed=SEED)
def test_classification_episodes_are_n_way_k_shot(data, seed):
    y, groups, params, _ = data
    splitter = TaskSplitter(**params, n_tasks=20, random_state=seed)
    n_way, k, q = params["n_way"], params["k_shot"], params["n_query"]
    for support, query in episodes(splitter, len(y), y, groups):
        check_one_pool(support, query, groups, len(y))
        assert len(support) == n_way * k and len(query) == n_way * q
        # class by class, in the order the classes were drawn (the episode labels rely on it)
        by_class_s = y[support].reshape(n_way, k)
        by_class_q = y[query].reshape(n_way, q)
        assert (by_class_s == by_class_s[:, :1]).all() and (by_class_q == by_class_q[:, :1]).all()
        assert len(np.unique(by_class_s[:, 0])) == n_way
        assert (by_class_s[:, 0] == by_class_q[:, 0]).all()


@FAST
@given(data=regression_data(), seed=SEED)
def test_regression_episodes_count_samples(data, seed):
    n, groups, params, _ = data
    splitter = TaskSplitter(**params, n_tasks=20, random_state=seed)
    for support, query in episodes(splitter, n, np.linspace(-1.0, 1.0, n), groups):
        check_one_pool(support, query, groups, n)
        assert len(support) == params["k_shot"] and len(query) == params["n_query"]


@FAST
@given(data=class_data(), a=SEED, offset=st.integers(1, 2**16))
def test_same_seed_same_episodes_other_seed_other_episodes(data, a, offset):
    y, groups, params, _ = data
    b = (a + offset) % 2**32

    def draw(random_state, splitter=None):
        splitter = splitter or TaskSplitter(**params, n_tasks=10, random_state=random_state)
        return [np.concatenate(e) for e in episodes(splitter, len(y), y, groups)]

    first = draw(a)
    same = TaskSplitter(**params, n_tasks=10, random_state=a)
    for again in (draw(a), draw(None, same), draw(None, same),
                  draw(np.random.RandomState(a))):  # an int seeds a fresh RandomState(int)
        assert len(again) == 10 and all(np.array_equal(x, z) for x, z in zip(first, again))
    other = draw(b)
    assert not all(np.array_equal(x, z) for x, z in zip(first, other))


@FAST
@given(data=class_data(), seed=SEED)
def test_every_row_is_reachable_with_classes(data, seed):
    y, groups, params, p_min = data
    n_tasks = n_tasks_to_reach_every_row(len(y), p_min)
    assume(n_tasks <= 2000)  # the budget of this test; the strategy rarely needs more
    splitter = TaskSplitter(**params, n_tasks=n_tasks, random_state=seed)
    seen = np.zeros(len(y), dtype=bool)
    for support, query in episodes(splitter, len(y), y, groups):
        seen[support] = seen[query] = True
    assert seen.all(), f"rows never drawn: {np.flatnonzero(~seen).tolist()}"


@FAST
@given(data=regression_data(), seed=SEED)
def test_every_row_is_reachable_without_classes(data, seed):
    n, groups, params, p_min = data
    n_tasks = n_tasks_to_reach_every_row(n, p_min)
    splitter = TaskSplitter(**params, n_tasks=n_tasks, random_state=seed)
    seen = np.zeros(n, dtype=bool)
    for support, query in episodes(splitter, n, groups=groups):
        seen[support] = seen[query] = True
    assert seen.all(), f"rows never drawn: {np.flatnonzero(~seen).tolist()}"
