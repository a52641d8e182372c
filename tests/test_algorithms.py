"""Meta-SGD, ANIL, Reptile and ProtoNet: hand-checked updates and the estimator API."""

import pickle

import numpy as np
import pytest
import torch
from conftest import same_weights, small, weights
from sklearn.base import is_classifier
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Callback

import sklmeta
from sklmeta import (
    ANILClassifier,
    ANILRegressor,
    MAMLRegressor,
    MetaSGDClassifier,
    MetaSGDRegressor,
    ProtoNetClassifier,
    ReptileClassifier,
    ReptileRegressor,
    TaskSplitter,
)
from sklmeta._core import EpisodeLoss
from sklmeta._core.algorithms import Reptile
from sklmeta._training import MetaNet

CLASSIFIERS = [MetaSGDClassifier, ANILClassifier, ReptileClassifier, ProtoNetClassifier]
REGRESSORS = [MetaSGDRegressor, ANILRegressor, ReptileRegressor]


# ------------------------------------------------------------------- Reptile
def test_reptile_meta_update_is_the_mean_pull_towards_the_adapted_weights():
    """Hand-checked: y = w x + b, w = b = 0, x = 1, two tasks with y = 2 and y = 4.

    Inner step 1 (lr 0.1, MSE gradient 2 (w x + b - y) for w and for b):
      task y=2: grad -4, w = b = 0.4;   task y=4: grad -8, w = b = 0.8.
    Inner step 2: task y=2: residual 0.8 - 2 = -1.2, grad -2.4, w = b = 0.64;
                  task y=4: residual 1.6 - 4 = -2.4, grad -4.8, w = b = 1.28.
    Meta-update with step size 0.5: w = 0 + 0.5 * mean(0.64, 1.28) = 0.48.
    """
    net = torch.nn.Sequential(torch.nn.Linear(1, 1))
    torch.nn.init.zeros_(net[0].weight)
    torch.nn.init.zeros_(net[0].bias)
    algorithm = Reptile(inner_lr=0.1, inner_steps=2, adapt_steps=2)
    meta = MetaNet(algorithm.learner(net, 1), criterion=EpisodeLoss,
                   criterion__task="regression", optimizer=algorithm.optimizer, lr=0.5,
                   algorithm=algorithm, train_split=None)
    meta.initialize()
    x = torch.ones(2, 1, 1)  # 2 tasks, 1 support row each (and 1 query row)
    y = torch.tensor([[2.0], [4.0]])
    meta.train_step(({"xs": x, "ys": y, "xq": x}, y))
    assert net[0].weight.item() == pytest.approx(0.48, abs=1e-6)
    assert net[0].bias.item() == pytest.approx(0.48, abs=1e-6)


def test_reptile_uses_sgd_with_meta_lr_as_its_step_size(class_tasks):
    meta = small(ReptileClassifier, meta_lr=0.3).fit(class_tasks)
    assert isinstance(meta.net_.optimizer_, torch.optim.SGD)
    assert meta.net_.optimizer_.param_groups[0]["lr"] == 0.3
    assert "first_order" not in meta.get_params()  # first-order by construction


# ------------------------------------------------------------------ ProtoNet
def identity_embedding(width):
    net = torch.nn.Linear(width, width)
    with torch.no_grad():
        net.weight.copy_(torch.eye(width))
        net.bias.zero_()
    return net


