"""The inner loop hand-batched for sklmeta's own MLP: one implementation of the protocol.

For a network made of ``Linear`` layers with the activations of
:data:`sklmeta._core.nets.ACTIVATIONS` between them (what
:func:`~sklmeta._core.nets.make_mlp` builds), the gradient of each task's support
loss is written out as batched matrix products instead of being taken by
``torch.func.grad`` under ``vmap``. The math is the same; two things change:

- the tasks of a meta-batch are one batched matmul per layer (no per-op ``vmap``
  dispatch), and the first step of every task shares one GEMM for all tasks;
- the meta-gradient needs only *first-order* autograd through these
  expressions: autograd differentiates the hand-written inner gradient, which
  gives the exact second-order MAML meta-gradient (ReLU's mask is constant, as in
  autograd's own double backward), and ``first_order=True`` detaches it.

The choice between this and :class:`~sklmeta._core.functional.FunctionalInnerLoop`
is made once, at fit, by :func:`sklmeta._core.select_inner_loop`, and recorded in
the fitted estimator's ``inner_loop_``. Both are checked against each other and
against a per-task autograd reference in the tests.
"""

import contextlib

import torch

from .functional import InnerLoop, backtracking_step, per_task, step_size

__all__ = ["BatchedMLPInnerLoop", "mlp_layers"]


def _activation_name(module):
    """The name of a supported activation module, else None (GELU's tanh form is not)."""
    if type(module) is torch.nn.ReLU:
        return "relu"
    if type(module) is torch.nn.Tanh:
        return "tanh"
    if type(module) is torch.nn.GELU and module.approximate == "none":
        return "gelu"
    return None


def mlp_layers(module):
    """``((weight, bias, activation or None), ...)`` of a plain MLP, else None.

    A plain MLP is a ``torch.nn.Sequential`` alternating ``Linear`` (with bias)
    and ReLU, Tanh or GELU, ending with a ``Linear``.
    """
    if type(module) is not torch.nn.Sequential or len(module) == 0 or len(module) % 2 == 0:
        return None
    layers = []
    for i in range(0, len(module), 2):
        linear = module[i]
        if type(linear) is not torch.nn.Linear or linear.bias is None:
            return None
        act = None
        if i + 1 < len(module):
            act = _activation_name(module[i + 1])
            if act is None:
                return None
        layers.append((f"{i}.weight", f"{i}.bias", act))
    return tuple(layers)


def _linear(h, weight, bias):
    """One fused op: ``addmm`` for a weight shared by all tasks, ``baddbmm`` per task."""
    if weight.dim() == 2:  # [out, in]: one GEMM over all tasks' rows
        return torch.nn.functional.linear(h, weight, bias)
    return torch.baddbmm(bias.unsqueeze(-2), h, weight.transpose(-1, -2))


_FORWARD = {"relu": torch.relu, "tanh": torch.tanh, "gelu": torch.nn.functional.gelu}


def _forward(layers, params, x, cache=None):
    """Outputs ``[T, n, out]``; with ``cache`` (a list), each layer's input, pre-activation
    and output."""
    h = x
    for weight, bias, act in layers:
        z = _linear(h, params[weight], params[bias])
        out = _FORWARD[act](z) if act is not None else z
        if cache is not None:
            cache.append((h, z, out))
        h = out
    return h


def _activation_backward(act, d_h, z, out):
    """d(loss)/d(pre-activation), with the ops autograd itself uses (differentiable too)."""
    if act == "relu":
        return torch.ops.aten.threshold_backward(d_h, out, 0.0)
    if act == "tanh":
        return torch.ops.aten.tanh_backward(d_h, out)
    return torch.ops.aten.gelu_backward(d_h, z)


def _backward(layers, params, cache, d_out):
    """Per-task parameter gradients, given d(task loss)/d(output) ``[T, n, out]``."""
    grads = {}
    d_z = d_out
    for i in range(len(layers) - 1, -1, -1):
        weight, bias, _ = layers[i]
        h_in = cache[i][0]
        grads[weight] = d_z.transpose(-1, -2) @ h_in
        grads[bias] = d_z.sum(-2)
        if i > 0:
            d_z = _activation_backward(layers[i - 1][2], d_z @ params[weight], *cache[i - 1][1:])
    return grads


def _output_grad(loss, out, y):
    """d(mean task loss)/d(output) for :class:`~sklmeta._core.functional.EpisodeLoss`."""
    n = out.shape[-2]
    if loss.task == "regression":
        return (2.0 / n) * (out - y.unsqueeze(-1))
    c = loss.n_classes if loss.n_classes is not None else out.shape[-1]
    p = torch.softmax(out[..., :c], dim=-1)
    d = (p - torch.nn.functional.one_hot(y, c).to(p.dtype)) / n
    if c < out.shape[-1]:
        d = torch.nn.functional.pad(d, (0, out.shape[-1] - c))
    return d


def _backtracking_steps(layers, params, x, y, *, loss, lr, steps):
    """:func:`_steps` that undoes a task's step where its loss did not fall (adapting only)."""
    scale = torch.ones(len(x), dtype=x.dtype, device=x.device)
    for step in range(steps):
        cache = []
        out = _forward(layers, params, x, cache)
        grads = _backward(layers, params, cache, _output_grad(loss, out, y))
        stepped = {k: p - per_task(scale, grads[k]) * step_size(lr, k, step) * grads[k]
                   for k, p in params.items()}
        after = loss.per_task(_forward(layers, stepped, x), y)
        params, scale = backtracking_step(params, stepped, loss.per_task(out, y), after, scale)
    return params


def _steps(layers, params, x, y, *, loss, lr, steps, first_order, backtrack=False):
    """``steps`` inner steps of every task at once; ``params`` shared or per task."""
    if backtrack:
        return _backtracking_steps(layers, params, x, y, loss=loss, lr=lr, steps=steps)
    for step in range(steps):
        # first-order: the inner gradient is a constant, so build no graph for it
        with torch.no_grad() if first_order else contextlib.nullcontext():
            cache = []
            out = _forward(layers, params, x, cache)
            grads = _backward(layers, params, cache, _output_grad(loss, out, y))
        if isinstance(lr, (int, float)):
            params = {k: torch.add(p, grads[k], alpha=-lr) for k, p in params.items()}
        else:
            params = {k: p - step_size(lr, k, step) * grads[k] for k, p in params.items()}
    return params


class BatchedMLPInnerLoop(InnerLoop):
    """The inner loop of a plain MLP as batched matrix products over the tasks.

    Parameters
    ----------
    layers : tuple
        :func:`mlp_layers` of the network.
    head_only : bool, default=False
        Adapt only the last layer (ANIL), on body features computed once; the
        body's parameters come back as given (shared by all tasks).
    """

    name = "batched-mlp"

    def __init__(self, layers, head_only=False):
        self.layers = layers
        self.head_only = head_only

    def adapt(self, params, xs, ys, *, loss, lr, steps, first_order=False, adapted=None,
              training=False, backtrack=False):
        # a plain MLP has no Dropout or BatchNorm: training changes nothing
        if not self.head_only:
            return _steps(self.layers, params, xs, ys, loss=loss, lr=lr, steps=steps,
                          first_order=first_order, backtrack=backtrack)
        body, head = self.layers[:-1], self.layers[-1:]
        features = _forward(body, params, xs)
        head_params = _steps(head, {k: params[k] for k in head[0][:2]}, features, ys,
                             loss=loss, lr=lr, steps=steps, first_order=first_order,
                             backtrack=backtrack)
        return {**params, **head_params}

    def forward(self, params, x, training=False):
        return _forward(self.layers, params, x)
