"""The one episode sampler, the one hold-out and the one groups parser (sklmeta._episodes)."""

import numpy as np
import pytest
import torch
from conftest import small_classifier

from sklmeta import TaskSplitter, train_test_split_classes
from sklmeta._episodes import EpisodeSampler, TaskPool, group_rows, hold_out
from sklmeta._training import EpisodeDataset, EpisodeTensors


def test_memory_grows_with_the_rows_not_with_groups_times_the_largest_group():
    # 20,000 groups of 4 rows and one of 200,000: a dense [group, class, row] table
    # of row indices would hold 20,001 x 200,000 int64, 32 GB.
    sizes = [4] * 20_000 + [200_000]
    sampler = EpisodeSampler([None] * len(sizes), sizes, n_way=None, k_shot=2, n_query=2)
    held = sum(a.nbytes for a in vars(sampler).values() if isinstance(a, np.ndarray))
    assert held < 4 * 8 * sum(sizes)
    rows = sampler.draw(np.random.RandomState(0), 64)
    assert rows.shape == (64, 1, 4)
    # every episode's rows are distinct and from one group
    starts = np.cumsum([0] + sizes)
    group = np.searchsorted(starts, rows[:, 0, 0], side="right") - 1
    for r, g in zip(rows[:, 0], group):
        assert len(set(r)) == 4 and (starts[g] <= r).all() and (r < starts[g + 1]).all()


def test_the_splitter_draws_from_many_small_groups_and_a_big_one():
    groups = np.concatenate([np.repeat(np.arange(5_000), 4), np.full(100_000, -1)])
    X = np.zeros((len(groups), 1))
    episodes = list(TaskSplitter(k_shot=2, n_query=2, n_tasks=300, random_state=0).split(
        X, groups=groups))
    assert len(episodes) == 300
    for s, q in episodes:
        assert len(np.unique(groups[np.concatenate([s, q])])) == 1
        assert not set(s) & set(q)


def test_splitter_episodes_are_drawn_a_batch_at_a_time_but_count_exactly():
    X, y = np.zeros((60, 1)), np.repeat(np.arange(3), 20)
    splitter = TaskSplitter(n_way=2, k_shot=2, n_query=3, n_tasks=600, random_state=0)
    episodes = list(splitter.split(X, y))
    assert len(episodes) == 600 and splitter.get_n_splits() == 600
    assert all(len(s) == 4 and len(q) == 6 for s, q in episodes)
    again = list(splitter.split(X, y))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(episodes, again))


def test_validation_episodes_are_redrawn_not_held():
    y = np.repeat(np.arange(4), 10)
    sampler = EpisodeSampler([y], [40], n_way=2, k_shot=2, n_query=2)
    tensors = EpisodeTensors([torch.randn(40, 3)], [y], sampler, "classification")
    ds = EpisodeDataset(tensors, 10**6, seed=3, fixed=True)
    assert not any(isinstance(v, (torch.Tensor, tuple)) for v in vars(ds).values())
    first = [b for _, b in zip(range(3), ds.batches(8))]
    second = [b for _, b in zip(range(3), ds.batches(8))]
    for (a, ya), (b, yb) in zip(first, second):
        assert all(torch.equal(a[k], b[k]) for k in a) and torch.equal(ya, yb)


def test_one_groups_parser_names_its_errors():
    keys, rows = group_rows(np.array(["b", "a", "b"]), 3)
    assert keys.tolist() == ["a", "b"] and [r.tolist() for r in rows] == [[1], [0, 2]]
    with pytest.raises(ValueError, match="X has 4 samples but groups has 3"):
        group_rows([1, 2, 3], 4)
    with pytest.raises(ValueError, match="groups should be a 1d array"):
        group_rows(np.zeros((3, 2)), 3)


def test_the_class_hold_out_and_train_test_split_classes_draw_alike():
    y = np.repeat(np.arange(10), 5)
    X = np.arange(50.0)[:, None]
    _, valid, split, _ = hold_out([TaskPool(X, y)], None, n_way=2, need=2, fraction=0.3,
                                  rng=np.random.RandomState(0))
    _, _, _, y_test = train_test_split_classes(X, y, test_size=3, random_state=0)
    assert split["held_out"] == sorted(set(y_test)) == sorted(set(valid[0].y))


def test_fit_holds_out_whole_groups(class_tasks):
    X = np.concatenate([t[0] for t in class_tasks])
    y = np.concatenate([t[1] for t in class_tasks])
    groups = np.repeat([f"site{i}" for i in range(len(class_tasks))], 40)
    meta = small_classifier().fit(X, y, groups=groups)
    assert meta.validation_split_["unit"] == "groups"
    assert set(meta.validation_split_["held_out"]) < set(groups)


def test_fit_on_many_small_groups_and_one_big_one_allocates_in_line_with_the_data():
    import tracemalloc

    from conftest import small_regressor

    rng = np.random.RandomState(0)
    groups = np.concatenate([np.repeat(np.arange(2_000), 10), np.full(100_000, -1)])
    X = rng.randn(len(groups), 2)
    y = X[:, 0] + 0.1 * rng.randn(len(groups))
    small_regressor(max_epochs=1).fit(X[:40], y[:40])  # imports done before tracing
    tracemalloc.start()
    try:
        small_regressor(max_epochs=1, early_stopping=False).fit(X, y, groups=groups)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the data are 1.9 MB (X float64); a dense [group, class, row] table would ask for
    # 2,001 x 100,000 int64 = 1.6 GB
    assert peak < 200e6, f"peak {peak / 1e6:.0f} MB"
