"""``compile=True``: the meta-step through torch.compile, pinned to the eager one.

The fast tests compile with the ``aot_eager`` backend (dynamo's graph capture and
AOTAutograd's forward and backward graphs, run by eager kernels): the same graph
inductor would receive, without a C++ build. A slow test runs inductor itself.
"""

import pickle
import warnings

import numpy as np
import pytest
import torch
from conftest import NaNGradient, small
from torch._dynamo.utils import counters

from sklmeta import ANILClassifier, MAMLRegressor, MetaSGDClassifier, ReptileRegressor, TaskSplitter
from sklmeta._core import EpisodeLoss, algorithms
from sklmeta._core.compiled import CompiledMetaLoss, CompileWarning
from sklmeta.datasets import make_sinusoid_tasks

FAST = {"compile": True, "compile__backend": "aot_eager"}


def assert_same_weights(a, b):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)


def _batch(seed, tasks=6, k=5):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(tasks, 2 * k, 1, generator=g) * 10 - 5
    y = torch.rand(tasks, 1, generator=g) * 5 * torch.sin(x[..., 0] - torch.rand(tasks, 1,
                                                                             generator=g))
    return x[:, :k], y[:, :k], x[:, k:], y[:, k:]


@pytest.mark.parametrize("custom", [False, True], ids=["batched-mlp", "torch.func"])
@pytest.mark.parametrize("gradients", [True, False], ids=["grad-compiled", "forward-compiled"])
def test_the_compiled_meta_gradient_is_the_eager_one(custom, gradients):
    # second-order MAML, two inner steps: the meta-loss and every meta-gradient, compiled
    # whole (grad_and_value: one graph, no backward) or forward only (then back-propagated)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    if custom:  # not a plain MLP: the generic torch.func inner loop (grad under vmap)
        net = torch.nn.Sequential(*net, torch.nn.Identity())
    algorithm = algorithms.maml(inner_lr=0.05, inner_steps=2, adapt_steps=2)
    learner = algorithm.learner(net, 1)
    assert learner.inner_loop.name == ("torch.func" if custom else "batched-mlp")
    loss = EpisodeLoss("regression")
    compiled = CompiledMetaLoss(algorithm, learner, loss, {"backend": "aot_eager"},
                                gradients=gradients)
    for seed in range(3):
        batch = _batch(seed)
        want, _, want_out = algorithm.meta_loss(learner, *batch, loss=loss)
        want_grads = torch.autograd.grad(want, list(learner.parameters()))
        got, got_loss, got_out, got_grads = compiled(*batch)
        if gradients:
            assert [p for p, _ in got_grads] == list(learner.parameters())
            assert not got.requires_grad  # no graph left: nothing to back-propagate
            got_grads = [g for _, g in got_grads]
        else:
            assert got_grads is None
            got_grads = torch.autograd.grad(got, list(learner.parameters()))
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got_loss, want, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got_out, want_out, rtol=1e-5, atol=1e-6)
        for g, w in zip(got_grads, want_grads, strict=True):
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)
    assert compiled.failure is None and compiled.seconds > 0


def _count_optimizer_steps(monkeypatch):
    calls = []
    step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step",
                        lambda self, *a, **k: calls.append(1) or step(self, *a, **k))
    return calls


