"""Meta-learning algorithms as small strategies over one inner-loop protocol.

An algorithm is a small record that says four things, and nothing else differs
between algorithms:

- what is meta-learned: :meth:`learner` wraps the network (the initialisation,
  or ProtoNet's embedding) and, for Meta-SGD, the inner step sizes, in one
  :class:`Learner` module (one ``state_dict``);
- the meta-loss of one meta-batch, :meth:`meta_loss`, whose gradient is the
  meta-gradient: the query loss after adaptation (MAML, Meta-SGD, ANIL,
  ProtoNet), or for Reptile a surrogate whose gradient is the pull towards the
  adapted weights; the skorch net back-propagates it with its own ``backward``;
- how a batch of tasks adapts, :meth:`adapt`, which is also what ``adapt`` and
  ``score`` run; and what predicts afterwards, :meth:`predictor`;
- the outer optimizer.

The algorithms are siblings, not subclasses of one another. What the
gradient-based ones share is a component, :class:`GradientSteps` (the inner
loop's step sizes, steps and which parameters move), and MAML, Meta-SGD and
ANIL are the one :class:`QueryLoss` strategy over three configurations of it.
"""

from dataclasses import dataclass

import torch

from . import BatchedMLPInnerLoop, FunctionalInnerLoop, inner_loop, select_inner_loop
from .functional import batch_norms, inner_loop_mode, swap_lock

# Meta-SGD's learned step sizes stay within [0, RATE_BOUND * inner_lr].
RATE_BOUND = 10.0

__all__ = ["RATE_BOUND", "GradientSteps", "Learner", "ProtoNet", "QueryLoss", "QueryObjective",
           "Reptile", "anil", "maml", "meta_sgd"]


class Learner(torch.nn.Module):
    """Everything an algorithm meta-learns, in one module (one state_dict).

    Parameters
    ----------
    net : torch.nn.Module
        The network: MAML's initialisation, ProtoNet's embedding.
    n_features : int
        Input width of ``net``.
    lrs : torch.nn.ParameterList, default=None
        Meta-SGD's step sizes, one entry per parameter of ``net`` in
        ``named_parameters`` order.
    inner_loop : InnerLoop, default=None
        The implementation of the inner loop for ``net``
        (:func:`sklmeta._core.select_inner_loop`), chosen once.
    """

    def __init__(self, net, n_features, lrs=None, inner_loop=None):
        super().__init__()
        self.net = net
        self.n_features = n_features
        self.lrs = lrs
        self.inner_loop = inner_loop if inner_loop is not None else FunctionalInnerLoop(net)

    def forward(self, x):
        with swap_lock():  # no other thread's functional_call has swapped weights in
            return self.net(x)

    def params(self):
        with swap_lock():
            return dict(self.net.named_parameters())


def head_names(net):
    """Parameter names of the last submodule that holds parameters (ANIL's head)."""
    head = None
    for prefix, module in net.named_modules():
        own = [name for name, _ in module.named_parameters(recurse=False)]
        if own:
            head = [f"{prefix}.{name}" if prefix else name for name in own]
    return head


def _check_finite(params, why, advice):
    if not all(torch.isfinite(v).all() for v in params.values()):
        raise FloatingPointError(
            f"Adaptation diverged: {why}the adapted parameters are not finite. {advice}")
    return params


