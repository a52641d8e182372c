"""Custom modules with BatchNorm and Dropout (``module=...``).

BatchNorm normalises every inner step by the task's own support rows, the
meta-training query pass by the query rows, and, once adapted, every prediction
by the support rows' statistics frozen at ``adapt``; its running buffers are
never read or written. Dropout is on in meta-training only, with a mask of its
own for each task of a meta-batch, and a seeded fit draws the same masks.
"""

import numpy as np
import pytest
import torch
from conftest import small

from sklmeta import (
    ANILClassifier,
    ANILRegressor,
    MAMLClassifier,
    MAMLRegressor,
    MetaSGDClassifier,
    MetaSGDRegressor,
    ProtoNetClassifier,
    ReptileClassifier,
    ReptileRegressor,
    load,
    save,
)
from sklmeta._core import EpisodeLoss, FunctionalInnerLoop, inner_loop, select_inner_loop
from sklmeta._core.functional import SWAP_LOCK, support_statistics

ALGORITHMS = [MAMLClassifier, MAMLRegressor, MetaSGDClassifier, MetaSGDRegressor,
              ANILClassifier, ANILRegressor, ReptileClassifier, ReptileRegressor,
              ProtoNetClassifier]


def bn_dropout_net(n_in, n_out, seed=0, p=0.3):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(n_in, 8), torch.nn.BatchNorm1d(8),
                               torch.nn.ReLU(), torch.nn.Dropout(p), torch.nn.Linear(8, n_out))


def tasks_for(cls, class_tasks, sine_tasks):
    return class_tasks if "Classifier" in cls.__name__ else sine_tasks


def meta_for(cls, class_tasks, sine_tasks, **params):
    tasks = tasks_for(cls, class_tasks, sine_tasks)
    n_out = 2 if "Classifier" in cls.__name__ else 1
    params.setdefault("module", bn_dropout_net(tasks[0][0].shape[1], n_out))
    if cls is not ProtoNetClassifier:
        params.setdefault("inner_steps", 2)
    return small(cls, **params), tasks


def buffers(module):
    return {k: v.clone() for k, v in module.named_buffers()}


@pytest.mark.parametrize("cls", ALGORITHMS, ids=lambda c: c.__name__)
def test_batchnorm_and_dropout_fit_adapt_predict(cls, class_tasks, sine_tasks):
    # before: torch.func's "attempted to call in-place operation (aten::add_.Tensor)
    # that would mutate a captured Tensor" (BatchNorm's num_batches_tracked) in fit;
    # ProtoNet ran, but normalised by the whole meta-batch and updated the buffers
    meta, tasks = meta_for(cls, class_tasks, sine_tasks)
    module = meta.module
    meta.fit(tasks)
    assert meta.inner_loop_ == "torch.func"
    X, y = tasks[0]
    adapted = meta.adapt(X[:10], y[:10])
    out = adapted.predict_proba(X[10:]) if hasattr(adapted, "predict_proba") else (
        adapted.predict(X[10:]))
    assert np.isfinite(out).all()
    # dropout is off at prediction: the same rows, the same outputs, every time
    np.testing.assert_array_equal(adapted.predict(X[10:]), adapted.predict(X[10:]))
    assert np.isfinite(meta.score(tasks[:3]))
    # the running buffers are never read or written: as the module was given
    fitted, given = buffers(meta.module_), buffers(module)
    assert fitted.keys() == given.keys() and fitted
    assert all(torch.equal(fitted[k], given[k]) for k in given)
    # statistics of the support set, frozen for prediction
    prefix = "0." if cls is ProtoNetClassifier else ""
    assert adapted.params_[f"{prefix}1.running_mean"].shape == (8,)


@pytest.mark.parametrize("cls", [MAMLClassifier, ProtoNetClassifier],
                         ids=lambda c: c.__name__)
def test_a_prediction_does_not_depend_on_the_rows_predicted_with_it(cls, class_tasks):
    meta = small(cls, module=bn_dropout_net(10, 2)).fit(class_tasks)
    X, y = class_tasks[1]
    clf = meta.adapt(X[:10], y[:10])
    together = clf.predict_proba(X[10:])
    alone = np.vstack([clf.predict_proba(X[i : i + 1]) for i in range(10, 20)])
    np.testing.assert_allclose(alone, together[:10], rtol=1e-6, atol=1e-9)
    reversed_order = clf.predict_proba(X[10:][::-1])[::-1]
    np.testing.assert_allclose(reversed_order, together, rtol=1e-6, atol=1e-9)


