"""The functional core against a plain per-task autograd reference."""

import pytest
import torch
from torch.func import functional_call

from sklmeta._core import (
    BatchedMLPInnerLoop,
    EpisodeLoss,
    FunctionalInnerLoop,
    inner_loop,
    make_mlp,
    select_inner_loop,
)
from sklmeta._core.algorithms import maml as MAML
from sklmeta._core.algorithms import meta_sgd as MetaSGD
from sklmeta._training import MetaNet

N_TASKS, N_WAY, SHOT, QUERY, DIM = 5, 3, 4, 6, 7


def silu_net(n_in, n_out):
    """Not a plain MLP (SiLU): goes through the generic torch.func (vmap) path."""
    return torch.nn.Sequential(torch.nn.Linear(n_in, 16), torch.nn.SiLU(),
                               torch.nn.Linear(16, 16), torch.nn.SiLU(), torch.nn.Linear(16, n_out))


NETWORKS = {
    # tanh: non-zero second derivatives everywhere; relu: a constant mask
    "mlp-tanh (hand-batched)": lambda: make_mlp(DIM, (16, 16), N_WAY, "tanh"),
    "mlp-relu (hand-batched)": lambda: make_mlp(DIM, (16, 16), N_WAY, "relu"),
    "mlp-gelu (hand-batched)": lambda: make_mlp(DIM, (16, 16), N_WAY, "gelu"),
    "silu (torch.func vmap)": lambda: silu_net(DIM, N_WAY),
}


def test_the_paths_are_the_ones_named():
    for name, build in NETWORKS.items():
        expected = BatchedMLPInnerLoop if "hand-batched" in name else FunctionalInnerLoop
        assert type(select_inner_loop(build())) is expected, name
    # ANIL's head-only loop is hand-batched too; any other subset of parameters is not
    mlp = make_mlp(DIM, (8,), N_WAY)
    assert select_inner_loop(mlp, ["2.weight", "2.bias"]).head_only
    assert type(select_inner_loop(mlp, ["0.weight"])) is FunctionalInnerLoop
    # GELU's tanh approximation is not the GELU the hand-written gradient knows
    approx = torch.nn.Sequential(torch.nn.Linear(DIM, 8), torch.nn.GELU("tanh"),
                                 torch.nn.Linear(8, N_WAY))
    assert type(select_inner_loop(approx)) is FunctionalInnerLoop


@pytest.fixture(params=list(NETWORKS))
def problem(request):
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = NETWORKS[request.param]()
    xs = torch.randn(N_TASKS, N_WAY * SHOT, DIM, generator=g)
    ys = torch.arange(N_WAY).repeat_interleave(SHOT).expand(N_TASKS, -1).clone()
    xq = torch.randn(N_TASKS, N_WAY * QUERY, DIM, generator=g)
    yq = torch.arange(N_WAY).repeat_interleave(QUERY).expand(N_TASKS, -1).clone()
    return model, xs, ys, xq, yq


def reference_meta_grad(model, xs, ys, xq, yq, lr, steps, detach_inner, adapted=None):
    """Per-task loop with torch.autograd.grad, as a tutorial would write it.

    ``lr`` is a float or one float per parameter; only the parameters named in
    ``adapted`` (default: all) take inner steps.
    """
    params = list(model.parameters())
    names = [n for n, _ in model.named_parameters()]
    lrs = lr if isinstance(lr, list) else [lr] * len(params)
    moving = [adapted is None or n in adapted for n in names]
    loss_fn = torch.nn.functional.cross_entropy
    total = 0.0
    for t in range(len(xs)):
        fast = params
        for _ in range(steps):
            out = functional_call(model, dict(zip(names, fast)), (xs[t],))
            grads = torch.autograd.grad(loss_fn(out, ys[t]), fast, create_graph=not detach_inner)
            if detach_inner:
                grads = [g.detach() for g in grads]
            fast = [p - a * g if m else p for p, a, g, m in zip(fast, lrs, grads, moving)]
        out = functional_call(model, dict(zip(names, fast)), (xq[t],))
        total = total + loss_fn(out, yq[t]) / len(xs)
    return torch.autograd.grad(total, params)


def sklmeta_meta_grad(model, xs, ys, xq, yq, lr, steps, first_order, adapted=None):
    loss = EpisodeLoss("classification", N_WAY)
    params = dict(model.named_parameters())
    out = select_inner_loop(model, adapted).adapt_predict(
        params, xs, ys, xq, loss=loss, lr=lr, steps=steps, first_order=first_order,
        adapted=adapted)
    return torch.autograd.grad(loss(out, yq), list(params.values()))