@dataclass(frozen=True)
class GradientSteps:
    """How a task adapts by gradient steps: MAML's inner loop and its variants.

    Parameters
    ----------
    inner_lr : float
        Step size (Meta-SGD: the learned step sizes' initial value).
    inner_steps : int
        Steps in meta-training.
    adapt_steps : int
        Steps when adapting (``adapt``, ``score``, meta-validation).
    first_order : bool, default=False
        Detach the inner gradients in meta-training.
    head_only : bool, default=False
        Adapt only the last submodule with parameters (ANIL).
    lr_mode : {None, "element", "tensor-step"}, default=None
        Meta-learn the step sizes (Meta-SGD): per parameter element, or per
        parameter tensor and inner step (MAML++'s LSLR).
    backtrack : bool, default=True
        Outside meta-training (``adapt``, ``score``, meta-validation), undo a
        task's step that does not lower its support loss and halve its step
        size (:func:`~sklmeta._core.functional.backtracking_step`). Meta-training's
        inner loop is plain SGD either way.
    """

    inner_lr: float
    inner_steps: int
    adapt_steps: int
    first_order: bool = False
    head_only: bool = False
    lr_mode: str = None
    backtrack: bool = True

    def learner(self, net, n_features):
        lrs = None
        if self.lr_mode is not None:
            shapes = [p.shape if self.lr_mode == "element" else (self.inner_steps,)
                      for p in net.parameters()]
            lrs = torch.nn.ParameterList(
                torch.nn.Parameter(torch.full(s, float(self.inner_lr))) for s in shapes)
        adapted = head_names(net) if self.head_only else None
        return Learner(net, n_features, lrs, select_inner_loop(net, adapted))

    def _rates(self, learner):
        """Meta-SGD's learned rates, bounded to ``[0, RATE_BOUND * inner_lr]``.

        Unbounded, they run away (Meta-SGD on sinusoids learned rates that made
        every validation adaptation diverge); the bound keeps each rate a step
        size, never an ascent and never more than ``RATE_BOUND`` times its start.
        """
        return [lr.clamp(0.0, RATE_BOUND * self.inner_lr) for lr in learner.lrs]

    def step_sizes(self, learner):
        if self.lr_mode is None:
            return self.inner_lr
        names = [name for name, _ in learner.net.named_parameters()]
        if self.lr_mode == "element":
            return dict(zip(names, self._rates(learner)))
        return [{k: lr[step] for k, lr in zip(names, self._rates(learner))}
                for step in range(self.inner_steps)]

    def options(self, learner, training):
        """The inner loop's keyword arguments in meta-training or adaptation."""
        return dict(lr=self.step_sizes(learner),
                    adapted=head_names(learner.net) if self.head_only else None,
                    steps=self.inner_steps if training else self.adapt_steps,
                    backtrack=self.backtrack and not training)

    def divergence_advice(self):
        if self.lr_mode is not None:
            return (f"Meta-SGD's step sizes were learned for {self.inner_steps} inner "
                    "step(s); adapt with that many (adapt_steps=None).")
        return f"Use fewer adapt_steps or a smaller inner_lr (now {self.inner_lr})."

    def learned_step_sizes(self, learner):
        """``{parameter name: ndarray}``, as used (bounded): per element, or per step."""
        names = [name for name, _ in learner.net.named_parameters()]
        return {k: lr.detach().cpu().numpy().copy()
                for k, lr in zip(names, self._rates(learner))}


class QueryObjective:
    """The meta-loss of a strategy whose query outputs are differentiable end to end.

    The query loss of ``query_outputs(..., training=True)``, which is also the loss
    reported: MAML and its variants, ProtoNet, R2-D2.
    """

    def meta_loss(self, learner, xs, ys, xq, yq, *, loss):
        """``(objective, reported loss, outputs)`` of one meta-batch."""
        out = self.query_outputs(learner, xs, ys, xq, loss=loss, training=True)
        value = loss(out, yq)
        return value, value, out.detach()


class QueryLoss(QueryObjective):
    """MAML, Meta-SGD and ANIL: the meta-loss is the query loss after adaptation.

    Parameters
    ----------
    steps : GradientSteps
        The inner loop (all weights; learned step sizes; the head only).
    """

    optimizer = torch.optim.Adam

    def __init__(self, steps):
        self.steps = steps

    def learner(self, net, n_features):
        return self.steps.learner(net, n_features)

    def query_outputs(self, learner, xs, ys, xq, *, loss, training):
        """Query outputs ``[T, Q, out]`` after adapting on each support set."""
        options = self.steps.options(learner, training)
        return learner.inner_loop.adapt_predict(
            learner.params(), xs, ys, xq, loss=loss, training=training,
            first_order=self.steps.first_order and training, **options)

    def adapt(self, learner, xs, ys, *, loss):
        """Adapted parameters ``[T, ...]``; FloatingPointError if the steps blow up."""
        params = {k: v.detach() for k, v in learner.params().items()}
        new = learner.inner_loop.adapt_many(params, xs, ys, loss=loss,
                                            **self.steps.options(learner, training=False))
        return _check_finite(new, f"after {self.steps.adapt_steps} inner steps ",
                             self.steps.divergence_advice())

    def predictor(self, learner):
        """What the adapted parameters are applied to: ``(module, inner loop)``."""
        return learner.net, learner.inner_loop

    def fitted_attributes(self, learner):
        """Algorithm-specific fitted attributes (Meta-SGD's ``inner_lrs_``)."""
        if self.steps.lr_mode is None:
            return {}
        return {"inner_lrs_": self.steps.learned_step_sizes(learner)}


