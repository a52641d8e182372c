"""The meta-step inside fit(): no host synchronisation of its own, divergence still caught."""

from unittest import mock

import numpy as np
import pytest
import torch
from conftest import NaNGradient, small_classifier, small_regressor
from skorch import NeuralNet

from sklmeta import ProtoNetClassifier, TaskSplitter
from sklmeta._core import EpisodeLoss
from sklmeta._core.algorithms import maml as MAML
from sklmeta._episodes import EpisodeSampler
from sklmeta._training import EpisodeTensors, MetaNet, MetaTrainingDiverged


class HostReads:
    """Counts tensor-to-host reads (``bool``, ``item``, ``float``, ``int``, ``tolist``)
    made inside ``MetaNet.train_step_single``, i.e. by sklmeta's own meta-step."""

    names = ("__bool__", "item", "__float__", "__int__", "tolist")

    def __init__(self):
        self.inside, self.reads, self.steps = False, 0, 0

    def __enter__(self):
        self.patches = [mock.patch.object(torch.Tensor, name, self._counting(name))
                        for name in self.names]
        original = MetaNet.train_step_single

        def step(net, *args, **kwargs):
            self.inside, self.steps = True, self.steps + 1
            try:
                return original(net, *args, **kwargs)
            finally:
                self.inside = False

        self.patches.append(mock.patch.object(MetaNet, "train_step_single", step))
        for p in self.patches:
            p.start()
        return self

    def __exit__(self, *exc):
        for p in self.patches:
            p.stop()

    def _counting(self, name):
        original = getattr(torch.Tensor, name)

        def read(tensor, *args, **kwargs):
            if self.inside:
                self.reads += 1
            return original(tensor, *args, **kwargs)

        return read


@pytest.mark.parametrize("make", [small_regressor, small_classifier])
def test_a_meta_step_reads_nothing_back_to_the_host(make, sine_tasks, class_tasks):
    # The finiteness check used to read a flag back every meta-step (a device sync
    # on a GPU); it now folds into a device flag that the epoch reads once.
    tasks = sine_tasks if make is small_regressor else class_tasks
    meta = make(max_epochs=3, early_stopping=False)
    with HostReads() as reads:
        meta.fit(tasks)
    assert reads.steps == 3 * 4  # 16 episodes an epoch, 4 a meta-batch
    assert reads.reads == 0


def test_same_weights_as_a_step_by_step_check(sine_tasks):
    # The device flag changes nothing on a finite run: bit for bit the weights of
    # the same fit checked on the host every step.
    fused = small_regressor(max_epochs=3, early_stopping=False).fit(sine_tasks)
    with mock.patch("sklmeta._training._FiniteWatch.of", return_value=None):
        checked = small_regressor(max_epochs=3, early_stopping=False).fit(sine_tasks)
    for a, b in zip(fused.module_.parameters(), checked.module_.parameters()):
        assert torch.equal(a, b)


def test_a_non_finite_gradient_under_a_finite_loss_is_caught(class_tasks):
    splitter = TaskSplitter(n_way=2, k_shot=3, n_query=3, n_tasks=16, random_state=0)
    meta = ProtoNetClassifier(task_splitter=splitter, module=NaNGradient(), max_epochs=3,
                              early_stopping=False, random_state=0)
    with pytest.raises(MetaTrainingDiverged,
                       match=r"epoch 1, meta-step 1 of the epoch: the meta-gradient is not "
                             r"finite \(loss [0-9.]+\)"):
        meta.fit(class_tasks)
    # every later step of the epoch was skipped: weights, and the optimizer's state
    assert torch.equal(meta.module_.linear.weight, meta.module.linear.weight)
    state = meta.net_.optimizer_.state_dict()["state"]
    assert all(float(s["step"]) == 0 for s in state.values())
    assert not hasattr(meta.net_.optimizer_, "found_inf")


def test_divergence_in_a_later_step_keeps_that_steps_weights(sine_tasks):
    # NaN targets from the third meta-step on: the weights after exactly two steps
    calls = []

    def poison(net, batch, **kwargs):
        calls.append(1)
        if len(calls) >= 3:
            Xi, yq = batch
            batch = (Xi, torch.full_like(yq, float("nan")))
        return original(net, batch, **kwargs)

    original = MetaNet.train_step_single
    meta = small_regressor(max_epochs=1, early_stopping=False)
    with mock.patch.object(MetaNet, "train_step_single", poison), \
            pytest.raises(MetaTrainingDiverged, match=r"epoch 1, meta-step 3 .* meta-loss is "
                                                      r"not finite \(loss nan\)"):
        meta.fit(sine_tasks)
    diverged = [p.detach().clone() for p in meta.module_.parameters()]
    two = small_regressor(max_epochs=1, early_stopping=False,
                          task_splitter=TaskSplitter(k_shot=5, n_query=5, n_tasks=8,
                                                     random_state=0)).fit(sine_tasks)
    # same seeds, same first two meta-batches: the same weights
    assert len(two.history_[-1, "batches"]) == 2
    for a, b in zip(diverged, two.module_.parameters()):
        assert torch.equal(a, b)