def max_diff(a, b):
    return max((x - y).abs().max().item() for x, y in zip(a, b))


@pytest.mark.parametrize("steps", [1, 3])
def test_second_order_meta_gradient_matches_per_task_reference(problem, steps):
    ours = sklmeta_meta_grad(*problem, lr=0.3, steps=steps, first_order=False)
    ref = reference_meta_grad(*problem, lr=0.3, steps=steps, detach_inner=False)
    assert max_diff(ours, ref) < 1e-5


@pytest.mark.parametrize("steps", [1, 3])
def test_first_order_drops_exactly_the_second_order_terms(problem, steps):
    fo = sklmeta_meta_grad(*problem, lr=0.3, steps=steps, first_order=True)
    ref_detached = reference_meta_grad(*problem, lr=0.3, steps=steps, detach_inner=True)
    ref_full = reference_meta_grad(*problem, lr=0.3, steps=steps, detach_inner=False)
    assert max_diff(fo, ref_detached) < 1e-5
    # ...and the second-order terms it drops are not negligible on this problem
    assert max_diff(fo, ref_full) > 1e-3


def test_metanet_training_step_computes_the_reference_gradient(problem):
    model, xs, ys, xq, yq = problem
    algorithm = MAML(inner_lr=0.3, inner_steps=2, adapt_steps=2)
    net = MetaNet(algorithm.learner(model, xs.shape[-1]), criterion=EpisodeLoss,
                  criterion__task="classification", criterion__n_classes=N_WAY,
                  algorithm=algorithm, train_split=None)
    net.initialize()
    net.module_.zero_grad()
    net.train_step_single(({"xs": xs, "ys": ys, "xq": xq}, yq))
    ours = [p.grad for p in net.module_.parameters()]
    ref = reference_meta_grad(net.module_.net, xs, ys, xq, yq, 0.3, 2, detach_inner=False)
    assert max_diff(ours, ref) < 1e-5


def test_inner_loop_returns_new_params_and_mutates_nothing(problem):
    model, xs, ys, _, _ = problem
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    before = {k: v.clone() for k, v in params.items()}
    adapted = inner_loop(model, params, xs[0], ys[0], loss=EpisodeLoss("classification", N_WAY),
                         lr=0.5, steps=2)
    assert all(torch.equal(params[k], before[k]) for k in params)
    assert all(torch.equal(v, before[k]) for k, v in model.named_parameters())
    assert any(not torch.equal(adapted[k], params[k]) for k in params)


def test_adapt_many_equals_the_generic_inner_loop_per_task(problem):
    model, xs, ys, _, _ = problem
    loss = EpisodeLoss("classification", N_WAY)
    params = {k: v.detach() for k, v in model.named_parameters()}
    stacked = select_inner_loop(model).adapt_many(params, xs, ys, loss=loss, lr=0.5, steps=2)
    for t in range(N_TASKS):
        single = inner_loop(model, params, xs[t], ys[t], loss=loss, lr=0.5, steps=2)
        assert all(torch.allclose(stacked[k][t], single[k], atol=1e-5) for k in params)
    assert not any(v.requires_grad for v in stacked.values())


def test_per_parameter_step_sizes(problem):
    model, xs, ys, _, _ = problem
    loss = EpisodeLoss("classification", N_WAY)
    params = {k: v.detach() for k, v in model.named_parameters()}
    zero_lr = {k: torch.zeros_like(v) for k, v in params.items()}
    same = inner_loop(model, params, xs[0], ys[0], loss=loss, lr=zero_lr, steps=1)
    assert all(torch.equal(same[k], params[k]) for k in params)


def test_episode_loss_uses_only_the_first_n_classes():
    out = torch.tensor([[2.0, 0.0, 50.0], [0.0, 1.0, 50.0]])
    y = torch.tensor([0, 1])
    two = EpisodeLoss("classification", 2)(out, y)
    assert torch.isclose(two, torch.nn.functional.cross_entropy(out[:, :2], y))
    with pytest.raises(ValueError, match="task must be"):
        EpisodeLoss("ranking")


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu"])
@pytest.mark.parametrize("task, n_out, n_classes", [("regression", 1, None),
                                                    ("classification", 4, 2)])