def maml(inner_lr, inner_steps, adapt_steps, first_order=False, adapt_backtrack=True):
    """MAML (Finn et al., 2017): adapt all parameters with SGD steps."""
    return QueryLoss(GradientSteps(inner_lr, inner_steps, adapt_steps, first_order,
                                   backtrack=adapt_backtrack))


def meta_sgd(inner_lr, inner_steps, adapt_steps, first_order=False, lr_mode="element",
             adapt_backtrack=True):
    """Meta-SGD (Li et al., 2017): the inner step sizes are meta-learned too."""
    return QueryLoss(GradientSteps(inner_lr, inner_steps, adapt_steps, first_order,
                                   lr_mode=lr_mode, backtrack=adapt_backtrack))


def anil(inner_lr, inner_steps, adapt_steps, first_order=False, adapt_backtrack=True):
    """ANIL (Raghu et al., 2020): the inner loop adapts only the head."""
    return QueryLoss(GradientSteps(inner_lr, inner_steps, adapt_steps, first_order,
                                   head_only=True, backtrack=adapt_backtrack))


class Reptile:
    """Reptile (Nichol et al., 2018): move the weights towards the adapted weights.

    Each task is adapted with ``inner_steps`` SGD steps on its rows (support
    and query together: Reptile needs no separate query set): all of them at
    every step, or with ``inner_batch_size`` a different mini-batch of that
    many rows at each step, cycling through them. The meta-loss is the
    surrogate ``sum 0.5 ||w - mean(adapted w)||^2`` with the adapted weights
    held constant: its gradient is ``w - mean(adapted w)``, which the outer SGD
    step (step size ``meta_lr``) turns into ``w += meta_lr * mean(adapted - w)``.

    Mini-batches matter: Reptile's update contains, to second order, a term that
    raises the inner product of the gradients of *different* mini-batches of
    a task (what makes one step generalise within the task); with the same
    rows at every step that term only sharpens the fit to those rows (Nichol
    et al., section 5).

    Parameters
    ----------
    inner_lr : float
    inner_steps : int
    adapt_steps : int
    inner_batch_size : int, default=None
        Rows per inner step in meta-training; None: all of a task's rows.
    adapt_backtrack : bool, default=True
        :class:`GradientSteps`'s ``backtrack``.
    """

    optimizer = torch.optim.SGD

    def __init__(self, inner_lr, inner_steps, adapt_steps, inner_batch_size=None,
                 adapt_backtrack=True):
        self.steps = GradientSteps(inner_lr, inner_steps, adapt_steps,
                                   backtrack=adapt_backtrack)
        self.inner_batch_size = inner_batch_size
        self._query_loss = QueryLoss(self.steps)  # validation and adaptation are MAML's

    def learner(self, net, n_features):
        return self.steps.learner(net, n_features)

    def query_outputs(self, learner, xs, ys, xq, *, loss, training):
        return self._query_loss.query_outputs(learner, xs, ys, xq, loss=loss, training=training)

    def _adapt_in_batches(self, learner, params, x, y, *, loss):
        """``inner_steps`` steps, each on the next ``inner_batch_size`` rows of every task."""
        n, size = x.shape[1], min(self.inner_batch_size, x.shape[1])
        lr, new = self.steps.inner_lr, None
        for step in range(self.steps.inner_steps):
            rows = torch.arange(step * size, (step + 1) * size, device=x.device) % n
            xb, yb = x[:, rows], y[:, rows]
            if new is None:  # the shared start: any inner loop
                new = learner.inner_loop.adapt_many(params, xb, yb, loss=loss, lr=lr, steps=1,
                                                    training=True)
                continue
            if isinstance(learner.inner_loop, BatchedMLPInnerLoop):  # per-task weights
                with torch.no_grad():
                    new = learner.inner_loop.adapt(new, xb, yb, loss=loss, lr=lr, steps=1,
                                                   training=True)
                continue
            with torch.no_grad(), swap_lock():  # one step from each task's own weights
                new = torch.func.vmap(
                    lambda p, xt, yt: inner_loop(learner.net, p, xt, yt, loss=loss, lr=lr,
                                                 steps=1, training=True),
                    randomness="different")(new, xb, yb)
        return new

    def meta_loss(self, learner, xs, ys, xq, yq, *, loss):
        x, y = torch.cat([xs, xq], dim=1), torch.cat([ys, yq], dim=1)
        params = learner.params()
        detached = {k: v.detach() for k, v in params.items()}
        if self.inner_batch_size is None:
            new = learner.inner_loop.adapt_many(detached, x, y, loss=loss, lr=self.steps.inner_lr,
                                                steps=self.steps.inner_steps, training=True)
        else:
            new = self._adapt_in_batches(learner, detached, x, y, loss=loss)
        objective = sum(0.5 * (p - new[k].mean(0)).pow(2).sum() for k, p in params.items())
        # the adapted weights on their own rows
        out = learner.inner_loop.predict_many(new, x, training=True)
        return objective, loss(out, y), out

    def adapt(self, learner, xs, ys, *, loss):
        return self._query_loss.adapt(learner, xs, ys, loss=loss)

    def predictor(self, learner):
        return self._query_loss.predictor(learner)

    def fitted_attributes(self, learner):
        return {}