def test_a_compiled_fit_learns_the_eager_weights_without_recompiling(monkeypatch):
    # max_epochs=3 of 10 episodes in meta-batches of 4: 4, 4 and a ragged 2 per epoch.
    # The six full meta-batches run as one graph each, Adam's update in it; the three
    # ragged ones eagerly, through torch's Adam, on the same optimizer state
    tasks = make_sinusoid_tasks(n_tasks=30, n_samples=20, random_state=0)
    params = dict(task_splitter=TaskSplitter(k_shot=5, n_query=5, n_tasks=10, random_state=0),
                  hidden_layer_sizes=(8,), inner_steps=2, max_epochs=3, meta_batch_size=4,
                  random_state=0)
    eager = MAMLRegressor(**params).fit(tasks)
    calls = _count_optimizer_steps(monkeypatch)
    counters.clear()
    compiled = MAMLRegressor(**params, **FAST).fit(tasks)
    assert counters["stats"]["unique_graphs"] == 1  # one graph for all nine meta-steps
    assert not counters["recompiles"] and not counters["graph_break"]
    assert compiled.n_meta_steps_ == eager.n_meta_steps_ == 9
    assert len(calls) == 3 and compiled.net_.compiled_meta_loss_.step_failure is None
    assert_same_weights(compiled.module_, eager.module_)
    got, want = (m.net_.optimizer_.state_dict()["state"] for m in (compiled, eager))
    assert [float(s["step"]) for s in got.values()] == [9.0] * len(want)
    for i in want:
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(got[i][key], want[i][key], rtol=1e-4, atol=1e-7)
    assert compiled.compile_seconds_ > 0 and eager.compile_seconds_ is None
    x, y = tasks[-1]
    np.testing.assert_allclose(compiled.adapt(x[:5], y[:5]).predict(x[5:]),
                               eager.adapt(x[:5], y[:5]).predict(x[5:]), rtol=1e-4, atol=1e-5)
    # a fitted compiled estimator pickles (the compiled function is not kept) and refits
    again = pickle.loads(pickle.dumps(compiled))
    assert again.compile_seconds_ == compiled.compile_seconds_
    assert_same_weights(again.fit(tasks).module_, eager.module_)


@pytest.mark.parametrize("cls", [MetaSGDClassifier, ReptileRegressor], ids=lambda c: c.__name__)
def test_other_algorithms_compile_to_the_eager_weights(cls, class_tasks, sine_tasks):
    data = class_tasks if cls is MetaSGDClassifier else sine_tasks
    eager = small(cls, max_epochs=1).fit(data)
    compiled = small(cls, max_epochs=1, **FAST).fit(data)
    assert compiled.compile_seconds_ > 0
    assert_same_weights(compiled.module_, eager.module_)


def test_a_compiler_that_fails_falls_back_to_eager_with_a_warning(sine_tasks, monkeypatch):
    def broken_backend(gm, example_inputs):
        raise RuntimeError("no C++ compiler here")

    eager = small(MAMLRegressor, max_epochs=1).fit(sine_tasks)
    meta = small(MAMLRegressor, max_epochs=1, compile=True, compile__backend=broken_backend)
    with pytest.warns(CompileWarning, match="could not compile the meta-step.*no C.. compiler "
                                            "here.*continues eagerly"):
        meta.fit(sine_tasks)
    assert meta.compile_seconds_ is None
    assert_same_weights(meta.module_, eager.module_)

    def no_compile(*args, **kwargs):
        raise RuntimeError("torch.compile is not supported on this Python")

    monkeypatch.setattr(torch, "compile", no_compile)
    with pytest.warns(CompileWarning, match="not supported on this Python"):
        meta = small(MAMLRegressor, max_epochs=1, compile=True).fit(sine_tasks)
    assert_same_weights(meta.module_, eager.module_)


def test_compile_false_compiles_nothing(sine_tasks, monkeypatch):
    def no_compile(*args, **kwargs):
        raise AssertionError("compiled")

    monkeypatch.setattr(torch, "compile", no_compile)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        meta = small(MAMLRegressor, max_epochs=1, compile__backend="aot_eager").fit(sine_tasks)
    assert meta.compile_seconds_ is None


def test_compile_is_validated_in_fit(sine_tasks):
    meta = small(MAMLRegressor, compile="yes")
    with pytest.raises(ValueError, match="'compile' parameter of MAMLRegressor must be"):
        meta.fit(sine_tasks)


