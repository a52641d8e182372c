"""The default network: a plain MLP, built from a private random generator."""

import copy
import math

import torch

from .functional import inner_loop_mode

__all__ = ["ACTIVATIONS", "make_mlp", "network"]

# The one table of activations: make_mlp builds them, the hand-batched inner loop
# (:mod:`sklmeta._core.batched_mlp`) differentiates every one of them.
ACTIVATIONS = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "gelu": torch.nn.GELU}


def make_mlp(n_features, hidden_layer_sizes, n_outputs, activation="relu", generator=None,
             device="cpu"):
    """The default network: ``Linear -> activation`` per hidden layer, then ``Linear``.

    With a ``torch.Generator`` the weights are drawn from it, exactly as
    ``torch.nn.Linear`` draws them (uniform in +-1/sqrt(fan_in)), without touching
    torch's global random state: fits in concurrent threads stay reproducible.
    On ``device="meta"`` it has shapes and no data (no memory; nothing drawn).

    Examples
    --------
    >>> import torch
    >>> from sklmeta._core.nets import make_mlp
    >>> net = make_mlp(3, (8,), 2, generator=torch.Generator().manual_seed(0))
    >>> net(torch.zeros(5, 3)).shape
    torch.Size([5, 2])
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}.")
    layers, width = [], n_features
    for h in hidden_layer_sizes:
        layers += [torch.nn.Linear(width, h, device="meta"), ACTIVATIONS[activation]()]
        width = h
    layers.append(torch.nn.Linear(width, n_outputs, device="meta"))
    module = torch.nn.Sequential(*layers)
    if torch.device(device).type == "meta":
        return module
    module = module.to_empty(device=device)
    with torch.no_grad():
        for layer in module:
            if isinstance(layer, torch.nn.Linear):
                bound = 1 / math.sqrt(layer.in_features) if layer.in_features > 0 else 0.0
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.uniform_(-bound, bound, generator=generator)
    return module


def network(module, n_features, n_outputs, hidden_layer_sizes, activation, seed, device="cpu"):
    """A fit's network: the default MLP seeded by ``seed``, or a copy of ``module``.

    Either way it is checked to map ``[n, n_features]`` to ``[n, n_outputs]``
    (``n_outputs=None``: to any width, e.g. an embedding). On ``device="meta"``
    it is the architecture alone: shapes, no memory (what :func:`sklmeta.load`
    checks a file's weights against before building anything).
    """
    if module is None:
        module = make_mlp(n_features, hidden_layer_sizes, n_outputs, activation,
                          torch.Generator().manual_seed(int(seed)), device=device)
    else:
        module = copy.deepcopy(module)
        if torch.device(device).type == "meta":
            module = module.to("meta")
    # as the inner loop runs it: BatchNorm's running buffers untouched, Dropout off
    with torch.no_grad(), inner_loop_mode(module, training=False):
        out = module(torch.zeros(2, n_features, device=device))
    expected = (2, n_outputs) if n_outputs is not None else (2, "any width")
    if out.dim() != 2 or out.shape[0] != 2 or (
            n_outputs is not None and out.shape[1] != n_outputs):
        raise ValueError(
            f"module maps 2 samples of {n_features} features to shape "
            f"{tuple(out.shape)}; expected {expected}."
        )
    return module