class ProtoNet(QueryObjective):
    """Prototypical Networks (Snell et al., 2017): nearest class mean in an embedding.

    A query's logit for class ``c`` is ``-||f(x) - p_c||^2`` up to a term that
    is the same for every class, with ``p_c`` the mean embedding of the class's
    support rows. That is a linear head on the embedding, ``W = 2 p``,
    ``b = -||p||^2``: adapting sets that head, with no gradient steps, and the
    adapted model is ``Sequential(embedding, Linear)``, for any number of classes.
    """

    optimizer = torch.optim.Adam
    any_number_of_classes = True

    def learner(self, net, n_features):
        return Learner(net, n_features, inner_loop=select_inner_loop(net))

    @staticmethod
    def _head(embedding, ys, n_way):
        onehot = torch.nn.functional.one_hot(ys, n_way).to(embedding.dtype)  # [T, S, C]
        present = onehot.sum(1)  # [T, C]
        protos = onehot.transpose(1, 2) @ embedding / present.clamp(min=1).unsqueeze(-1)
        # a class absent from the support set is never predicted (fixed labels leave
        # gaps between the support's classes)
        bias = torch.where(present > 0, -(protos**2).sum(-1), torch.full_like(present, -1e9))
        return 2 * protos, bias

    @staticmethod
    def _n_way(loss, ys):
        return loss.n_classes if loss.n_classes is not None else int(ys.max()) + 1

    @staticmethod
    def _embed(learner, x, training=False, statistics=None):
        """Embeddings ``[T, n, E]`` of task-first inputs, in the inner loop's mode.

        Without BatchNorm, through one forward pass over all tasks' rows. With
        it, task by task (under ``vmap``): each task's rows normalised by their
        own statistics, or by ``statistics`` (frozen from the support set).
        """
        net = learner.net
        if not batch_norms(net):
            with swap_lock(), inner_loop_mode(net, training):
                return net(x.flatten(0, 1)).unflatten(0, x.shape[:2])
        return FunctionalInnerLoop(net).forward({**learner.params(), **(statistics or {})}, x,
                                                training=training)

    @staticmethod
    def _statistics(learner, xs, training):
        """The support sets' BatchNorm statistics ``{name: [T, C]}`` outside meta-training."""
        if training or not batch_norms(learner.net):
            return {}
        return FunctionalInnerLoop(learner.net).statistics(learner.params(), xs)

    def query_outputs(self, learner, xs, ys, xq, *, loss, training):
        weight, bias = self._head(self._embed(learner, xs, training), ys, self._n_way(loss, ys))
        query = self._embed(learner, xq, training, self._statistics(learner, xs, training))
        return torch.baddbmm(bias.unsqueeze(1), query, weight.transpose(1, 2))

    def adapt(self, learner, xs, ys, *, loss):
        with torch.no_grad():
            weight, bias = self._head(self._embed(learner, xs), ys, self._n_way(loss, ys))
            statistics = self._statistics(learner, xs, training=False)
        n = len(xs)
        params = {f"0.{k}": v.detach().expand(n, *v.shape)
                  for k, v in learner.params().items()}
        params.update({f"0.{k}": v for k, v in statistics.items()})
        return _check_finite({**params, "1.weight": weight, "1.bias": bias}, "",
                             "Rescale the inputs (standardize='auto').")

    def predictor(self, learner):
        with torch.no_grad():
            device = next(learner.parameters()).device
            with swap_lock(), inner_loop_mode(learner.net, training=False):
                width = learner.net(torch.zeros(2, learner.n_features, device=device)).shape[-1]
        # a placeholder head: the adapted parameters (one row per class) replace it
        module = torch.nn.Sequential(learner.net, torch.nn.Linear(width, 1))
        return module, FunctionalInnerLoop(module)

    def fitted_attributes(self, learner):
        return {}
