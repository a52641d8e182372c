"""The default network: a plain MLP, built from a private random generator."""

import math

import torch

__all__ = ["ACTIVATIONS", "make_mlp"]

# The one table of activations: make_mlp builds them, the hand-batched inner loop
# (:mod:`sklmeta._core.batched_mlp`) differentiates every one of them.
ACTIVATIONS = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "gelu": torch.nn.GELU}


def make_mlp(n_features, hidden_layer_sizes, n_outputs, activation="relu", generator=None):
    """The default network: ``Linear -> activation`` per hidden layer, then ``Linear``.

    With a ``torch.Generator`` the weights are drawn from it, exactly as
    ``torch.nn.Linear`` draws them (uniform in +-1/sqrt(fan_in)), without touching
    torch's global random state: fits in concurrent threads stay reproducible.

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
    module = torch.nn.Sequential(*layers).to_empty(device="cpu")
    with torch.no_grad():
        for layer in module:
            if isinstance(layer, torch.nn.Linear):
                bound = 1 / math.sqrt(layer.in_features) if layer.in_features > 0 else 0.0
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.uniform_(-bound, bound, generator=generator)
    return module
