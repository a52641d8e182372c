"""A hand-batched inner loop for sklmeta's own MLP.

For a network made of ``Linear`` layers with ReLU or Tanh between them (what
:func:`sklmeta.estimators.make_mlp` builds), the gradient of each task's support
loss is written out as batched matrix products instead of being taken by
``torch.func.grad`` under ``vmap``. The math is the same; two things change:

- the tasks of a meta-batch are one batched matmul per layer (no per-op ``vmap``
  dispatch), and the first step of every task shares one GEMM for all tasks;
- the meta-gradient needs only *first-order* autograd through these
  expressions: autograd differentiates the hand-written inner gradient, which
  gives the exact second-order MAML meta-gradient (ReLU's mask is constant, as in
  autograd's own double backward), and ``first_order=True`` detaches it.

Any other module goes through the generic torch.func path; both are checked
against each other and against a per-task autograd reference in the tests.
"""

import contextlib

import torch

__all__ = ["mlp_layers", "mlp_forward", "mlp_inner_loop", "step_size"]

_ACTIVATIONS = {torch.nn.ReLU: "relu", torch.nn.Tanh: "tanh"}


def mlp_layers(module):
    """``[(weight, bias, activation or None), ...]`` of a plain MLP, else None.

    A plain MLP is a ``torch.nn.Sequential`` alternating ``Linear`` (with bias)
    and ReLU/Tanh, ending with a ``Linear``.
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
            act = _ACTIVATIONS.get(type(module[i + 1]))
            if act is None:
                return None
        layers.append((f"{i}.weight", f"{i}.bias", act))
    return tuple(layers)


def _linear(h, weight, bias):
    """One fused op: ``addmm`` for a weight shared by all tasks, ``baddbmm`` per task."""
    if weight.dim() == 2:  # [out, in]: one GEMM over all tasks' rows
        return torch.nn.functional.linear(h, weight, bias)
    return torch.baddbmm(bias.unsqueeze(-2), h, weight.transpose(-1, -2))


def mlp_forward(layers, params, x, cache=None):
    """Outputs ``[T, n, out]`` of the MLP for task-first inputs ``x [T, n, in]``.

    With ``cache`` (a list), the layer inputs and activations are appended for
    :func:`_mlp_backward`.
    """
    h = x
    for weight, bias, act in layers:
        z = _linear(h, params[weight], params[bias])
        if cache is not None:
            cache.append(h)
        if act == "relu":
            h = torch.relu(z)
        elif act == "tanh":
            h = torch.tanh(z)
        else:
            h = z
        if cache is not None and act is not None:
            cache.append(h)
    return h


def _mlp_backward(layers, params, cache, d_out):
    """Per-task parameter gradients, given d(task loss)/d(output) ``[T, n, out]``."""
    grads = {}
    d_z = d_out
    for i in range(len(layers) - 1, -1, -1):
        weight, bias, _ = layers[i]
        h_in = cache[2 * i]
        grads[weight] = d_z.transpose(-1, -2) @ h_in
        grads[bias] = d_z.sum(-2)
        if i > 0:
            d_h = d_z @ params[weight]
            h_prev = cache[2 * i - 1]  # the activation that fed this layer
            # the ops autograd itself uses for these derivatives (differentiable too)
            if layers[i - 1][2] == "relu":
                d_z = torch.ops.aten.threshold_backward(d_h, h_prev, 0.0)
            else:  # tanh
                d_z = torch.ops.aten.tanh_backward(d_h, h_prev)
    return grads


def _output_grad(loss, out, y):
    """d(mean task loss)/d(output) for :class:`~sklmeta._functional.EpisodeLoss`."""
    n = out.shape[-2]
    if loss.task == "regression":
        return (2.0 / n) * (out - y.unsqueeze(-1))
    c = loss.n_classes if loss.n_classes is not None else out.shape[-1]
    p = torch.softmax(out[..., :c], dim=-1)
    d = (p - torch.nn.functional.one_hot(y, c).to(p.dtype)) / n
    if c < out.shape[-1]:
        d = torch.nn.functional.pad(d, (0, out.shape[-1] - c))
    return d


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


def mlp_inner_loop(layers, params, x, y, *, loss, lr, steps, first_order=False,
                   head_only=False):
    """The MAML inner loop for a batch of tasks at once.

    ``x [T, n, in]``, ``y [T, n]``; ``params`` may be shared (unbatched) or per
    task. ``lr`` as in :func:`step_size`. Returns per-task
    adapted parameters ``[T, ...]``; with ``head_only`` (ANIL) only the last
    layer is adapted, on body features computed once, and the body's
    parameters come back as given.
    """
    if head_only:
        body, head = layers[:-1], layers[-1:]
        features = mlp_forward(body, params, x)
        head_params = mlp_inner_loop(
            head, {k: params[k] for k in head[0][:2]}, features, y, loss=loss, lr=lr,
            steps=steps, first_order=first_order,
        )
        return {**params, **head_params}
    for step in range(steps):
        # first-order: the inner gradient is a constant, so build no graph for it
        with torch.no_grad() if first_order else contextlib.nullcontext():
            cache = []
            out = mlp_forward(layers, params, x, cache)
            grads = _mlp_backward(layers, params, cache, _output_grad(loss, out, y))
        if isinstance(lr, (int, float)):
            params = {k: torch.add(p, grads[k], alpha=-lr) for k, p in params.items()}
        else:
            params = {k: p - step_size(lr, k, step) * grads[k] for k, p in params.items()}
    return params