def test_a_step_outside_an_epoch_is_checked_at_once():
    # train_step_single called on its own (no epoch, no device flag): checked on the spot
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    algorithm = MAML(inner_lr=0.1, inner_steps=1, adapt_steps=1)
    net = MetaNet(algorithm.learner(model, 3), criterion=EpisodeLoss,
                  criterion__task="regression", algorithm=algorithm, train_split=None)
    net.initialize()
    xs, ys, xq = torch.randn(2, 5, 3), torch.randn(2, 5), torch.randn(2, 5, 3)
    yq = torch.full((2, 5), float("inf"))
    with pytest.raises(MetaTrainingDiverged, match=r"meta-step 1 .* meta-loss is not finite "
                                                   r"\(loss inf\)"):
        net.train_step_single(({"xs": xs, "ys": ys, "xq": xq}, yq))
    net.optimizer_.zero_grad()
    out = net.train_step_single(({"xs": xs, "ys": ys, "xq": xq}, torch.zeros(2, 5)))
    assert np.isfinite(out["loss"].item())



def test_meta_batches_drawn_at_once_are_those_drawn_one_at_a_time():
    y = [np.repeat(np.arange(4), 10), np.repeat(np.arange(3), 12)]
    sampler = EpisodeSampler(y, [40, 36], n_way=2, k_shot=2, n_query=3)
    tensors = EpisodeTensors([torch.randn(40, 3), torch.randn(36, 3)], y, sampler,
                             "classification", class_index=np.array([[0, 1, 2, 3], [0, 1, 2, 0]]))
    one, many = np.random.RandomState(7), np.random.RandomState(7)
    singly = [tensors.draw(one, n) for n in (5, 5, 2)]
    at_once = list(tensors.draw_many(many, [5, 5, 2]))
    assert len(at_once) == 3
    for a, b in zip(singly, at_once):
        assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert one.randint(10**9) == many.randint(10**9)  # the stream continues alike
    assert tensors.chunk(4) > 1  # small episodes: several meta-batches a draw


def test_a_fit_draws_each_epochs_meta_batches_in_one_go(sine_tasks):
    # 16 episodes of 4: one draw an epoch, not four; and the episodes as before
    meta = small_regressor(max_epochs=2, early_stopping=False)
    with mock.patch.object(EpisodeTensors, "draw_many", autospec=True,
                           side_effect=EpisodeTensors.draw_many) as drawn:
        meta.fit(sine_tasks)
    assert drawn.call_count == 2
    assert [len(c.args[2]) for c in drawn.call_args_list] == [4, 4]


class EpochHostReads(HostReads):
    """Counts tensor-to-host reads anywhere in a training epoch (skorch's loop included)."""

    def __enter__(self):
        super().__enter__()
        self.epoch = False
        original = MetaNet.run_single_epoch

        def epoch(net, iterator, training, *args, **kwargs):
            self.epoch = training
            try:
                return original(net, iterator, training, *args, **kwargs)
            finally:
                self.epoch = False

        patch = mock.patch.object(MetaNet, "run_single_epoch", epoch)
        patch.start()
        self.patches.append(patch)
        return self

    def _counting(self, name):
        original = getattr(torch.Tensor, name)

        def read(tensor, *args, **kwargs):
            if self.epoch:
                self.reads += 1
            return original(tensor, *args, **kwargs)

        return read


def test_a_training_epoch_reads_the_losses_back_once(sine_tasks):
    # skorch records step["loss"].item() at every meta-step (a device sync per step on a
    # GPU); the losses are now read in one transfer as the epoch ends: the epoch's host
    # reads do not grow with its meta-steps, and the history holds skorch's floats
    reads, histories = [], []
    for n_tasks in (8, 32):  # 2 and 8 meta-steps an epoch
        splitter = TaskSplitter(k_shot=5, n_query=5, n_tasks=n_tasks, random_state=0)
        meta = small_regressor(max_epochs=2, early_stopping=False, task_splitter=splitter)
        with EpochHostReads() as counted:
            meta.fit(sine_tasks)
        reads.append(counted.reads)
        histories.append(meta.history_)
    assert reads[0] == reads[1] <= 2 * 2  # at most two reads an epoch, whatever its steps
    losses = histories[1][:, "batches", :, "train_loss"]
    assert all(type(v) is float for epoch in losses for v in epoch)
    assert histories[1][:, "train_loss"] == pytest.approx([np.mean(e) for e in losses])
    assert histories[1][0, "batches", 0, "train_batch_size"] == 4