def test_hand_batched_mlp_equals_torch_func_on_the_same_network(task, n_out, n_classes,
                                                                activation):
    """Same network, both implementations: the outputs and the meta-gradients agree."""
    torch.manual_seed(1)
    model = make_mlp(DIM, (8, 8), n_out, activation)
    xs, xq = torch.randn(N_TASKS, 6, DIM), torch.randn(N_TASKS, 5, DIM)
    if task == "regression":
        ys, yq = torch.randn(N_TASKS, 6), torch.randn(N_TASKS, 5)
    else:
        ys, yq = torch.randint(0, n_classes, (N_TASKS, 6)), torch.randint(0, n_classes, (N_TASKS, 5))
    loss = EpisodeLoss(task, n_classes)
    params = dict(model.named_parameters())
    batched = select_inner_loop(model)
    assert type(batched) is BatchedMLPInnerLoop
    fast = batched.adapt_predict(params, xs, ys, xq, loss=loss, lr=0.1, steps=2)
    functional = FunctionalInnerLoop(model).adapt_predict(params, xs, ys, xq, loss=loss, lr=0.1,
                                                          steps=2)

    def generic(xs_t, ys_t, xq_t):
        adapted = inner_loop(model, params, xs_t, ys_t, loss=loss, lr=0.1, steps=2)
        return functional_call(model, adapted, (xq_t,))

    slow = torch.func.vmap(generic)(xs, ys, xq)
    assert torch.allclose(fast, slow, atol=1e-5)
    assert torch.allclose(functional, slow, atol=1e-6)
    g_fast = torch.autograd.grad(loss(fast, yq), list(params.values()))
    g_slow = torch.autograd.grad(loss(slow, yq), list(params.values()))
    assert max_diff(g_fast, g_slow) < 1e-5


# ------------------------------------------------- the algorithms on the same core
def head(model):
    return [n for n, _ in model.named_parameters()][-2:]


@pytest.mark.parametrize("steps", [1, 3])
def test_anil_meta_gradient_matches_a_head_only_reference(problem, steps):
    model = problem[0]
    ours = sklmeta_meta_grad(*problem, lr=0.3, steps=steps, first_order=False,
                             adapted=head(model))
    ref = reference_meta_grad(*problem, lr=0.3, steps=steps, detach_inner=False,
                              adapted=head(model))
    assert max_diff(ours, ref) < 1e-5
    # the body still learns, through the head's adaptation (second order)
    assert ours[0].abs().max() > 1e-4


def test_anil_adapts_the_head_and_leaves_the_body_untouched(problem):
    model, xs, ys, _, _ = problem
    params = {k: v.detach() for k, v in model.named_parameters()}
    new = select_inner_loop(model, head(model)).adapt_many(
        params, xs, ys, loss=EpisodeLoss("classification", N_WAY), lr=0.5, steps=2,
        adapted=head(model))
    for name, p in params.items():
        moved = (new[name] - p).abs().amax(dim=tuple(range(1, p.dim() + 1)))
        if name in head(model):
            assert (moved > 1e-4).all(), name
        else:
            assert (moved == 0).all(), name


@pytest.mark.parametrize("lr_mode", ["element", "tensor-step"])
def test_meta_sgd_with_constant_rates_is_maml(problem, lr_mode):
    model, xs, ys, xq, yq = problem
    loss = EpisodeLoss("classification", N_WAY)
    maml, meta_sgd = MAML(0.3, 2, 2), MetaSGD(0.3, 2, 2, lr_mode=lr_mode)
    grads = []
    for algorithm in (maml, meta_sgd):
        learner = algorithm.learner(model, DIM)
        out = algorithm.query_outputs(learner, xs, ys, xq, loss=loss, training=True)
        grads.append(torch.autograd.grad(loss(out, yq), list(learner.net.parameters())))
    assert max_diff(*grads) < 1e-6


def test_meta_sgd_rates_are_per_parameter_and_get_a_meta_gradient(problem):
    model, xs, ys, xq, yq = problem
    loss = EpisodeLoss("classification", N_WAY)
    algorithm = MetaSGD(0.3, 1, 1)
    learner = algorithm.learner(model, DIM)
    with torch.no_grad():  # a different rate for every parameter tensor
        for i, lr in enumerate(learner.lrs):
            lr.fill_(0.1 * (i + 1))
    out = algorithm.query_outputs(learner, xs, ys, xq, loss=loss, training=True)
    loss(out, yq).backward()
    ref = reference_meta_grad(model, xs, ys, xq, yq, [0.1 * (i + 1) for i in range(6)], 1,
                              detach_inner=False)
    assert max_diff([p.grad for p in model.parameters()], ref) < 1e-5
    assert all(lr.grad is not None and lr.grad.abs().max() > 0 for lr in learner.lrs)