def test_protonet_predicts_the_nearest_prototype_by_squared_euclidean_distance():
    # prototypes: "a" at (0, 1), "b" at (4, 1)
    X_support = np.array([[0, 0], [0, 2], [4, 0], [4, 2]], dtype=float)
    y_support = np.array(["a", "a", "b", "b"])
    X_query = np.array([[1.0, 1.0], [3.0, 5.0], [1.9, -40.0], [2.1, 40.0]])
    meta = ProtoNetClassifier(module=identity_embedding(2), max_epochs=0, standardize=False,
                              task_splitter=TaskSplitter(n_way=2, k_shot=1, n_query=1))
    meta.fit(X_support, y_support)
    clf = meta.adapt(X_support, y_support)
    assert clf.predict(X_query).tolist() == ["a", "b", "a", "b"]
    d2 = ((X_query[:, None, :] - np.array([[0, 1], [4, 1]])[None]) ** 2).sum(-1)
    expected = np.exp(-d2 - (-d2).max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(clf.predict_proba(X_query), expected, rtol=1e-5, atol=1e-6)


def test_protonet_adapts_to_more_classes_than_it_was_trained_on(class_tasks):
    meta = small(ProtoNetClassifier).fit(class_tasks)  # 2-way episodes
    X, y = class_tasks[0]
    y3 = np.where(np.arange(len(y)) % 3 == 0, 2, y)
    clf = meta.adapt(X, y3)
    assert clf.classes_.tolist() == [0, 1, 2]
    assert clf.predict_proba(X).shape == (len(y), 3)


def test_protonet_has_no_inner_loop_parameters():
    params = ProtoNetClassifier().get_params()
    assert "embedding_dim" in params
    assert not {"inner_lr", "inner_steps", "adapt_steps", "first_order"} & set(params)


def test_protonet_with_a_user_embedding_of_any_width(class_tasks):
    module = torch.nn.Sequential(torch.nn.Linear(10, 7), torch.nn.Tanh())
    meta = small(ProtoNetClassifier, module=module).fit(class_tasks)
    X, y = class_tasks[0]
    assert meta.adapt(X[:10], y[:10]).predict(X).shape == (len(y),)


# ------------------------------------------------------------------ Meta-SGD
class FreezeRates(Callback):
    def on_train_begin(self, net, **kwargs):
        for lr in net.module_.lrs:
            lr.requires_grad_(False)


def test_meta_sgd_with_frozen_rates_trains_exactly_like_maml(sine_tasks):
    maml = small(MAMLRegressor, inner_lr=0.02, max_epochs=3).fit(sine_tasks)
    meta_sgd = small(MetaSGDRegressor, inner_lr=0.02, max_epochs=3,
                     callbacks=[FreezeRates()]).fit(sine_tasks)
    for a, b in zip(weights(maml), weights(meta_sgd)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert all((v == np.float32(0.02)).all() for v in meta_sgd.inner_lrs_.values())


@pytest.mark.parametrize("lr_mode, shape", [("element", "param"), ("tensor-step", (3,))])
def test_meta_sgd_learns_its_rates_and_exposes_them(sine_tasks, lr_mode, shape):
    meta = small(MetaSGDRegressor, lr_mode=lr_mode, inner_steps=3).fit(sine_tasks)
    params = dict(meta.module_.named_parameters())
    assert set(meta.inner_lrs_) == set(params)
    for name, rates in meta.inner_lrs_.items():
        assert rates.shape == (tuple(params[name].shape) if shape == "param" else shape)
    # meta-training moved them away from their start
    assert any(np.abs(r - 0.01).max() > 1e-5 for r in meta.inner_lrs_.values())


def test_meta_sgd_per_step_rates_cannot_adapt_for_more_steps(sine_tasks):
    meta = small(MetaSGDRegressor, lr_mode="tensor-step", inner_steps=2).fit(sine_tasks)
    X, y = sine_tasks[0]
    meta.set_params(adapt_steps=3)
    with pytest.raises(ValueError, match="learned for 2 inner steps.*at most 2"):
        meta.adapt(X[:5], y[:5])


def test_meta_sgd_rejects_an_unknown_lr_mode(sine_tasks):
    with pytest.raises(ValueError, match="'lr_mode' parameter of MetaSGD(Classifier|Regressor) must be a str among"):
        small(MetaSGDRegressor, lr_mode="layer").fit(sine_tasks)


# ---------------------------------------------------------------------- ANIL
@pytest.mark.parametrize("cls", [ANILClassifier, ANILRegressor])
def test_anil_adaptation_changes_only_the_head(cls, class_tasks, sine_tasks):
    tasks = class_tasks if is_classifier(cls()) else sine_tasks
    meta = small(cls, hidden_layer_sizes=(16, 16)).fit(tasks)
    X, y = tasks[0]
    adapted = meta.adapt(X[:10], y[:10]).params_
    initial = dict(meta.module_.named_parameters())
    head = list(initial)[-2:]
    for name, p in initial.items():
        same = torch.equal(adapted[name], p.detach())
        assert same == (name not in head), name


# -------------------------------------------------------------- the whole API
@pytest.mark.parametrize("cls", CLASSIFIERS + REGRESSORS, ids=lambda c: c.__name__)
def test_reproducible_picklable_and_adapts_without_changing_the_meta_estimator(
        cls, class_tasks, sine_tasks):
    tasks = class_tasks if is_classifier(cls()) else sine_tasks
    meta = small(cls).fit(tasks)
    before = weights(meta)
    X, y = tasks[-1]
    adapted = meta.adapt(X[:10], y[:10])
    assert same_weights(before, weights(meta))
    assert same_weights(before, weights(small(cls).fit(tasks)))  # same seed, same weights
    loaded = pickle.loads(pickle.dumps(meta))
    np.testing.assert_array_equal(loaded.adapt(X[:10], y[:10]).predict(X[10:]),
                                  adapted.predict(X[10:]))
    assert loaded.score(tasks) == meta.score(tasks)


@pytest.mark.parametrize("cls", [MetaSGDClassifier, ANILClassifier, ReptileClassifier,
                                 ProtoNetClassifier], ids=lambda c: c.__name__)
def test_grid_search_and_pipeline(cls):
    from sklmeta.datasets import make_classification_tasks

    X, y, groups = sklmeta.stack_tasks(make_classification_tasks(
        n_tasks=6, n_samples=30, n_features=6, random_state=0))
    grid = GridSearchCV(small(cls, max_epochs=1, early_stopping=False),
                        {"meta_lr": [1e-3, 1e-2]}, cv=GroupKFold(n_splits=2))
    grid.fit(X, y, groups=groups)
    scores = grid.cv_results_["mean_test_score"]
    assert ((scores >= 0) & (scores <= 1)).all()  # accuracies, none failed (NaN)
    assert grid.best_estimator_.meta_lr == grid.best_params_["meta_lr"]
    assert hasattr(grid.best_estimator_, "net_")
    pipe = make_pipeline(StandardScaler(), small(cls, early_stopping=False))
    pipe.fit(X, y, **{f"{pipe.steps[-1][0]}__groups": groups})
    assert sklmeta.adapt(pipe, X[:10], y[:10]).predict(X[10:20]).shape == (10,)


def test_an_adaptation_that_blows_up_is_an_error_not_nan_predictions(sine_tasks):
    meta = small(MAMLRegressor, inner_lr=0.01).fit(sine_tasks)
    X, y = sine_tasks[0]
    # plain SGD (backtracking keeps this adaptation finite: tests/test_backtracking.py)
    meta.set_params(inner_lr=1e4, adapt_steps=20, adapt_backtrack=False)
    with pytest.raises(FloatingPointError, match="Adaptation diverged: after 20 inner steps.*"
                                                  r"smaller inner_lr \(now 10000.0\)"):
        meta.adapt(X[:5], y[:5] * 1e3)
    with pytest.raises(FloatingPointError, match="Adaptation diverged"):
        meta.score(sine_tasks)