def test_a_callback_at_batch_end_sees_each_loss_as_a_float(sine_tasks):
    # a callback that runs at every batch end may read the loss: skorch's own per-step
    # float then, and the same history as the fit that reads the losses at epoch end
    from skorch.callbacks import Callback

    class Seen(Callback):
        def on_batch_end(self, net, **kwargs):
            seen.append(net.history[-1, "batches", -1, "train_loss"])

    seen = []
    watched = small_regressor(max_epochs=2, early_stopping=False,
                              callbacks=[("seen", Seen())]).fit(sine_tasks)
    plain = small_regressor(max_epochs=2, early_stopping=False).fit(sine_tasks)
    assert len(seen) == 8 and all(type(v) is float for v in seen)
    assert seen == [v for e in plain.history_[:, "batches", :, "train_loss"] for v in e]
    assert watched.history_[:, "train_loss"] == plain.history_[:, "train_loss"]


def test_the_epoch_calls_the_batch_hooks_skorchs_notify_would(sine_tasks, monkeypatch):
    # the epoch that reads its losses at its end calls the net's and the callbacks'
    # batch hooks itself, the empty ones left out: the same calls, arguments and order
    # as skorch's notify (tried with a subclass whose notify is its own), once a step
    from skorch.callbacks import Callback

    class Begin(Callback):
        def on_batch_begin(self, net, batch=None, training=None, **kwargs):
            calls.append((self.name, training, len(batch[1]), sorted(kwargs),
                          len(net.history[-1]["batches"])))

    class Notifying(MetaNet):
        def notify(self, method_name, **cb_kwargs):
            notified.append(method_name)
            super().notify(method_name, **cb_kwargs)

    def fit():
        callbacks = [("first", Begin()), ("second", Begin())]
        for (name, cb) in callbacks:
            cb.name = name
        return small_regressor(max_epochs=2, early_stopping=False,
                               callbacks=callbacks).fit(sine_tasks)

    calls, notified = [], []
    lean = fit()
    lean_calls, calls = calls, []
    monkeypatch.setattr("sklmeta._training.MetaNet._batch_hooks",
                        lambda self, name: [lambda net, **kw: NeuralNet.notify(net, name, **kw)])
    notifying = fit()
    assert lean_calls == calls  # as notify calls them, in the callbacks' order
    assert [c[0] for c in calls[:2]] == ["first", "second"] and len(calls) == 2 * 8
    assert all(c[1] is True and c[2] == 4 and c[3] == [] for c in calls)
    assert [c[4] for c in calls[:4]] == [1, 1, 2, 2]  # after the net's own: a new batch row
    assert lean.history_[:, "train_loss"] == notifying.history_[:, "train_loss"]
    monkeypatch.undo()

    net = Notifying(module=torch.nn.Linear(1, 1), criterion=torch.nn.MSELoss)
    net.initialize()
    net.history.new_epoch()
    hooks = net._batch_hooks("on_batch_begin")
    assert len(hooks) == 1
    hooks[0](net, batch=None, training=True)
    assert notified == ["on_batch_begin"]


def test_the_mode_is_set_on_every_module_only_where_one_differs(sine_tasks, monkeypatch):
    # the walk over the module trees is skipped where every module is in the mode
    # already, and not where one is not: a submodule a callback put in eval mode is
    # trained again, as skorch's every-step walk would
    import pickle

    meta = small_regressor(max_epochs=1).fit(sine_tasks)
    net, calls = meta.net_, []
    walk = torch.nn.Module.train
    monkeypatch.setattr(torch.nn.Module, "train",
                        lambda self, mode=True: calls.append(mode) or walk(self, mode))
    net._set_training(True)  # fit ended in evaluation mode: this walks
    assert calls
    calls.clear()
    net._set_training(True)
    assert not calls
    meta.module_[0].eval()
    net._set_training(True)
    assert calls and all(m.training for m in meta.module_.modules())
    net._set_training(False)
    assert not any(m.training for m in meta.module_.modules())
    assert "_mode_cache" not in pickle.loads(pickle.dumps(net)).__dict__
