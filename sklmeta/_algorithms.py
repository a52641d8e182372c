"""Meta-learning algorithms as small strategies over one functional core.

An algorithm says three things, and nothing else differs between them:

- what is meta-learned: :class:`Learner` holds the network (the initialisation,
  or ProtoNet's embedding) and, for Meta-SGD, the inner step sizes;
- how a batch of tasks is adapted (:meth:`MAML.adapt`), which is also what
  ``adapt`` and ``score`` run, and what predicts afterwards
  (:meth:`MAML.predict_module`);
- the meta-update of one meta-batch (:meth:`MAML.meta_step`): the query loss
  after adaptation, back-propagated (MAML, Meta-SGD, ANIL, ProtoNet), or
  Reptile's pull towards the adapted weights.

The skorch loop (:class:`sklmeta._training.MetaNet`), the episode sampling, the
estimators and their scikit-learn contract are shared by all of them.
"""

import torch

from ._functional import adapt_many, adapt_predict, predict_many

__all__ = ["Learner", "MAML", "MetaSGD", "ANIL", "Reptile", "ProtoNet"]


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
    """

    def __init__(self, net, n_features, lrs=None):
        super().__init__()
        self.net = net
        self.n_features = n_features
        self.lrs = lrs

    def forward(self, x):
        return self.net(x)

    def params(self):
        return dict(self.net.named_parameters())


def _head_names(net):
    """Parameter names of the last submodule that holds parameters (ANIL's head)."""
    head = None
    for prefix, module in net.named_modules():
        own = [name for name, _ in module.named_parameters(recurse=False)]
        if own:
            head = [f"{prefix}.{name}" if prefix else name for name in own]
    return head


class MAML:
    """MAML (Finn et al., 2017): adapt all parameters with ``steps`` SGD steps.

    Parameters
    ----------
    inner_lr : float
    inner_steps : int
        Inner steps of meta-training.
    adapt_steps : int
        Inner steps of adaptation (``adapt``, ``score``, meta-validation).
    first_order : bool
        Detach the inner gradients in meta-training.
    """

    optimizer = torch.optim.Adam

    def __init__(self, inner_lr, inner_steps, adapt_steps, first_order=False):
        self.inner_lr = inner_lr
        self.inner_steps = inner_steps
        self.adapt_steps = adapt_steps
        self.first_order = first_order

    def learner(self, net, n_features):
        return Learner(net, n_features)

    def adapted_names(self, learner):
        """Parameters the inner loop updates; None means all of them."""
        return None

    def step_sizes(self, learner):
        return self.inner_lr

    def _inner(self, learner, training):
        return dict(
            lr=self.step_sizes(learner), adapted=self.adapted_names(learner),
            steps=self.inner_steps if training else self.adapt_steps,
        )

    def query_outputs(self, learner, xs, ys, xq, *, loss, training):
        """Query outputs ``[T, Q, out]`` after adapting on each support set."""
        return adapt_predict(learner.net, learner.params(), xs, ys, xq, loss=loss,
                             first_order=self.first_order and training,
                             **self._inner(learner, training))

    def meta_step(self, net, xs, ys, xq, yq):
        """One meta-batch: set the gradients of ``net.module_``; return (loss, outputs)."""
        out = self.query_outputs(net.module_, xs, ys, xq, loss=net.criterion_, training=True)
        loss = net.get_loss(out, yq, training=True)
        net.backward(loss)
        return loss, out.detach()

    def adapt(self, learner, xs, ys, *, loss):
        """Adapted parameters of ``predict_module`` for a batch of tasks ``[T, ...]``.

        Raises FloatingPointError when the steps blow up (non-finite parameters),
        rather than predicting NaN.
        """
        params = {k: v.detach() for k, v in learner.params().items()}
        new = adapt_many(learner.net, params, xs, ys, loss=loss,
                         **self._inner(learner, training=False))
        if not all(torch.isfinite(v).all() for v in new.values()):
            raise FloatingPointError(
                f"Adaptation diverged: after {self.adapt_steps} inner steps the adapted "
                f"parameters are not finite. {self._divergence_advice()}"
            )
        return new

    def _divergence_advice(self):
        return f"Use fewer adapt_steps or a smaller inner_lr (now {self.inner_lr})."

    def predict_module(self, learner):
        """The module that adapted parameters are applied to."""
        return learner.net


class MetaSGD(MAML):
    """Meta-SGD (Li et al., 2017): the inner step sizes are meta-learned too.

    ``lr_mode="element"`` learns one step size per parameter element, shared by
    the inner steps (the paper); ``"tensor-step"`` learns one per parameter
    tensor and per inner step (MAML++'s LSLR). The rates start at ``inner_lr``.
    """

    def __init__(self, inner_lr, inner_steps, adapt_steps, first_order=False,
                 lr_mode="element"):
        super().__init__(inner_lr, inner_steps, adapt_steps, first_order)
        self.lr_mode = lr_mode

    def learner(self, net, n_features):
        if self.lr_mode == "element":
            shapes = [p.shape for p in net.parameters()]
        else:
            shapes = [(self.inner_steps,) for _ in net.parameters()]
        return Learner(net, n_features, torch.nn.ParameterList(
            torch.nn.Parameter(torch.full(s, float(self.inner_lr))) for s in shapes))

    def step_sizes(self, learner):
        names = [name for name, _ in learner.net.named_parameters()]
        if self.lr_mode == "element":
            return dict(zip(names, learner.lrs))
        return [{k: lr[step] for k, lr in zip(names, learner.lrs)}
                for step in range(self.inner_steps)]

    def _divergence_advice(self):
        return (f"Meta-SGD's step sizes were learned for {self.inner_steps} inner step(s); "
                "adapt with that many (adapt_steps=None).")

    def learned_step_sizes(self, learner):
        """``{parameter name: ndarray}``: per element, or ``[inner_steps]`` per tensor."""
        names = [name for name, _ in learner.net.named_parameters()]
        return {k: lr.detach().cpu().numpy().copy() for k, lr in zip(names, learner.lrs)}


class ANIL(MAML):
    """ANIL (Raghu et al., 2020): the inner loop adapts only the head.

    The head is the last submodule with parameters (the output ``Linear`` of the
    default MLP); the body is meta-learned but unchanged by adaptation.
    """

    def adapted_names(self, learner):
        return _head_names(learner.net)


class Reptile(MAML):
    """Reptile (Nichol et al., 2018): move the weights towards the adapted weights.

    Each task is adapted with ``inner_steps`` SGD steps on all its rows (support
    and query together: Reptile needs no separate query set); the meta-gradient
    is ``weights - mean(adapted weights)``, which the outer SGD step (step size
    ``meta_lr``) turns into ``weights += meta_lr * mean(adapted - weights)``.
    """

    optimizer = torch.optim.SGD

    def meta_step(self, net, xs, ys, xq, yq):
        learner = net.module_
        x, y = torch.cat([xs, xq], dim=1), torch.cat([ys, yq], dim=1)
        params = learner.params()
        new = adapt_many(learner.net, {k: v.detach() for k, v in params.items()}, x, y,
                         loss=net.criterion_, lr=self.inner_lr, steps=self.inner_steps)
        for k, p in params.items():
            p.grad = p.detach() - new[k].mean(0)
        out = predict_many(learner.net, new, x)  # the adapted weights on their own rows
        return net.get_loss(out, y, training=True), out


class ProtoNet(MAML):
    """Prototypical Networks (Snell et al., 2017): nearest class mean in an embedding.

    A query's logit for class ``c`` is ``-||f(x) - p_c||^2`` up to a term that
    is the same for every class, with ``p_c`` the mean embedding of the class's
    support rows. That is a linear head on the embedding, ``W = 2 p``,
    ``b = -||p||^2``: adapting sets that head, with no gradient steps, and the
    adapted model is ``Sequential(embedding, Linear)``.
    """

    def __init__(self):
        super().__init__(inner_lr=None, inner_steps=0, adapt_steps=0)

    @staticmethod
    def _head(embedding, ys, n_way):
        onehot = torch.nn.functional.one_hot(ys, n_way).to(embedding.dtype)  # [T, S, C]
        counts = onehot.sum(1).clamp(min=1).unsqueeze(-1)  # an absent class: a zero prototype
        protos = onehot.transpose(1, 2) @ embedding / counts  # [T, C, E]
        return 2 * protos, -(protos**2).sum(-1)

    def _n_way(self, loss, ys):
        return loss.n_classes if loss.n_classes is not None else int(ys.max()) + 1

    @staticmethod
    def _embed(learner, x):
        """Embeddings ``[T, n, E]`` of task-first inputs, through one forward pass."""
        return learner(x.flatten(0, 1)).unflatten(0, x.shape[:2])

    def query_outputs(self, learner, xs, ys, xq, *, loss, training):
        weight, bias = self._head(self._embed(learner, xs), ys, self._n_way(loss, ys))
        return torch.baddbmm(bias.unsqueeze(1), self._embed(learner, xq), weight.transpose(1, 2))

    def adapt(self, learner, xs, ys, *, loss):
        with torch.no_grad():
            weight, bias = self._head(self._embed(learner, xs), ys, self._n_way(loss, ys))
        n = len(xs)
        params = {f"0.{k}": v.detach().expand(n, *v.shape)
                  for k, v in learner.params().items()}
        return {**params, "1.weight": weight, "1.bias": bias}

    def predict_module(self, learner):
        with torch.no_grad():
            device = next(learner.parameters()).device
            width = learner(torch.zeros(1, learner.n_features, device=device)).shape[-1]
        # a placeholder head: the adapted parameters (one row per class) replace it
        return torch.nn.Sequential(learner.net, torch.nn.Linear(width, 1))
