import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from sklmeta.datasets import make_classification_tasks, make_sinusoid_tasks


def test_sinusoid_tasks_follow_the_paper_protocol():
    tasks, amp, phase = make_sinusoid_tasks(n_tasks=50, n_samples=25, return_params=True,
                                            random_state=0)
    assert len(tasks) == 50 and all(x.shape == (25, 1) and y.shape == (25,) for x, y in tasks)
    assert amp.min() >= 0.1 and amp.max() <= 5 and phase.min() >= 0 and phase.max() <= np.pi
    for (x, y), a, p in zip(tasks, amp, phase):
        assert np.abs(x).max() <= 5
        np.testing.assert_allclose(y, a * np.sin(x[:, 0] - p))
    again = make_sinusoid_tasks(n_tasks=50, n_samples=25, random_state=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(tasks, again))


def test_classification_tasks_share_one_informative_subspace():
    tasks = make_classification_tasks(n_tasks=30, n_samples=200, n_features=20,
                                      n_informative=3, random_state=0)
    weight = np.zeros(20)
    for X, y in tasks:
        assert np.bincount(y).tolist() == [100, 100]
        clf = LogisticRegression(C=1e4, max_iter=5000).fit(X, y)
        assert clf.score(X, y) == 1.0  # a hyperplane through the origin: separable
        weight += np.abs(clf.coef_[0]) / np.abs(clf.coef_[0]).sum()
    top = np.sort(weight)[::-1]
    # the same 3 columns carry the weight in every task; the rest is noise
    assert top[2] > 5 * top[3]


def test_classification_tasks_validate():
    with pytest.raises(ValueError, match="n_samples must be even"):
        make_classification_tasks(n_samples=11)
    with pytest.raises(ValueError, match="n_informative must be in"):
        make_classification_tasks(n_features=3, n_informative=5)
