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

Modules whose forward depends on a mode (``BatchNorm``, ``Dropout``) run in a
mode the inner loop sets, never in the one the module happens to be left in
(:func:`inner_loop_mode`): ``training=True`` (meta-training) has dropout on, with
independent masks per task (``vmap(randomness="different")``), and
``training=False`` (meta-validation, ``adapt``, ``score``, ``predict``) has it
off. BatchNorm always normalises an inner step by the statistics of the task's
own support rows (transductive, as in MAML's reference code), and its running
buffers are never read or written, so nothing leaks from one task to another.
After adapting with ``training=False``, the support rows' statistics under the
adapted parameters are frozen into the adapted parameters (as
``"<layer>.running_mean"`` and ``"<layer>.running_var"``), and every forward pass
with them normalises by those: a row's prediction does not depend on the rows
predicted with it. In meta-training's query forward pass, BatchNorm uses the
query rows' own statistics (the reference code's choice).
"""

import contextlib
import threading

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, grad_and_value, vmap
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["SWAP_LOCK", "EpisodeLoss", "InnerLoop", "FunctionalInnerLoop", "backtracking_step",
           "batch_norms", "inner_loop", "inner_loop_mode", "per_task", "seeded_rng", "step_size",
           "support_statistics", "swap_lock"]

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


def batch_norms(model):
    """``[(name, module), ...]`` of the BatchNorm layers of ``model`` (1d, 2d, 3d)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, _BatchNorm)]


def frozen_statistics(params):
    """Whether ``params`` carry BatchNorm statistics frozen at adaptation."""
    return any(k.endswith(".running_mean") for k in params)


@contextlib.contextmanager
def inner_loop_mode(model, training, frozen=False):
    """Run ``model`` in the inner loop's mode, whatever mode it was left in.

    Every submodule gets ``training`` (Dropout on in meta-training, off
    otherwise). BatchNorm layers normalise by the batch's own statistics, with
    their running buffers neither read nor updated (``track_running_stats``
    off), or, with ``frozen``, by the running statistics passed in with the
    parameters (see :func:`support_statistics`). The modes are restored on exit.
    Not thread-safe by itself: call it under :data:`SWAP_LOCK` (as everything
    in this module that calls it does).
    """
    modules = list(model.modules())
    norms = [m for _, m in batch_norms(model)]
    saved = [m.training for m in modules]
    tracked = [m.track_running_stats for m in norms]
    try:
        for m in modules:
            m.training = training
        for m in norms:
            m.training = not frozen
            m.track_running_stats = frozen
        yield
    finally:
        for m, mode in zip(modules, saved):
            m.training = mode
        for m, track in zip(norms, tracked):
            m.track_running_stats = track


def support_statistics(model, params, x):
    """The statistics each BatchNorm layer of ``model`` normalises ``x`` by.

    ``{"<layer>.running_mean": mean, "<layer>.running_var": var}`` of every
    BatchNorm layer's input under ``params`` (batch statistics, dropout off),
    over every axis but the channels'; the variance is the biased one, the one
    a training-mode BatchNorm divides by. A BatchNorm in eval mode with these as
    its running statistics gives the rows of ``x`` the very outputs the batch
    mode gives them.
    """
    stats = {}

    def record(name):
        def hook(module, args):
            h = args[0]
            dims = [0, *range(2, h.dim())]
            stats[f"{name}.running_mean"] = h.mean(dims)
            stats[f"{name}.running_var"] = h.var(dims, correction=0)
        return hook

    with swap_lock():
        handles = [m.register_forward_pre_hook(record(name)) for name, m in batch_norms(model)]
        try:
            with inner_loop_mode(model, training=False):
                functional_call(model, params, (x,))
        finally:
            for handle in handles:
                handle.remove()
    return stats


@contextlib.contextmanager
def explain_buffer_updates(model):
    """Turn torch.func's error at a module that updates a buffer in place into a named one.

    BatchNorm is run so that it does not (:func:`inner_loop_mode`); any other
    layer that writes to its buffers in its forward pass cannot be
    differentiated per task by torch.func.
    """
    try:
        yield
    except RuntimeError as e:
        message = str(e)
        # torch.func's words for an in-place write to a tensor captured from outside
        # grad, or to an unbatched tensor under vmap
        if "mutate a captured Tensor" not in message and "vmap: inplace" not in message:
            raise
        owners = sorted({type(m).__name__ for m in model.modules()
                         if not isinstance(m, _BatchNorm) and list(m.buffers(recurse=False))})
        raise TypeError(
            "The module updates a tensor in place in its forward pass, which the "
            "torch.func inner loop cannot differentiate per task"
            + (f" (modules with buffers: {', '.join(owners)})" if owners else "")
            + ". BatchNorm layers are supported (they normalise each task by its own "
            "rows); for other normalisation layers turn off track_running_stats, or "
            f"rewrite the forward pass without in-place updates. torch said: {message}"
        ) from e


