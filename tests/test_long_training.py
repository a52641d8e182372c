"""Long meta-trainings: divergence, Ctrl-C, resuming from a checkpoint."""

from functools import partial

import numpy as np
import pytest
import torch
from conftest import same_weights, small_classifier, small_regressor, weights
from skorch.callbacks import Callback, Checkpoint, LoadInitState

from sklmeta import MetaSGDClassifier, ProtoNetClassifier, ReptileRegressor, TaskSplitter
from sklmeta._training import MetaTrainingDiverged


def diverging_reptile():
    # measured: 10 steps of lr 0.06 with outer step 1.0 blow up at epoch 4, meta-step 2,
    # on the sinusoids' raw targets (scaled ones do not blow up)
    splitter = TaskSplitter(k_shot=5, n_query=5, n_tasks=16, random_state=0)
    return ReptileRegressor(task_splitter=splitter, hidden_layer_sizes=(16,), inner_lr=0.06,
                            meta_lr=1.0, max_epochs=20, meta_batch_size=4, early_stopping=False,
                            standardize=False, random_state=0)


def test_divergence_names_the_step_and_keeps_the_last_finite_weights(sine_tasks):
    meta = diverging_reptile()
    with pytest.raises(MetaTrainingDiverged,
                       match=r"epoch 4, meta-step 2 .* try a smaller inner_lr \(now 0.06\) or "
                             r"meta_lr \(now 1.0\)"):
        meta.fit(sine_tasks)
    assert isinstance(MetaTrainingDiverged("x"), FloatingPointError)
    last = weights(meta)
    assert all(torch.isfinite(p).all() for p in last)
    start = weights(diverging_reptile().set_params(max_epochs=0).fit(sine_tasks))
    assert not same_weights(last, start)  # trained for 3 epochs and a step, then stopped
    assert len(meta.history_) == 4 and meta.best_epoch_ == 4
    X, y = sine_tasks[0]
    assert np.isfinite(meta.adapt(X[:5], y[:5]).predict(X[5:])).all()


class NaNEmbedding(torch.nn.Module):
    """An embedding whose output is NaN from the first step: log of negative values."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(10, 4)

    def forward(self, x):
        return torch.log(self.linear(x))


def test_divergence_advice_without_an_inner_loop(class_tasks):
    splitter = TaskSplitter(n_way=2, k_shot=3, n_query=3, n_tasks=16, random_state=0)
    meta = ProtoNetClassifier(task_splitter=splitter, module=NaNEmbedding(), max_epochs=3,
                              early_stopping=False, random_state=0)
    with pytest.raises(MetaTrainingDiverged, match=r"epoch 1, meta-step 1 .* smaller meta_lr"):
        meta.fit(class_tasks)
    # no step was applied: the weights are the module's own
    assert torch.equal(meta.module_.linear.weight, meta.module.linear.weight)


class InterruptAt(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.parametrize("early_stopping", [False, "auto"])
def test_ctrl_c_keeps_the_weights_reached_so_far(class_tasks, early_stopping):
    meta = small_classifier(max_epochs=10, n_iter_no_change=10, early_stopping=early_stopping,
                            callbacks=[InterruptAt(3)]).fit(class_tasks)
    assert len(meta.history_) == 3
    reached = small_classifier(max_epochs=3, n_iter_no_change=10,
                               early_stopping=early_stopping).fit(class_tasks)
    # without early stopping, exactly the weights of epoch 3; with it, the best so far
    assert same_weights(weights(meta), weights(reached))
    X, y = class_tasks[0]
    assert meta.adapt(X[:10], y[:10]).predict(X[10:]).shape == (len(y) - 10,)


def test_a_regressor_interrupted_after_one_epoch_is_usable(sine_tasks):
    meta = small_regressor(max_epochs=5, callbacks=[InterruptAt(1)]).fit(sine_tasks)
    assert len(meta.history_) == 1
    assert np.isfinite(meta.score(sine_tasks))


def checkpointing(dirname):
    """Save every epoch; at train begin, load the last save if there is one."""
    return [Checkpoint(dirname=str(dirname), monitor=None),
            LoadInitState(Checkpoint(dirname=str(dirname)))]


def tiny_meta_sgd(**params):
    splitter = TaskSplitter(n_way=2, k_shot=3, n_query=3, n_tasks=16, random_state=0)
    return MetaSGDClassifier(**{**dict(task_splitter=splitter, hidden_layer_sizes=(16,),
                                       meta_batch_size=4, random_state=0), **params})


@pytest.mark.parametrize("make", [small_regressor, tiny_meta_sgd],
                         ids=["MAMLRegressor", "MetaSGDClassifier"])
def test_resuming_from_a_checkpoint_equals_an_uninterrupted_run(make, class_tasks, sine_tasks,
                                                                 tmp_path):
    tasks = sine_tasks if make is small_regressor else class_tasks
    full = make(max_epochs=6, early_stopping=False).fit(tasks)
    first = make(max_epochs=3, early_stopping=False, callbacks=checkpointing(tmp_path)).fit(tasks)
    # a new process would do the same: max_epochs counts the epochs of this call
    resumed = make(max_epochs=3, early_stopping=False,
                   callbacks=checkpointing(tmp_path)).fit(tasks)
    assert len(first.history_) == 3 and len(resumed.history_) == 6
    assert resumed.history_[:, "epoch"] == list(range(1, 7))
    assert resumed.history_[:, "train_loss"] == full.history_[:, "train_loss"]
    # every meta-learned tensor, Meta-SGD's step sizes included, and the optimizer's state
    a, b = full.net_.module_.state_dict(), resumed.net_.module_.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not same_weights(weights(first), weights(full))
    adam_a, adam_b = (m.net_.optimizer_.state_dict()["state"] for m in (full, resumed))
    assert all(torch.equal(adam_a[i][k], adam_b[i][k]) for i in adam_a for k in adam_a[i])


def test_resuming_with_early_stopping_starts_from_the_loaded_weights(class_tasks, tmp_path):
    make = partial(small_classifier, max_epochs=3, n_iter_no_change=10)
    first = make(callbacks=checkpointing(tmp_path)).fit(class_tasks)
    resumed = make(callbacks=checkpointing(tmp_path)).fit(class_tasks)
    assert len(first.history_) == 3 and len(resumed.history_) == 6
    # the score to beat is the loaded weights' (epoch 3), not the random start's
    assert resumed.initial_valid_score_ == first.history_[-1, "valid_acc"]
    assert 3 <= resumed.best_epoch_ <= 6


class RecordEpisodeEpoch(Callback):
    def __init__(self):
        self.seen = []

    def on_epoch_end(self, net, dataset_train=None, **kwargs):
        self.seen.append(dataset_train.epoch)


@pytest.mark.parametrize("early_stopping", [False, "auto"])
def test_each_epoch_draws_its_episodes_by_its_number(class_tasks, tmp_path, early_stopping):
    def epochs_seen(max_epochs, callbacks):
        meta = small_classifier(max_epochs=max_epochs, n_iter_no_change=10,
                                early_stopping=early_stopping,
                                callbacks=[RecordEpisodeEpoch(), *callbacks]).fit(class_tasks)
        return dict(meta.net_.callbacks_)["RecordEpisodeEpoch"].seen

    assert epochs_seen(3, []) == [1, 2, 3]
    assert epochs_seen(2, checkpointing(tmp_path)) == [1, 2]  # nothing to load yet
    assert epochs_seen(2, checkpointing(tmp_path)) == [3, 4]  # resumed after epoch 2
