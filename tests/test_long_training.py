"""Long meta-trainings: divergence, Ctrl-C."""

import numpy as np
import pytest
import torch
from conftest import same_weights, small_classifier, small_regressor, weights
from skorch.callbacks import Callback

from sklmeta import ProtoNetClassifier, ReptileRegressor, TaskSplitter
from sklmeta._training import MetaTrainingDiverged


def diverging_reptile():
    # measured: 10 steps of lr 0.06 with outer step 1.0 blow up at epoch 4, meta-step 2
    splitter = TaskSplitter(k_shot=5, n_query=5, n_tasks=16, random_state=0)
    return ReptileRegressor(task_splitter=splitter, hidden_layer_sizes=(16,), inner_lr=0.06,
                            meta_lr=1.0, max_epochs=20, meta_batch_size=4, early_stopping=False,
                            random_state=0)


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