@contextlib.contextmanager
def seeded_rng(seed, device="cpu"):
    """torch's random generator (CPU, and a CUDA device's) seeded by ``seed``, then restored.

    Meta-training draws its dropout masks from it, so a fit with the same
    ``random_state`` draws the same masks, and the caller's generator state is
    left as it was.
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    cuda = device.type == "cuda"
    index = (device.index if device.index is not None else torch.cuda.current_device()
             ) if cuda else None
    with torch.random.fork_rng(devices=[index] if cuda else []):
        torch.random.default_generator.manual_seed(int(seed))
        if cuda:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(int(seed))
        yield


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

    def per_task(self, out, y):
        """Each task's loss ``[T]`` of task-first outputs ``[T, n, out]``: :meth:`forward`
        of each task alone."""
        if self.task == "regression":
            return F.mse_loss(out[..., 0], y, reduction="none").mean(-1)
        logits = out[..., : self.n_classes]
        return F.cross_entropy(logits.flatten(0, 1), y.flatten(),
                               reduction="none").view(y.shape).mean(-1)


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


def inner_loop(model, params, x, y, *, loss, lr, steps, first_order=False, adapted=None,
               training=False, backtrack=False):
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
    training : bool, default=False
        Meta-training: Dropout on. Otherwise off. BatchNorm normalises by the
        support rows' own statistics either way (see :func:`inner_loop_mode`).
    backtrack : bool, default=False
        Undo a step that does not lower the support loss (one that raises it, or
        makes it NaN) and halve the step size for the steps left: see
        :func:`backtracking_step`. Adapting only; the meta-gradient is of the
        plain loop.

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

    with swap_lock(), inner_loop_mode(model, training):
        if backtrack:
            scale = torch.ones((), dtype=x.dtype, device=x.device)
            grad_value = grad_and_value(support_loss)
            for step in range(steps):
                g, current = grad_value(fast)
                step_taken = {k: p - scale * step_size(lr, k, step) * g[k]
                              for k, p in fast.items()}
                fast, scale = backtracking_step(fast, step_taken, current,
                                                support_loss(step_taken), scale)
            return {**fixed, **fast}
        grad_fn = grad(support_loss)
        for step in range(steps):
            g = grad_fn(fast)
            if first_order:
                g = {k: v.detach() for k, v in g.items()}
            fast = {k: p - step_size(lr, k, step) * g[k] for k, p in fast.items()}
    return {**fixed, **fast}


def backtracking_step(params, stepped, before, after, scale):
    """Keep each task's step only where it lowered the support loss; else halve its rate.

    ``before`` and ``after`` are the support losses (a scalar under ``vmap``, or
    one per task ``[T]``) at ``params`` and at ``stepped``, the parameters one
    step on with step size ``scale * lr``. Where ``after`` is not below
    ``before`` (or is NaN), the step is undone and ``scale`` halved, so the
    next step from the same point is half as long. Where every step lowers the
    loss nothing is undone (plain SGD); a task whose step overshoots (one far
    from what was meta-learned, more adaptation steps than meta-training took)
    goes on from its lowest point with shorter steps instead of leaving the
    basin.

    Returns
    -------
    params : dict of str to Tensor
    scale : Tensor
        Like ``before``.
    """
    worse = ~(after < before)
    kept = {k: torch.where(per_task(worse, stepped[k]), p, stepped[k])
            for k, p in params.items()}
    return kept, torch.where(worse, scale / 2, scale)


def per_task(v, like):
    """``v``, one value per task ``[T]``, shaped to broadcast against ``like [T, ...]``
    (a scalar, as under ``vmap``, is returned as it is)."""
    return v.reshape(v.shape + (1,) * (like.dim() - v.dim())) if v.dim() else v


class InnerLoop:
    """The inner-loop protocol: adapt a batch of tasks, and predict with the result.

    Inputs are task-first, ``[task, shot, ...]``. Implementations differ in how
    they compute, never in what: both are pinned to a per-task autograd
    reference in the tests. ``training`` says whether this is meta-training (the
    network's Dropout on) or not (meta-validation, ``adapt``, ``score``,
    ``predict``): see the module's docstring for BatchNorm and Dropout.

    Attributes
    ----------
    name : str
        What ``inner_loop_`` records on a fitted estimator.
    """

    name = None

    def adapt(self, params, xs, ys, *, loss, lr, steps, first_order=False, adapted=None,
              training=False, backtrack=False):
        """Per-task adapted parameters ``[T, ...]`` (those not adapted may stay shared).

        ``backtrack``: undo each task's steps that do not lower its support loss
        (see :func:`backtracking_step`).
        """
        raise NotImplementedError

    def forward(self, params, x, training=False):
        """Outputs ``[T, n, out]`` under per-task (or shared) parameters."""
        raise NotImplementedError

    def adapt_predict(self, params, xs, ys, xq, training=False, **inner):
        """Adapt on every task's support set, then predict its query set."""
        return self.forward(self.adapt(params, xs, ys, training=training, **inner), xq,
                            training=training)

    def adapt_many(self, params, xs, ys, **inner):
        """Adapted parameters of many tasks, each stacked on a leading task axis, no graph."""
        with torch.no_grad():
            new = self.adapt(params, xs, ys, **inner)
        n = len(xs)
        # entries not among params (frozen BatchNorm statistics) are per task already
        return {k: v if k not in params or v.dim() > params[k].dim() else v.expand(n, *v.shape)
                for k, v in new.items()}

    def predict_many(self, stacked_params, x, training=False):
        """:meth:`forward` without a graph."""
        with torch.no_grad():
            return self.forward(stacked_params, x, training=training)