@pytest.mark.slow
def test_inductor_compiles_to_the_eager_weights(sine_tasks):
    eager = small(MAMLRegressor, max_epochs=1).fit(sine_tasks)
    compiled = small(MAMLRegressor, max_epochs=1, compile=True).fit(sine_tasks)  # inductor
    assert compiled.compile_seconds_ > 0
    assert_same_weights(compiled.module_, eager.module_)


@pytest.mark.slow
def test_the_compile_benchmark_runs(tmp_path):
    from test_benchmarks import SCRIPT, run_script

    proc = run_script(SCRIPT.parent / "compile_speed.py", "--backend", "aot_eager", "--epochs",
                      "2", "--steps", "1", cwd=tmp_path)
    row = [line for line in proc.stdout.splitlines() if line.startswith("| 1 |")]
    assert len(row) == 1 and row[0].count("|") == 8, proc.stdout


def test_a_compiled_meta_step_runs_no_backward(sine_tasks, monkeypatch):
    # the compiled graph computes the meta-gradient itself: the net's backward (and so
    # the autograd engine) never runs, but on the ragged last meta-batch, which is eager
    from sklmeta._training import MetaNet

    calls = []
    monkeypatch.setattr(MetaNet, "backward", lambda net, loss: calls.append(loss.shape)
                        or loss.backward())
    small(MAMLRegressor, max_epochs=2, **FAST).fit(sine_tasks)  # 16 tasks in batches of 4
    assert calls == []
    small(MAMLRegressor, max_epochs=1).fit(sine_tasks)
    assert len(calls) == 4  # eager: every meta-step back-propagates


@pytest.mark.parametrize("cls, first_order", [(MAMLRegressor, False), (MAMLRegressor, True),
                                              (ANILClassifier, True)],
                         ids=["maml", "fomaml", "anil-first-order"])
def test_batchnorm_and_dropout_compile_to_the_eager_weights(cls, first_order, class_tasks,
                                                            sine_tasks):
    # BatchNorm normalises by each task's support rows and Dropout draws its masks in
    # the compiled meta-gradient as eagerly: the same weights and the same buffers. (No
    # bias before BatchNorm: its gradient is rounding noise, which Adam scales up to
    # steps of the full learning rate, of either sign.)
    def net(n_in, n_out):
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(n_in, 8, bias=False), torch.nn.BatchNorm1d(8),
                                   torch.nn.ReLU(), torch.nn.Dropout(0.3),
                                   torch.nn.Linear(8, n_out))

    data = class_tasks if cls is ANILClassifier else sine_tasks
    n_in, n_out = data[0][0].shape[1], 2 if cls is ANILClassifier else 1
    params = dict(max_epochs=1, inner_steps=2, first_order=first_order, early_stopping=False)
    eager = small(cls, module=net(n_in, n_out), **params).fit(data)
    compiled = small(cls, module=net(n_in, n_out), **params, **FAST).fit(data)
    assert compiled.compile_seconds_ > 0 and compiled.inner_loop_ == "torch.func"
    assert_same_weights(compiled.module_, eager.module_)
    for (name, a), b in zip(compiled.module_.named_buffers(), eager.module_.buffers()):
        torch.testing.assert_close(a, b, msg=name)


def test_a_meta_gradient_that_is_not_one_graph_compiles_its_forward(sine_tasks, monkeypatch):
    # MetaRidge's Cholesky check reads a flag back (a graph break), which torch.func's
    # grad_and_value cannot span under torch.compile: rather than running it eagerly
    # (slower than autograd), the forward meta-loss compiles and is back-propagated
    from sklmeta import MetaRidgeRegressor
    from sklmeta._training import MetaNet

    calls = []
    monkeypatch.setattr(MetaNet, "backward", lambda net, loss: calls.append(1)
                        or loss.backward())
    eager = small(MetaRidgeRegressor, max_epochs=1).fit(sine_tasks)
    calls.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        compiled = small(MetaRidgeRegressor, max_epochs=1, **FAST).fit(sine_tasks)
    record = compiled.net_.compiled_meta_loss_
    assert record.whole_failure is not None and not record.gradients
    assert record.failure is None and compiled.compile_seconds_ > 0
    assert len(calls) == 4  # every meta-step back-propagates the compiled forward
    assert_same_weights(compiled.module_, eager.module_)


