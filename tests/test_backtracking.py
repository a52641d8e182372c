"""Backtracking adaptation: a step that does not lower a task's support loss is undone.

``adapt_backtrack=True`` (the default of MAML, Meta-SGD, ANIL and Reptile) changes
adaptation outside meta-training only, and only where a plain step overshoots.
"""

import numpy as np
import pytest
import torch
from conftest import same_weights, small, weights
from sklearn.utils._param_validation import InvalidParameterError

from sklmeta import (
    ANILRegressor,
    MAMLClassifier,
    MAMLRegressor,
    MetaSGDRegressor,
    ReptileRegressor,
)
from sklmeta._core import EpisodeLoss, FunctionalInnerLoop, select_inner_loop
from sklmeta._core.algorithms import head_names
from sklmeta._core.functional import backtracking_step


def _net(out=1, act=torch.nn.Tanh):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16),
                               act(), torch.nn.Linear(16, out))


def _episodes(task, n_tasks=6, n=10):
    g = torch.Generator().manual_seed(1)
    xs = 3 * torch.randn(n_tasks, n, 2, generator=g)
    ys = (torch.randn(n_tasks, n, generator=g) if task == "regression"
          else torch.randint(0, 3, (n_tasks, n), generator=g))
    return xs, ys


def _loss(task):
    return EpisodeLoss(task, n_classes=None if task == "regression" else 3)


def _reference(net, params, x, y, loss, lr, steps, adapted=None):
    """One task, plain autograd and Python control flow: the rule as the docs say it."""
    names = list(params) if adapted is None else adapted
    p = {k: v.clone() for k, v in params.items()}
    scale = 1.0

    def support_loss(q):
        return loss(torch.func.functional_call(net, q, (x[None],)), y[None])

    for _ in range(steps):
        fast = {k: p[k].clone().requires_grad_(True) for k in names}
        value = support_loss({**p, **fast})
        grads = torch.autograd.grad(value, [fast[k] for k in names])
        rate = lambda k: lr[k] if isinstance(lr, dict) else lr  # noqa: E731
        stepped = {**p, **{k: (fast[k] - scale * rate(k) * g).detach()
                           for k, g in zip(names, grads)}}
        if support_loss(stepped) < value:
            p = stepped
        else:
            scale /= 2
    return p


def _per_task_losses(loop, params, xs, ys, loss):
    out = loop.predict_many(params, xs)
    return torch.stack([loss(out[i:i + 1], ys[i:i + 1]) for i in range(len(xs))])


def test_a_step_is_kept_where_the_loss_fell_and_undone_with_half_the_rate_elsewhere():
    params = {"w": torch.zeros(3, 2)}
    stepped = {"w": torch.ones(3, 2)}
    before = torch.tensor([1.0, 1.0, 1.0])
    after = torch.tensor([0.5, 2.0, float("nan")])
    kept, scale = backtracking_step(params, stepped, before, after, torch.ones(3))
    assert torch.equal(kept["w"], torch.tensor([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]))
    assert torch.equal(scale, torch.tensor([1.0, 0.5, 0.5]))
    # a parameter shared by all tasks (the first step's start) broadcasts
    kept, _ = backtracking_step({"w": torch.zeros(2)}, stepped, before, after, torch.ones(3))
    assert kept["w"].shape == (3, 2) and torch.equal(kept["w"][0], torch.ones(2))


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_each_tasks_loss_is_the_episode_loss_of_that_task_alone(task):
    loss, (xs, ys) = _loss(task), _episodes(task)
    out = torch.randn(*xs.shape[:2], 4, generator=torch.Generator().manual_seed(2))
    want = torch.stack([loss(out[i], ys[i]) for i in range(len(xs))])
    torch.testing.assert_close(loss.per_task(out, ys), want)


