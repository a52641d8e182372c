"""The baselines: skorch MLPs trained from scratch, and the pretrained + fine-tuned regressor."""

import copy

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklmeta import TaskSplitter
from sklmeta.baselines import FineTunedRegressor, SkorchMLPClassifier, SkorchMLPRegressor
from sklmeta.model_selection import compare


@parametrize_with_checks([SkorchMLPClassifier(max_epochs=10, random_state=0),
                          SkorchMLPRegressor(max_epochs=10, random_state=0)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_classifier_fits_support_set_with_any_labels():
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = SkorchMLPClassifier(max_epochs=50, random_state=0).fit(X[::5], names[::5])
    assert clf.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    proba = clf.predict_proba(X)
    assert proba.shape == (150, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    assert set(clf.predict(X)) <= set(names)
    assert clf.score(X, names) > 0.8
    assert clf.n_features_in_ == 4
    assert len(clf.net_.history) == 50


def test_seeded_and_leaves_global_rng_alone():
    X, y = load_iris(return_X_y=True)
    state = torch.random.get_rng_state()
    fitted = SkorchMLPClassifier(max_epochs=5, random_state=3).fit(X, y)
    a = fitted.predict_proba(X)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = SkorchMLPClassifier(max_epochs=5, random_state=3).fit(X, y).predict_proba(X)
    c = SkorchMLPClassifier(max_epochs=5, random_state=4).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_clone_is_unfitted_with_same_params():
    clf = SkorchMLPClassifier(hidden_layer_sizes=(8,), lr=0.05, max_epochs=3, random_state=0)
    clf.fit(*load_iris(return_X_y=True))
    fresh = clone(clf)
    assert fresh.get_params() == clf.get_params()
    assert not hasattr(fresh, "net_")


def test_compare_fits_a_fresh_network_per_episode():
    X, y = load_iris(return_X_y=True)
    cv = TaskSplitter(n_way=2, k_shot=5, n_query=5, n_tasks=3, random_state=0)
    table = compare({"mlp": SkorchMLPClassifier(max_epochs=20, random_state=0)}, X, y, cv=cv)
    assert table.loc["mlp", "n_episodes"] == 3
    assert 0 <= table.loc["mlp", "mean"] <= 1


def test_regressor_fits_and_minibatches():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(64, 2))
    y = 3 * X[:, 0] - X[:, 1]
    full = SkorchMLPRegressor(max_epochs=200, random_state=0).fit(X, y)
    assert full.predict(X).dtype == np.float64
    assert full.score(X, y) > 0.9
    mini = SkorchMLPRegressor(max_epochs=20, batch_size=16, random_state=0).fit(X, y)
    assert len(mini.net_.history[-1, "batches"]) == 4


@pytest.mark.parametrize("params, match", [
    (dict(hidden_layer_sizes=(0,)), "hidden_layer_sizes"),
    (dict(lr=0), "lr"),
    (dict(max_epochs=-1), "max_epochs"),
    (dict(batch_size=0), "batch_size"),
])
def test_invalid_params(params, match):
    with pytest.raises(ValueError, match=match):
        SkorchMLPRegressor(**params).fit(np.zeros((4, 1)), np.zeros(4))


@pytest.fixture(scope="module")
def pretrained():
    """A network pretrained on the pooled data of many tasks y = a * x."""
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(400, 1))
    y = rng.uniform(0.5, 1.5, size=400) * X[:, 0]
    return SkorchMLPRegressor(hidden_layer_sizes=(16,), max_epochs=100,
                              random_state=0).fit(X, y).module_


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_fine_tuning_starts_from_pretrained_weights_without_mutating_them(pretrained):
    before = _state(pretrained)
    X = np.linspace(-1, 1, 5)[:, None]
    y = 3 * X[:, 0]
    untuned = FineTunedRegressor(pretrained, n_steps=0).fit(X, y)
    with torch.no_grad():
        expected = pretrained(torch.as_tensor(X, dtype=torch.float32))[:, 0].numpy()
    np.testing.assert_allclose(untuned.predict(X), expected, rtol=1e-6)

    tuned = FineTunedRegressor(pretrained, lr=0.05, n_steps=20).fit(X, y)
    assert tuned.module_ is not pretrained
    assert all(torch.equal(v, before[k]) for k, v in pretrained.state_dict().items())
    # The steps moved the copy towards the new task.
    assert np.mean((tuned.predict(X) - y) ** 2) < np.mean((expected - y) ** 2)


def test_fine_tuned_clone_and_compare(pretrained):
    before = _state(pretrained)
    reg = FineTunedRegressor(pretrained, lr=0.05, n_steps=5)
    fresh = clone(reg)
    assert fresh.get_params()["lr"] == 0.05 and not hasattr(fresh, "module_")
    rng = np.random.RandomState(1)
    X = rng.uniform(-1, 1, size=(60, 1))
    y = np.repeat(rng.uniform(0.5, 1.5, size=6), 10) * X[:, 0]
    groups = np.repeat(np.arange(6), 10)
    cv = TaskSplitter(k_shot=5, n_query=5, n_tasks=4, random_state=0)
    table = compare({"ft": reg}, X, y, cv=cv, groups=groups, scoring="neg_mean_squared_error")
    assert table.loc["ft", "n_episodes"] == 4
    assert all(torch.equal(v, before[k]) for k, v in pretrained.state_dict().items())


def test_fine_tuned_errors(pretrained):
    X, y = np.linspace(-1, 1, 5)[:, None], np.full(5, 1e6)
    with pytest.raises(ValueError, match="diverged"):
        FineTunedRegressor(copy.deepcopy(pretrained), lr=1e3, n_steps=50).fit(X, y)
    with pytest.raises(ValueError, match="torch.nn.Module"):
        FineTunedRegressor("not a module").fit(X, y)
    with pytest.raises(ValueError, match="n_steps"):
        FineTunedRegressor(pretrained, n_steps=-1).fit(X, y)