def test_predictions_normalise_by_the_support_set_frozen_at_adapt(class_tasks):
    """The adapted parameters carry the support rows' statistics, and predicting the
    support rows with them gives what the batch-mode forward pass gives them."""
    meta = small(MAMLClassifier, module=bn_dropout_net(10, 2), inner_steps=1).fit(class_tasks)
    X, y = class_tasks[2]
    clf = meta.adapt(X[:12], y[:12])
    mean, var = clf.params_["1.running_mean"], clf.params_["1.running_var"]
    x = torch.as_tensor((X[:12] - clf.mean_) / clf.scale_, dtype=torch.float32)
    weights = {k: v for k, v in clf.params_.items() if "running" not in k}
    hidden = torch.func.functional_call(meta.module_[0], {"weight": weights["0.weight"],
                                                          "bias": weights["0.bias"]}, (x,))
    torch.testing.assert_close(mean, hidden.mean(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(var, hidden.var(0, correction=0), rtol=1e-4, atol=1e-5)
    loop = FunctionalInnerLoop(meta.module_)
    batch = loop.forward({k: v[None] for k, v in weights.items()}, x[None])[0]  # no frozen stats
    frozen = loop.forward({k: v[None] for k, v in clf.params_.items()}, x[None])[0]
    torch.testing.assert_close(frozen, batch, rtol=1e-4, atol=1e-5)
    # and a support set of other rows gives other statistics
    other = meta.adapt(X[12:24], y[12:24]).params_["1.running_mean"]
    assert not torch.allclose(other, mean)


@pytest.fixture
def loop_problem():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.BatchNorm1d(16),
                                torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(16, 3))
    params = {k: v.detach() for k, v in model.named_parameters()}
    xs, ys = torch.randn(3, 9, 4), torch.randint(0, 3, (3, 9))
    return model, params, xs, ys, EpisodeLoss("classification", 3)


def test_dropout_masks_differ_between_tasks_in_training_only(loop_problem):
    model, params, xs, ys, loss = loop_problem
    loop = select_inner_loop(model)
    assert type(loop) is FunctionalInnerLoop
    same_x = xs[:1].expand(3, -1, -1)
    same_y = ys[:1].expand(3, -1)
    shared = {k: v.expand(3, *v.shape) for k, v in params.items()}
    out = loop.predict_many(shared, same_x, training=True)
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])
    assert not torch.allclose(out, loop.predict_many(shared, same_x, training=True))
    off = loop.predict_many(shared, same_x)
    torch.testing.assert_close(off[0], off[1])
    torch.testing.assert_close(off, loop.predict_many(shared, same_x))
    # the inner loop's own steps draw a mask per task too: one support set, three results
    trained = loop.adapt_many(params, same_x, same_y, loss=loss, lr=0.5, steps=2,
                              training=True)
    assert not torch.allclose(trained["0.weight"][0], trained["0.weight"][1])
    adapted = loop.adapt_many(params, same_x, same_y, loss=loss, lr=0.5, steps=2)
    torch.testing.assert_close(adapted["0.weight"][0], adapted["0.weight"][1])
    torch.testing.assert_close(adapted["1.running_mean"][0], adapted["1.running_mean"][2])