class FunctionalInnerLoop(InnerLoop):
    """:func:`inner_loop` under ``vmap`` over the tasks: any module.

    ``vmap`` draws random numbers independently for each task
    (``randomness="different"``): each task of a meta-batch gets its own
    dropout masks. Adapting outside meta-training (``training=False``) adds the
    support rows' BatchNorm statistics to the adapted parameters, and
    :meth:`forward` normalises by them when they are there and ``training`` is
    False (see the module's docstring).

    Parameters
    ----------
    model : torch.nn.Module
        The architecture, called through ``functional_call``.
    """

    name = "torch.func"

    def __init__(self, model):
        self.model = model

    def _check_rows(self, x, what):
        if x.shape[1] < 2 and batch_norms(self.model):
            raise ValueError(
                f"The module has BatchNorm, which normalises by the {what} rows' own "
                f"statistics and needs at least 2 of them; got {x.shape[1]}. Give more "
                "rows, or use a module without BatchNorm (LayerNorm normalises each row "
                "by itself)."
            )

    def adapt(self, params, xs, ys, *, loss, lr, steps, first_order=False, adapted=None,
              training=False, backtrack=False):
        self._check_rows(xs, "support set's")
        freeze = not training and bool(batch_norms(self.model))

        def one(x, y):
            new = inner_loop(self.model, params, x, y, loss=loss, lr=lr, steps=steps,
                             first_order=first_order, adapted=adapted, training=training,
                             backtrack=backtrack)
            if freeze:
                new.update(support_statistics(self.model, new, x))
            return new

        with swap_lock(), explain_buffer_updates(self.model):
            return vmap(one, randomness="different")(xs, ys)

    def statistics(self, params, xs):
        """Each task's :func:`support_statistics` of its rows ``xs [T, n, ...]``, stacked."""
        with swap_lock():
            return vmap(lambda x: support_statistics(self.model, params, x),
                        randomness="different")(xs)

    def forward(self, params, x, training=False):
        # a parameter with no task axis (not adapted, e.g. ANIL's body) is shared;
        # frozen statistics always have one
        own = {k: v.dim() for k, v in self.model.named_parameters()}
        dims = {k: 0 if v.dim() > own.get(k, v.dim() - 1) else None for k, v in params.items()}
        frozen = not training and frozen_statistics(params)
        if not frozen:
            self._check_rows(x, "batch's")
        with (swap_lock(), explain_buffer_updates(self.model),
              inner_loop_mode(self.model, training, frozen=frozen)):
            return vmap(lambda p, xt: functional_call(self.model, p, (xt,)),
                        in_dims=(dims, 0), randomness="different")(params, x)