def test_weight_decay_and_a_learning_rate_schedule_compile_whole(sine_tasks, monkeypatch):
    # a rate that changes at every meta-step: a 0-d tensor in the graph, no recompilation
    from skorch.callbacks import LRScheduler

    def params():
        return dict(optimizer__weight_decay=0.1, max_epochs=2,
                    callbacks=[LRScheduler("StepLR", step_size=1, gamma=0.5,
                                           step_every="batch")])

    eager = small(MAMLRegressor, **params()).fit(sine_tasks)
    calls = _count_optimizer_steps(monkeypatch)
    counters.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not torch's "lr_scheduler.step() before optimizer.step()"
        compiled = small(MAMLRegressor, **params(), **FAST).fit(sine_tasks)
    assert not calls and not counters["recompiles"]
    assert compiled.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5 ** 8)
    assert_same_weights(compiled.module_, eager.module_)


def test_the_whole_step_reads_the_optimizer_once_an_epoch(sine_tasks, monkeypatch):
    # the settings and the state tensors, once per epoch (not at each of its 4 steps); the
    # rate at every step, so a schedule stepped per batch still applies (the test above)
    import sklmeta._core.compiled as compiled_module

    calls = []
    settings = compiled_module.adam_settings
    monkeypatch.setattr(compiled_module, "adam_settings",
                        lambda *a: calls.append(1) or settings(*a))
    compiled = small(MAMLRegressor, max_epochs=3, **FAST).fit(sine_tasks)
    assert compiled.n_meta_steps_ == 12 and compiled.net_.compiled_meta_loss_.step_failure is None
    assert len(calls) == 3
    eager = small(MAMLRegressor, max_epochs=3).fit(sine_tasks)
    assert_same_weights(compiled.module_, eager.module_)


@pytest.mark.parametrize("optimizer", [torch.optim.Adam, torch.optim.AdamW],
                         ids=lambda c: c.__name__)
def test_the_step_in_the_graph_is_torchs_fused_step(optimizer):
    # three meta-steps of a two-group optimizer (decay on one group): the graph's update
    # against torch's own fused kernel given the same meta-gradients
    from sklmeta._training import _FiniteWatch

    def setup():
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
        learner = algorithm.learner(net, 1)
        groups = [{"params": list(net[0].parameters()), "weight_decay": 0.1},
                  {"params": list(net[2].parameters()), "lr": 3e-3}]
        return learner, optimizer(groups, lr=1e-2, fused=True)

    algorithm = algorithms.maml(inner_lr=0.05, inner_steps=1, adapt_steps=1)
    loss = EpisodeLoss("regression")
    (want, torch_opt), (got, graph_opt) = setup(), setup()
    compiled = CompiledMetaLoss(algorithm, got, loss, {"backend": "aot_eager"})
    watch = _FiniteWatch.of(graph_opt)
    for seed in range(3):
        batch = _batch(seed)
        objective, _, _ = algorithm.meta_loss(want, *batch, loss=loss)
        torch_opt.zero_grad()
        objective.backward()
        torch_opt.step()
        assert compiled.step(*batch, graph_opt, watch) is not None
    assert compiled.step_failure is None and compiled.seconds > 0
    assert float(watch.count) == 3 and not watch.diverged()
    assert_same_weights(got, want)
    for a, b in zip(graph_opt.state.values(), torch_opt.state.values()):
        for key in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-7)