@pytest.mark.parametrize("task", ["regression", "classification"])
@pytest.mark.parametrize("head_only", [False, True])
def test_both_inner_loops_backtrack_as_the_per_task_reference(task, head_only):
    net = _net(1 if task == "regression" else 3)
    loss, (xs, ys) = _loss(task), _episodes(task)
    params = {k: v.detach() for k, v in net.named_parameters()}
    adapted = head_names(net) if head_only else None
    batched = select_inner_loop(net, adapted)
    assert batched.name == "batched-mlp"
    for lr in (0.05, 3.0):  # every step lowers the loss; most overshoot
        expected = [_reference(net, params, xs[i], ys[i], loss, lr, 5, adapted)
                    for i in range(len(xs))]
        for loop in (batched, FunctionalInnerLoop(net)):
            new = loop.adapt_many(params, xs, ys, loss=loss, lr=lr, steps=5, adapted=adapted,
                                  backtrack=True)
            for k in params:
                got = new[k] if new[k].dim() > params[k].dim() else new[k].expand(len(xs),
                                                                                   *params[k].shape)
                want = torch.stack([e[k] for e in expected])
                torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_per_parameter_step_sizes_backtrack_too():
    """Meta-SGD's per-element rates are scaled by each task's own halvings."""
    net, loss, (xs, ys) = _net(), _loss("regression"), _episodes("regression")
    params = {k: v.detach() for k, v in net.named_parameters()}
    lr = {k: torch.full_like(v, 2.0).uniform_(0.5, 3.0) for k, v in params.items()}
    expected = [_reference(net, params, xs[i], ys[i], loss, lr, 4) for i in range(len(xs))]
    for loop in (select_inner_loop(net), FunctionalInnerLoop(net)):
        new = loop.adapt_many(params, xs, ys, loss=loss, lr=lr, steps=4, backtrack=True)
        for k in params:
            torch.testing.assert_close(new[k], torch.stack([e[k] for e in expected]),
                                       rtol=1e-4, atol=1e-5)


def test_backtracking_never_raises_a_support_loss_and_equals_plain_sgd_where_steps_descend():
    net, loss, (xs, ys) = _net(), _loss("regression"), _episodes("regression")
    params = {k: v.detach() for k, v in net.named_parameters()}
    loop = select_inner_loop(net)
    start = _per_task_losses(loop, loop.adapt_many(params, xs, ys, loss=loss, lr=0.0, steps=1),
                             xs, ys, loss)
    previous = start
    for steps in range(1, 8):
        new = loop.adapt_many(params, xs, ys, loss=loss, lr=3.0, steps=steps, backtrack=True)
        now = _per_task_losses(loop, new, xs, ys, loss)
        assert torch.all(now <= previous)
        previous = now
    plain = loop.adapt_many(params, xs, ys, loss=loss, lr=3.0, steps=7)
    assert not torch.all(_per_task_losses(loop, plain, xs, ys, loss) <= start)  # it overshoots
    small_lr = [loop.adapt_many(params, xs, ys, loss=loss, lr=0.02, steps=5, backtrack=b)
                for b in (False, True)]
    for k in params:
        torch.testing.assert_close(small_lr[0][k], small_lr[1][k])


def test_adapt_backtracks_by_default_and_plain_sgd_blows_up(sine_tasks):
    meta = small(MAMLRegressor, inner_lr=0.01).fit(sine_tasks)
    X, y = sine_tasks[0]
    meta.set_params(inner_lr=1e4, adapt_steps=20)
    adapted = meta.adapt(X[:5], y[:5] * 1e3)
    support = adapted.predict(X[:5])
    assert np.all(np.isfinite(support)) and np.all(np.isfinite(adapted.predict(X[5:])))
    unadapted = meta.set_params(adapt_steps=1, inner_lr=1e-12).adapt(X[:5], y[:5] * 1e3)
    assert (np.mean((support - y[:5] * 1e3) ** 2)
            < np.mean((unadapted.predict(X[:5]) - y[:5] * 1e3) ** 2))
    meta.set_params(inner_lr=1e4, adapt_steps=20, adapt_backtrack=False)
    with pytest.raises(FloatingPointError, match="Adaptation diverged"):
        meta.adapt(X[:5], y[:5] * 1e3)


@pytest.mark.parametrize("cls", [MAMLRegressor, MetaSGDRegressor, ANILRegressor,
                                 ReptileRegressor])
def test_meta_training_is_plain_sgd_whatever_adapt_backtrack_says(cls, sine_tasks):
    fits = [small(cls, adapt_backtrack=b, early_stopping=False).fit(sine_tasks)
            for b in (True, False)]
    assert same_weights(weights(fits[0]), weights(fits[1]))


@pytest.mark.parametrize("cls", [MAMLClassifier, ReptileRegressor])
def test_adapt_backtrack_is_validated(cls, sine_tasks):
    with pytest.raises(InvalidParameterError, match="adapt_backtrack"):
        small(cls, adapt_backtrack="yes").fit(sine_tasks)