def test_a_tasks_adaptation_ignores_the_other_tasks_of_its_meta_batch(loop_problem):
    model, params, xs, ys, loss = loop_problem
    before = buffers(model)
    loop = FunctionalInnerLoop(model)
    a = loop.adapt_many(params, xs, ys, loss=loss, lr=0.5, steps=3)
    other_xs = torch.cat([xs[:1], 5 * torch.randn(2, 9, 4) + 3])
    b = loop.adapt_many(params, other_xs, ys, loss=loss, lr=0.5, steps=3)
    for k in a:
        torch.testing.assert_close(a[k][0], b[k][0], rtol=1e-5, atol=1e-6)
    # the same as adapting that task on its own, outside vmap
    with SWAP_LOCK:
        alone = inner_loop(model, params, xs[0], ys[0], loss=loss, lr=0.5, steps=3)
        alone.update(support_statistics(model, alone, xs[0]))
    for k in alone:
        torch.testing.assert_close(a[k][0], alone[k], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(a["1.running_mean"][0], a["1.running_mean"][1])
    after = buffers(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert int(after["1.num_batches_tracked"]) == 0


def test_the_meta_gradient_flows_into_batchnorm_affine_parameters(loop_problem):
    model, params, xs, ys, loss = loop_problem
    live = {k: v.clone().requires_grad_() for k, v in params.items()}
    out = FunctionalInnerLoop(model).adapt_predict(live, xs, ys, xs, loss=loss, lr=0.5,
                                                   steps=1, training=True)
    loss(out, ys).backward()
    assert live["1.weight"].grad.abs().sum() > 0 and live["1.bias"].grad.abs().sum() > 0


def test_the_modules_own_mode_is_left_as_it_was(loop_problem):
    model, params, xs, ys, loss = loop_problem
    model.train()
    FunctionalInnerLoop(model).adapt_many(params, xs, ys, loss=loss, lr=0.5, steps=1)
    assert all(m.training for m in model.modules()) and model[1].track_running_stats
    model.eval()
    FunctionalInnerLoop(model).adapt_many(params, xs, ys, loss=loss, lr=0.5, steps=1,
                                          training=True)
    assert not any(m.training for m in model.modules()) and model[1].track_running_stats


def test_a_module_without_running_stats_adapts_and_predicts_alike(class_tasks):
    net = torch.nn.Sequential(torch.nn.Linear(10, 8),
                              torch.nn.BatchNorm1d(8, track_running_stats=False),
                              torch.nn.ReLU(), torch.nn.Linear(8, 2))
    meta = small(MAMLClassifier, module=net, inner_steps=1).fit(class_tasks)
    X, y = class_tasks[0]
    clf = meta.adapt(X[:10], y[:10])
    assert "1.running_mean" in clf.params_
    np.testing.assert_allclose(clf.predict_proba(X[10:11]), clf.predict_proba(X[10:])[:1],
                               rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("cls", [MAMLClassifier, ReptileRegressor], ids=lambda c: c.__name__)
def test_the_same_random_state_draws_the_same_dropout_masks(cls, class_tasks, sine_tasks):
    # the masks come from torch's generator, seeded by the fit whatever its state
    # before; the caller's generator is left as it was
    fits = []
    for outside in (1, 2):
        meta, tasks = meta_for(cls, class_tasks, sine_tasks, early_stopping=False)
        torch.manual_seed(outside)
        state = torch.get_rng_state()
        fits.append(meta.fit(tasks))
        assert torch.equal(torch.get_rng_state(), state)
    a, b = (dict(m.module_.state_dict()) for m in fits)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.allclose(a["0.weight"], meta.module[0].weight)  # it did meta-train
    X, y = tasks[0]
    np.testing.assert_array_equal(fits[0].adapt(X[:10], y[:10]).predict(X[10:]),
                                  fits[1].adapt(X[:10], y[:10]).predict(X[10:]))
    assert fits[0].score(tasks[:3]) == fits[1].score(tasks[:3])


def test_dropout_changes_meta_training(class_tasks):
    """Dropout is really on in meta-training: p=0 and p=0.5 end with other weights."""
    nets = [bn_dropout_net(10, 2, p=p) for p in (0.0, 0.5)]
    a, b = (small(MAMLClassifier, module=n, inner_steps=1, early_stopping=False)
            .fit(class_tasks) for n in nets)
    assert not torch.allclose(a.module_[0].weight, b.module_[0].weight)


def test_a_batchnorm_estimator_and_its_adapted_one_save_and_load(class_tasks, tmp_path):
    meta = small(MAMLClassifier, module=bn_dropout_net(10, 2), inner_steps=1).fit(class_tasks)
    X, y = class_tasks[0]
    clf = meta.adapt(X[:10], y[:10])
    save(clf, tmp_path / "clf.skm")
    np.testing.assert_array_equal(load(tmp_path / "clf.skm", module=bn_dropout_net(10, 2))
                                  .predict_proba(X[10:]), clf.predict_proba(X[10:]))
    save(meta, tmp_path / "meta.skm")
    loaded = load(tmp_path / "meta.skm", module=bn_dropout_net(10, 2, seed=5))
    np.testing.assert_array_equal(loaded.adapt(X[:10], y[:10]).predict_proba(X[10:]),
                                  clf.predict_proba(X[10:]))


def test_dropout_alone_is_off_at_predict_whatever_mode_fit_left_it_in(class_tasks):
    # before: without meta-validation skorch leaves the module in training mode, and
    # adapt and predict ran with dropout on (each call other predictions), with masks
    # from whatever state torch's generator was in
    def net():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(10, 8), torch.nn.ReLU(),
                                   torch.nn.Dropout(0.5), torch.nn.Linear(8, 2))

    fits = []
    for outside in (1, 2):
        meta = small(MAMLClassifier, module=net(), inner_steps=1, early_stopping=False)
        torch.manual_seed(outside)
        fits.append(meta.fit(class_tasks))
    assert torch.equal(fits[0].module_[0].weight, fits[1].module_[0].weight)
    X, y = class_tasks[0]
    clf = fits[0].adapt(X[:10], y[:10])
    np.testing.assert_array_equal(clf.predict_proba(X[10:]), clf.predict_proba(X[10:]))
    again = fits[0].adapt(X[:10], y[:10])
    np.testing.assert_array_equal(again.predict_proba(X[10:]), clf.predict_proba(X[10:]))
    assert fits[0].score(class_tasks[:2]) == fits[0].score(class_tasks[:2])


@pytest.mark.parametrize("cls", [MAMLClassifier, ANILClassifier, ProtoNetClassifier],
                         ids=lambda c: c.__name__)
def test_meta_validation_predicts_as_adapt_does(cls, class_tasks):
    """Outside meta-training the query pass normalises by the frozen support
    statistics, so early stopping watches what adapt and score deliver."""
    meta = small(cls, module=bn_dropout_net(10, 2)).fit(class_tasks)
    algorithm, learner = meta.__sklmeta_algorithm__(), meta.net_.module_
    torch.manual_seed(3)
    xs, xq = torch.randn(4, 6, 10), torch.randn(4, 5, 10)
    ys = torch.tensor([0, 1] * 3).expand(4, -1)
    loss = EpisodeLoss("classification", 2)
    with torch.no_grad():
        validated = algorithm.query_outputs(learner, xs, ys, xq, loss=loss, training=False)
    _, loop = algorithm.predictor(learner)
    predicted = loop.predict_many(algorithm.adapt(learner, xs, ys, loss=loss), xq)
    torch.testing.assert_close(validated, predicted, rtol=1e-4, atol=1e-5)
    # one query row at a time: the same outputs
    single = loop.predict_many(algorithm.adapt(learner, xs, ys, loss=loss), xq[:, :1])
    torch.testing.assert_close(single, predicted[:, :1], rtol=1e-4, atol=1e-5)


class _CountsCalls(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        self.calls += 1
        return x


def test_a_module_that_updates_a_buffer_in_place_gets_a_named_error(class_tasks):
    # before: torch.func's raw RuntimeError about a captured tensor
    net = torch.nn.Sequential(torch.nn.Linear(10, 8), _CountsCalls(), torch.nn.ReLU(),
                              torch.nn.Linear(8, 2))
    with pytest.raises(TypeError, match=r"in place in its forward pass.*_CountsCalls"):
        small(MAMLClassifier, module=net, inner_steps=1).fit(class_tasks)


def test_batchnorm_on_one_support_row_gets_a_named_error(sine_tasks):
    # before the fix meta-training crashed; then torch's bare "Expected more than 1
    # value per channel when training"
    meta = small(MAMLRegressor, module=bn_dropout_net(1, 1), inner_steps=1).fit(sine_tasks)
    X, y = sine_tasks[0]
    with pytest.raises(ValueError, match="BatchNorm.*needs at least 2 of them; got 1"):
        meta.adapt(X[:1], y[:1])
    # once adapted on two or more rows, one row predicts (frozen statistics)
    assert meta.adapt(X[:2], y[:2]).predict(X[2:3]).shape == (1,)