def test_gradient_clipping_keeps_the_two_part_step(sine_tasks, monkeypatch):
    # a callback that changes the gradients needs them in .grad: the optimizer steps apart
    from skorch.callbacks import GradientNormClipping

    def clipped(**params):
        return small(MAMLRegressor, callbacks=[GradientNormClipping(1e-3)], **params)

    eager = clipped().fit(sine_tasks)
    calls = _count_optimizer_steps(monkeypatch)
    compiled = clipped(**FAST).fit(sine_tasks)
    assert len(calls) == compiled.n_meta_steps_ == 8
    assert_same_weights(compiled.module_, eager.module_)
    unclipped = small(MAMLRegressor).fit(sine_tasks)
    assert not torch.allclose(unclipped.module_[0].weight, eager.module_[0].weight)


def test_a_whole_step_that_fails_to_compile_counts_in_the_compile_time(sine_tasks,
                                                                       monkeypatch):
    # the whole step's compile fails at its first call (after 0.3 s): the fit takes the
    # two-part step, whose compile is timed at 0.5 s here, and compile_seconds_ holds both
    import time

    def failing(self, args, batch):
        time.sleep(0.3)
        raise RuntimeError("inductor ran out of something")

    eager = small(MAMLRegressor, max_epochs=1).fit(sine_tasks)
    monkeypatch.setattr(CompiledMetaLoss, "_step", failing)
    monkeypatch.setattr(CompiledMetaLoss, "_first_call", lambda self, batch: 0.5)
    calls = _count_optimizer_steps(monkeypatch)
    compiled = small(MAMLRegressor, max_epochs=1, **FAST).fit(sine_tasks)
    record = compiled.net_.compiled_meta_loss_
    assert "inductor ran out of something" in record.step_failure and record.failure is None
    assert len(calls) == compiled.n_meta_steps_ == 4  # torch's Adam at every step
    assert compiled.compile_seconds_ >= 0.8
    assert_same_weights(compiled.module_, eager.module_)


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_a_non_finite_step_in_the_graph_stops_the_fit_unchanged(sine_tasks, compile):
    # the whole step folds the flag as the two-part step does: at the first non-finite
    # meta-gradient nothing changes any more (weights, moments, step counts) and the
    # epoch ends naming that step
    from sklmeta._training import MetaTrainingDiverged

    meta = small(MAMLRegressor, module=NaNGradient(1, 1), early_stopping=False,
                 **(FAST if compile else {}))
    with pytest.raises(MetaTrainingDiverged, match=r"epoch 1, meta-step 1 of the epoch"):
        meta.fit(sine_tasks)
    assert torch.equal(meta.module_.linear.weight, meta.module.linear.weight)
    state = meta.net_.optimizer_.state_dict()["state"]
    assert state and all(float(s["step"]) == 0 for s in state.values())
    assert not hasattr(meta.net_.optimizer_, "found_inf")


@pytest.mark.parametrize("optimizer, options", [
    (torch.optim.SGD, {}), (torch.optim.Adam, {"fused": False}),
    (torch.optim.Adam, {"amsgrad": True}), (torch.optim.Adam, {"maximize": True}),
    (torch.optim.Adam, {"lr": torch.tensor(1e-3)})], ids=str)
def test_only_adam_as_the_graph_computes_it_is_stepped_in_the_graph(optimizer, options):
    from sklmeta._core.compiled import adam_settings

    net = torch.nn.Linear(2, 1)
    named = list(net.named_parameters())
    assert adam_settings(torch.optim.Adam(net.parameters(), fused=True), named) is not None
    assert adam_settings(optimizer(net.parameters(), **{"lr": 1e-3, **options}), named) is None
    # every trainable parameter in the optimizer, and only those
    assert adam_settings(torch.optim.Adam([net.weight], fused=True), named) is None
    hooked = torch.optim.Adam(net.parameters(), fused=True)
    hooked.register_step_post_hook(lambda *args: None)  # a hook that would not run
    assert adam_settings(hooked, named) is None
