"""The functional MAML core: pure torch.func, no scikit-learn.

One inner loop serves meta-training, validation, ``adapt`` and ``score``:

- :func:`inner_loop` takes a dict of parameters and one task's support set and
  returns a *new* dict of adapted parameters (nothing is mutated);
- :func:`adapt_predict` adapts on each task's support set and predicts its query
  set, ``vmap``-ed over the tasks of a meta-batch;
- the meta-loss is the loss of those query predictions, and one ``.backward()``
  through it gives the (second-order, unless ``first_order``) meta-gradient.

The loss (:class:`EpisodeLoss`) takes ``(output, target)`` of a single task or of
a whole meta-batch, so the inner loss and the meta-loss are one definition.
"""

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from ._mlp import mlp_forward, mlp_inner_loop, mlp_layers, step_size

__all__ = ["inner_loop", "adapt_predict", "adapt_many", "predict_many", "EpisodeLoss"]


class EpisodeLoss(torch.nn.Module):
    """Loss of one task or of a whole meta-batch (any leading dimensions).

    Classification: cross-entropy over the first ``n_classes`` logits (a head has
    ``n_way`` outputs; an episode with fewer classes uses the first ones).
    Regression: mean squared error of the single output.
    """

    def __init__(self, task="classification", n_classes=None):
        super().__init__()
        if task not in ("classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression'; got {task!r}")
        self.task = task
        self.n_classes = n_classes

    def forward(self, out, y):
        if self.task == "regression":
            return F.mse_loss(out.squeeze(-1), y)
        logits = out[..., : self.n_classes]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


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


def _fast_layers(model, params, loss=None):
    """The hand-batched MLP path applies: a plain MLP, all its parameters given (and,
    for adaptation, a loss it knows the gradient of)."""
    layers = mlp_layers(model)
    if layers is None or (loss is not None and not isinstance(loss, EpisodeLoss)):
        return None
    names = {name for layer in layers for name in layer[:2]}
    return layers if names == set(params) else None


def _adapt_batch(model, params, xs, ys, *, loss, lr, steps, first_order=False, adapted=None):
    """Adapted parameters of a batch of tasks ``[T, ...]``, and the MLP layers if any.

    Parameters that are not adapted may come back unbatched (shared by all tasks).
    """
    layers = _fast_layers(model, params, loss)
    if layers is not None:
        head = layers[-1][:2]
        if adapted is None or set(adapted) == set(params):
            head_only = False
        elif set(adapted) == set(head):
            head_only = True
        else:
            layers = None
    if layers is not None:
        return layers, mlp_inner_loop(layers, params, xs, ys, loss=loss, lr=lr, steps=steps,
                                      first_order=first_order, head_only=head_only)
    return None, vmap(lambda x, y: inner_loop(
        model, params, x, y, loss=loss, lr=lr, steps=steps, first_order=first_order,
        adapted=adapted,
    ))(xs, ys)


def adapt_predict(model, params, xs, ys, xq, *, loss, lr, steps, first_order=False,
                  adapted=None):
    """Adapt on every task's support set, then predict its query set.

    ``xs, ys, xq`` are task-first: ``[task, shot, ...]``. Returns the query outputs
    ``[task, query, n_outputs]``; the meta-loss is ``loss`` over them. sklmeta's
    own MLP takes the hand-batched path (:mod:`sklmeta._mlp`), any other module
    ``vmap`` over :func:`inner_loop`; both compute the same function. ``adapted``
    names the parameters the inner loop updates (None: all).
    """
    layers, new = _adapt_batch(model, params, xs, ys, loss=loss, lr=lr, steps=steps,
                               first_order=first_order, adapted=adapted)
    if layers is not None:
        return mlp_forward(layers, new, xq)
    return vmap(lambda p, x: functional_call(model, p, (x,)))(new, xq)


def adapt_many(model, params, xs, ys, *, loss, lr, steps, adapted=None):
    """Adapted parameters of many tasks at once, each stacked on a leading task axis.

    Runs without building a graph for the outer parameters (adaptation only).
    """
    with torch.no_grad():
        _, new = _adapt_batch(model, params, xs, ys, loss=loss, lr=lr, steps=steps,
                              adapted=adapted)
    n = len(xs)
    return {k: v if v.dim() > params[k].dim() else v.expand(n, *v.shape)
            for k, v in new.items()}


def predict_many(model, stacked_params, x):
    """Outputs of ``model`` under each task's parameters; ``x`` is ``[task, n, ...]``."""
    layers = _fast_layers(model, stacked_params)
    with torch.no_grad():
        if layers is not None:
            return mlp_forward(layers, stacked_params, x)
        return vmap(lambda p, xt: functional_call(model, p, (xt,)))(stacked_params, x)
