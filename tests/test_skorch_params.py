"""skorch's prefixed parameters (``optimizer__*``, ``compile__*``) on every meta-estimator.

They are accepted as keywords, stored verbatim, shown by ``get_params``, set by
``set_params`` and grid searches, kept by ``clone``, pickle and
``sklmeta.save``/``load``, and reach the torch optimizer skorch builds.
"""

import pickle
from inspect import Parameter, signature

import numpy as np
import pytest
import torch
from conftest import small
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, GroupKFold

import sklmeta
from sklmeta import MAMLRegressor, ProtoNetClassifier, ReptileRegressor
from sklmeta.estimators import META_ESTIMATORS


@pytest.mark.parametrize("cls", META_ESTIMATORS, ids=lambda c: c.__name__)
def test_every_meta_estimator_takes_optimizer_params(cls):
    meta = cls(optimizer__weight_decay=0.25, compile__backend="aot_eager")
    assert meta.optimizer__weight_decay == 0.25  # stored verbatim, as an attribute
    params = meta.get_params(deep=False)
    assert params["optimizer__weight_decay"] == 0.25
    assert params["compile__backend"] == "aot_eager"
    assert params["compile"] is False
    twin = clone(meta)
    assert twin.get_params(deep=False)["optimizer__weight_decay"] == 0.25
    assert twin.set_params(optimizer__weight_decay=0.5) is twin
    assert twin.optimizer__weight_decay == 0.5 and meta.optimizer__weight_decay == 0.25
    assert "optimizer__weight_decay=0.25" in repr(meta)
    # set_params on an estimator built without it
    fresh = cls().set_params(optimizer__eps=1e-6)
    assert fresh.get_params()["optimizer__eps"] == 1e-6


@pytest.mark.parametrize("cls", META_ESTIMATORS, ids=lambda c: c.__name__)
def test_an_unknown_keyword_is_a_type_error_naming_it(cls):
    with pytest.raises(TypeError, match="'weight_decay'.*optimizer__<name>"):
        cls(weight_decay=0.1)
    with pytest.raises(ValueError, match="Invalid parameter 'nope'"):
        cls().set_params(nope=1)


@pytest.mark.parametrize("cls", META_ESTIMATORS, ids=lambda c: c.__name__)
def test_init_and_set_params_do_not_validate_the_named_parameters(cls):
    # scikit-learn's check_do_not_raise_errors_in_init_or_set_params, less **kwargs
    # (the check passes the name "kwargs" itself; test_common.py expects it to fail)
    names = [p.name for p in signature(cls).parameters.values()
             if p.kind is not Parameter.VAR_KEYWORD]
    assert "compile" in names
    for value in [-1, 3.0, "helloworld", np.array([1.0, 4.0]), [1], {}, []]:
        params = {name: value for name in names}
        cls(**params).set_params(**params)


def test_weight_decay_reaches_the_torch_optimizer(sine_tasks):
    meta = small(MAMLRegressor, optimizer__weight_decay=0.05, optimizer__betas=(0.8, 0.9))
    meta.fit(sine_tasks)
    groups = meta.net_.optimizer_.param_groups
    assert isinstance(meta.net_.optimizer_, torch.optim.Adam)
    assert [g["weight_decay"] for g in groups] == [0.05]
    assert groups[0]["betas"] == (0.8, 0.9)
    assert groups[0]["lr"] == meta.meta_lr and groups[0]["fused"]  # the defaults stay
    # and it changes what is learned
    plain = small(MAMLRegressor).fit(sine_tasks)
    decayed = small(MAMLRegressor, optimizer__weight_decay=10.0).fit(sine_tasks)
    w = [p.detach() for p in decayed.module_.parameters()]
    w0 = [p.detach() for p in plain.module_.parameters()]
    assert not all(torch.equal(a, b) for a, b in zip(w, w0))


def test_reptile_sgd_takes_momentum_and_the_user_overrides_a_default(sine_tasks):
    meta = small(ReptileRegressor, optimizer__momentum=0.5, optimizer__fused=False)
    meta.fit(sine_tasks)
    group = meta.net_.optimizer_.param_groups[0]
    assert isinstance(meta.net_.optimizer_, torch.optim.SGD)
    assert group["momentum"] == 0.5 and not group["fused"]


def test_set_params_after_construction_reaches_the_next_fit(class_tasks):
    meta = small(ProtoNetClassifier)
    meta.set_params(optimizer__weight_decay=0.125).fit(class_tasks)
    assert meta.net_.optimizer_.param_groups[0]["weight_decay"] == 0.125


def test_optimizer_lr_is_refused_in_favour_of_meta_lr(sine_tasks):
    meta = small(MAMLRegressor, optimizer__lr=0.1)
    with pytest.raises(ValueError, match="optimizer__lr=0.1.*set meta_lr instead"):
        meta.fit(sine_tasks)


def test_grid_search_over_weight_decay(sine_tasks):
    X, y, groups = sklmeta.stack_tasks(sine_tasks[:8])
    grid = GridSearchCV(small(MAMLRegressor, max_epochs=1, early_stopping=False),
                        {"optimizer__weight_decay": [0.0, 0.5]}, cv=GroupKFold(n_splits=2))
    grid.fit(X, y, groups=groups)
    assert list(grid.cv_results_["param_optimizer__weight_decay"]) == [0.0, 0.5]
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()
    best = grid.best_estimator_
    assert best.optimizer__weight_decay == grid.best_params_["optimizer__weight_decay"]
    assert (best.net_.optimizer_.param_groups[0]["weight_decay"]
            == grid.best_params_["optimizer__weight_decay"])


def test_save_load_and_pickle_keep_them(sine_tasks, tmp_path):
    meta = small(MAMLRegressor, hidden_layer_sizes=(8,), optimizer__weight_decay=0.05,
                 compile__mode="default").fit(sine_tasks)
    path = tmp_path / "meta.pt"
    sklmeta.save(meta, path)
    for loaded in (sklmeta.load(path), pickle.loads(pickle.dumps(meta))):
        assert loaded.optimizer__weight_decay == 0.05
        assert loaded.get_params(deep=False)["compile__mode"] == "default"
        assert loaded.net_.optimizer_.param_groups[0]["weight_decay"] == 0.05
        X, y = sine_tasks[0]
        np.testing.assert_array_equal(loaded.adapt(X[:5], y[:5]).predict(X[5:]),
                                      meta.adapt(X[:5], y[:5]).predict(X[5:]))
