"""The loss, the step sizes and the inner-loop protocol, with its torch.func implementation.

One inner loop serves meta-training, meta-validation, ``adapt`` and ``score``.
It has two implementations of one protocol (:class:`InnerLoop`), chosen once per
network (:func:`sklmeta._core.select_inner_loop`):

- :class:`FunctionalInnerLoop` (this module), for any module: :func:`inner_loop`
  takes a dict of parameters and one task's support set and returns a *new*
  dict of adapted parameters (nothing is mutated), ``vmap``-ed over the tasks
  of a meta-batch;
- :class:`~sklmeta._core.batched_mlp.BatchedMLPInnerLoop`, the same function
  written out as batched matrix products for sklmeta's own MLP.

The meta-loss is the loss of the query predictions after adaptation, and one
``.backward()`` through it gives the (second-order, unless ``first_order``)
meta-gradient. The loss (:class:`EpisodeLoss`) takes ``(output, target)`` of a
single task or of a whole meta-batch, so the inner loss and the meta-loss are
one definition.
"""

import contextlib
import threading

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

__all__ = ["SWAP_LOCK", "EpisodeLoss", "InnerLoop", "FunctionalInnerLoop", "inner_loop",
           "step_size", "swap_lock"]

# functional_call swaps the given tensors into the module for the duration of the
# call, so two threads using one module see each other's parameters (and can leave
# the wrong ones behind). Every functional_call on a module that may be shared (a
# meta-estimator's network), and every read or direct call of such a module
# (:class:`sklmeta._core.algorithms.Learner`), runs under this lock.
SWAP_LOCK = threading.RLock()
_TRACING = contextlib.nullcontext()


def swap_lock():
    """:data:`SWAP_LOCK`, or nothing to hold while torch.compile traces.

    torch.compile cannot enter a lock; :mod:`sklmeta._core.compiled` holds
    :data:`SWAP_LOCK` around each compiled call instead (a compiled graph swaps
    no weights into the module).
    """
    return _TRACING if torch.compiler.is_compiling() else SWAP_LOCK


class EpisodeLoss(torch.nn.Module):
    """Loss of one task or of a whole meta-batch (any leading dimensions).

    Classification: cross-entropy over the first ``n_classes`` logits (a head has
    ``n_way`` outputs; an episode with fewer classes uses the first ones).
    Regression: mean squared error of the first output, the mean (a learner that
    knows its uncertainty outputs ``(mean, std)``).
    """

    def __init__(self, task="classification", n_classes=None):
        super().__init__()
        if task not in ("classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression'; got {task!r}")
        self.task = task
        self.n_classes = n_classes

    def forward(self, out, y):
        if self.task == "regression":
            return F.mse_loss(out[..., 0], y)
        logits = out[..., : self.n_classes]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def step_size(lr, name, step):
    """The step size of parameter ``name`` at inner step ``step``.

    ``lr`` is a float (MAML), a dict of per-parameter tensors (Meta-SGD), or a
    list with one such dict per inner step (per-step, per-tensor rates).
    """
    if isinstance(lr, (list, tuple)):
        if step >= len(lr):
            raise ValueError(
                f"The step sizes were learned for {len(lr)} inner steps; cannot take step "
                f"{step + 1}. Adapt with at most {len(lr)} steps."
            )
        lr = lr[step]
    return lr[name] if isinstance(lr, dict) else lr


def inner_loop(model, params, x, y, *, loss, lr, steps, first_order=False, adapted=None):
    """Adapt ``params`` to one task with ``steps`` gradient steps on ``(x, y)``.

    Parameters
    ----------
    model : torch.nn.Module
        Only its architecture is used, through ``functional_call``.
    params : dict of str to Tensor
        The initialisation. Parameters of ``model`` missing from the dict keep the
        module's own values.
    x, y : Tensor
        The support set of a single task.
    loss : callable
        ``loss(output, y) -> scalar``.
    lr : float, dict of str to Tensor, or list of them
        Inner step size: global, per parameter (Meta-SGD), or per step and
        parameter (see :func:`step_size`).
    steps : int
        Gradient steps.
    first_order : bool, default=False
        Detach the inner gradients, dropping the second-order terms of the
        meta-gradient.
    adapted : collection of str, default=None
        Names of the parameters the inner loop updates (ANIL: the head); the
        others are used as they are. None adapts all of ``params``.

    Returns
    -------
    dict of str to Tensor
        New parameters: the adapted ones updated, the others as given.
    """
    names = params.keys() if adapted is None else adapted
    fixed = {k: v for k, v in params.items() if k not in names}
    fast = {k: v for k, v in params.items() if k in names}

    def support_loss(p):
        return loss(functional_call(model, {**fixed, **p}, (x,)), y)

    grad_fn = grad(support_loss)
    for step in range(steps):
        g = grad_fn(fast)
        if first_order:
            g = {k: v.detach() for k, v in g.items()}
        fast = {k: p - step_size(lr, k, step) * g[k] for k, p in fast.items()}
    return {**fixed, **fast}


class InnerLoop:
    """The inner-loop protocol: adapt a batch of tasks, and predict with the result.

    Inputs are task-first, ``[task, shot, ...]``. Implementations differ in how
    they compute, never in what: both are pinned to a per-task autograd
    reference in the tests.

    Attributes
    ----------
    name : str
        What ``inner_loop_`` records on a fitted estimator.
    """

    name = None

    def adapt(self, params, xs, ys, *, loss, lr, steps, first_order=False, adapted=None):
        """Per-task adapted parameters ``[T, ...]`` (those not adapted may stay shared)."""
        raise NotImplementedError

    def forward(self, params, x):
        """Outputs ``[T, n, out]`` under per-task (or shared) parameters."""
        raise NotImplementedError

    def adapt_predict(self, params, xs, ys, xq, **inner):
        """Adapt on every task's support set, then predict its query set."""
        return self.forward(self.adapt(params, xs, ys, **inner), xq)

    def adapt_many(self, params, xs, ys, **inner):
        """Adapted parameters of many tasks, each stacked on a leading task axis, no graph."""
        with torch.no_grad():
            new = self.adapt(params, xs, ys, **inner)
        n = len(xs)
        return {k: v if v.dim() > params[k].dim() else v.expand(n, *v.shape)
                for k, v in new.items()}

    def predict_many(self, stacked_params, x):
        """:meth:`forward` without a graph."""
        with torch.no_grad():
            return self.forward(stacked_params, x)


class FunctionalInnerLoop(InnerLoop):
    """:func:`inner_loop` under ``vmap`` over the tasks: any module.

    Parameters
    ----------
    model : torch.nn.Module
        The architecture, called through ``functional_call``.
    """

    name = "torch.func"

    def __init__(self, model):
        self.model = model

    def adapt(self, params, xs, ys, *, loss, lr, steps, first_order=False, adapted=None):
        with swap_lock():
            return vmap(lambda x, y: inner_loop(
                self.model, params, x, y, loss=loss, lr=lr, steps=steps,
                first_order=first_order, adapted=adapted,
            ), randomness="different")(xs, ys)

    def forward(self, params, x):
        # a parameter with no task axis (not adapted, e.g. ANIL's body) is shared
        own = {k: v.dim() for k, v in self.model.named_parameters()}
        dims = {k: 0 if v.dim() > own.get(k, v.dim() - 1) else None for k, v in params.items()}
        with swap_lock():
            return vmap(lambda p, xt: functional_call(self.model, p, (xt,)),
                        in_dims=(dims, 0), randomness="different")(params, x)
