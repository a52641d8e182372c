import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from sklmeta import TaskSplitter, stack_tasks, train_test_split_classes


@pytest.fixture
def iris():
    return load_iris(return_X_y=True)


def test_n_way_k_shot_episodes(iris):
    X, y = iris
    splitter = TaskSplitter(n_way=2, k_shot=3, n_query=4, n_tasks=50, random_state=0)
    episodes = list(splitter.split(X, y))
    assert len(episodes) == splitter.get_n_splits() == 50
    for support, query in episodes:
        assert len(np.intersect1d(support, query)) == 0
        classes = np.unique(y[support])
        assert len(classes) == 2 and set(np.unique(y[query])) == set(classes)
        assert all((y[support] == c).sum() == 3 and (y[query] == c).sum() == 4 for c in classes)
    # all three classes turn up across episodes
    assert len(np.unique(np.concatenate([y[s] for s, _ in episodes]))) == 3


def test_same_seed_same_episodes_and_other_seed_other_episodes(iris):
    X, y = iris
    def episodes(seed):
        return [np.concatenate(e) for e in TaskSplitter(n_way=3, n_tasks=5, random_state=seed).split(X, y)]
    assert all(np.array_equal(a, b) for a, b in zip(episodes(0), episodes(0)))
    assert not all(np.array_equal(a, b) for a, b in zip(episodes(0), episodes(1)))


def test_without_n_way_counts_samples():
    X = np.arange(40.0).reshape(20, 2)
    support, query = next(TaskSplitter(k_shot=5, n_query=7, n_tasks=1, random_state=0).split(X))
    assert len(support) == 5 and len(query) == 7 and len(np.intersect1d(support, query)) == 0


def test_groups_make_one_task_per_episode():
    X = np.zeros((60, 1))
    groups = np.repeat(["a", "b", "c"], 20)
    y = np.tile([0, 1], 30)
    seen = set()
    for support, query in TaskSplitter(n_way=2, k_shot=2, n_query=3, n_tasks=30,
                                       random_state=0).split(X, y, groups):
        rows = np.concatenate([support, query])
        assert len(np.unique(groups[rows])) == 1
        seen.add(groups[rows[0]])
    assert seen == {"a", "b", "c"}


def test_a_class_too_small_is_named_with_its_count(iris):
    X, y = iris
    keep = np.r_[0:150][(y != 2) | (np.arange(150) < 105)]  # class 2 keeps 5 rows
    with pytest.raises(ValueError, match=r"k_shot \+ n_query = 5 \+ 15 = 20 samples; class 2 has 5\."):
        next(TaskSplitter(n_way=2, k_shot=5, n_query=15).split(X[keep], y[keep]))


def test_a_group_too_small_is_named():
    X, groups = np.zeros((25, 1)), np.r_[[0] * 20, [1] * 5]
    with pytest.warns(UserWarning, match=r"Skipped 1 of 2 groups.*group 1 has 5 samples, "
                                         r"fewer than"):
        episodes = list(TaskSplitter(k_shot=5, n_query=5, n_tasks=20).split(X, groups=groups))
    assert all(np.concatenate(e).max() < 20 for e in episodes)  # all from group 0
    with pytest.raises(ValueError, match=r"group 1 has 5 samples, fewer than"):
        next(TaskSplitter(k_shot=5, n_query=5).split(X[20:], groups=groups[20:]))


def test_n_way_above_number_of_classes(iris):
    X, y = iris
    with pytest.raises(ValueError, match=r"n_way=4 is larger than the number of classes"):
        next(TaskSplitter(n_way=4).split(X, y))


@pytest.mark.parametrize("params, message", [
    ({"k_shot": 0}, "k_shot must be an integer >= 1"),
    ({"n_query": -1}, "n_query must be"),
    ({"n_way": 1}, "n_way must be an integer >= 2"),
    ({"n_tasks": 2.5}, "n_tasks must be"),
])
def test_bad_parameters(iris, params, message):
    X, y = iris
    with pytest.raises(ValueError, match=message):
        next(TaskSplitter(**params).split(X, y))


def test_n_way_needs_y_and_lengths_must_match(iris):
    X, y = iris
    with pytest.raises(ValueError, match="needs y"):
        next(TaskSplitter(n_way=2).split(X))
    with pytest.raises(ValueError, match="X has 150 samples but y has 149"):
        next(TaskSplitter(n_way=2).split(X, y[:-1]))


def test_any_estimator_is_scored_on_the_splitter_episodes(iris):
    X, y = iris
    splitter = TaskSplitter(n_way=3, k_shot=5, n_query=10, n_tasks=12, random_state=0)
    scores = cross_val_score(KNeighborsClassifier(1), X, y, cv=splitter)
    manual = [KNeighborsClassifier(1).fit(X[s], y[s]).score(X[q], y[q])
              for s, q in splitter.split(X, y)]
    np.testing.assert_allclose(scores, manual)


def test_splitter_has_params_for_grid_search():
    splitter = TaskSplitter(n_way=2)
    assert splitter.set_params(k_shot=1).get_params()["k_shot"] == 1


def test_train_test_split_classes_is_class_disjoint(iris):
    X, y = iris
    X_tr, X_te, y_tr, y_te = train_test_split_classes(X, y, test_size=1, random_state=0)
    assert len(X_tr) == len(y_tr) == 100 and len(X_te) == len(y_te) == 50
    assert set(y_tr).isdisjoint(y_te)
    with pytest.raises(ValueError, match="both parts need at least one class"):
        train_test_split_classes(X, y, test_size=3)


def test_stack_tasks_makes_one_dataset_with_task_groups():
    X, y, groups = stack_tasks([(np.zeros((2, 3)), [0, 1]), (np.ones((3, 3)), np.array([[1], [0], [1]]))])
    assert X.shape == (5, 3) and y.tolist() == [0, 1, 1, 0, 1] and groups.tolist() == [0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match=r"different widths \[2, 3\]"):
        stack_tasks([(np.zeros((2, 3)), [0, 1]), (np.zeros((2, 2)), [0, 1])])
    with pytest.raises(ValueError, match="empty task list"):
        stack_tasks([])
