"""Adaptation and scoring (sklmeta._adaptation): thread safety, batching, one path."""

import joblib
import numpy as np
import pytest
import torch
from conftest import same_weights, small_classifier, weights
from sklearn.model_selection import cross_val_score

import sklmeta._adaptation as adaptation
from sklmeta import AdaptedClassifier, TaskSplitter, stack_tasks


def silu_module(n_features, n_out=2):
    """Not a plain MLP: adapted and predicted through torch.func's functional_call."""
    return torch.nn.Sequential(torch.nn.Linear(n_features, 16), torch.nn.SiLU(),
                               torch.nn.Linear(16, n_out))


@pytest.mark.parametrize("custom", [False, True], ids=["batched-mlp", "torch.func"])
def test_threaded_adaptation_and_prediction_equal_the_serial_result(class_tasks, custom):
    # functional_call swaps parameters into the shared module: unguarded, threads
    # predicted with other episodes' weights and left them in the meta-estimator.
    torch.manual_seed(0)
    extra = {"module": silu_module(class_tasks[0][0].shape[1])} if custom else {}
    meta = small_classifier(**extra).fit(class_tasks[:8])
    assert meta.inner_loop_ == ("torch.func" if custom else "batched-mlp")
    before = weights(meta)
    X, y, groups = stack_tasks(class_tasks[8:])
    cv = list(TaskSplitter(n_way=2, k_shot=3, n_query=3, n_tasks=64, random_state=0).split(
        X, y, groups))
    serial = cross_val_score(AdaptedClassifier(meta), X, y, cv=cv)
    with joblib.parallel_backend("threading", n_jobs=4):
        threaded = cross_val_score(AdaptedClassifier(meta), X, y, cv=cv, n_jobs=4)
    np.testing.assert_array_equal(threaded, serial)
    assert same_weights(before, weights(meta))


def test_score_in_batches_equals_score_in_one_batch(class_tasks, monkeypatch):
    meta = small_classifier().fit(class_tasks[:8])
    X, y, groups = stack_tasks(class_tasks[8:])
    whole = meta.score(X, y, groups)
    monkeypatch.setattr(adaptation, "SCORE_BATCH", 3)
    assert meta.score(X, y, groups) == whole


def test_a_rows_prediction_is_computed_in_float64(class_tasks):
    meta = small_classifier().fit(class_tasks[:8])
    X, y = class_tasks[9]
    clf = meta.adapt(X[:10], y[:10])
    assert clf._outputs(X[10:]).dtype == torch.float64
