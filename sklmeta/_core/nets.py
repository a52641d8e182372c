"""The default networks: a plain MLP, or one beside a skip path of its inputs.

Both are built from a private random generator.
"""

import copy
import math

import torch

from .functional import inner_loop_mode

__all__ = ["ACTIVATIONS", "InputSkip", "make_mlp", "make_skip_mlp", "network"]

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


class InputSkip(torch.nn.Module):
    """``[g * tanh(x), mlp(x)]``: the inputs, bounded, beside the features an MLP learns.

    The embedding of ProtoNet and the body of ANIL by default
    (:func:`make_skip_mlp`). Nearest prototypes then start close to the nearest
    class mean of the (standardised) inputs, and ANIL's head as a linear model
    on the inputs and random features: a start any task gets something from,
    which early stopping keeps when meta-training on few classes does not help
    the held-out ones. ``tanh`` bounds the skip path: a new task's feature far
    outside the range of the fit data (a pixel almost constant in the training
    classes, standardised by a tiny deviation) cannot dominate a distance.

    Parameters
    ----------
    mlp : torch.nn.Module
        The learned features.
    n_gates : int, default=None
        With a width, ``g`` is a meta-learned weight per input, starting at 1
        (a diagonal metric on the skip path, so meta-training can turn down
        inputs that do not tell classes apart); None: ``g = 1``.
    """

    def __init__(self, mlp, n_gates=None, device="cpu"):
        super().__init__()
        self.mlp = mlp
        self.gate = (None if n_gates is None else
                     torch.nn.Parameter(torch.ones(n_gates, device=device)))

    def forward(self, x):
        skip = torch.tanh(x) if self.gate is None else self.gate * torch.tanh(x)
        return torch.cat([skip, self.mlp(x)], dim=-1)


def make_skip_mlp(n_features, hidden_layer_sizes, n_outputs, activation="relu", generator=None,
                  device="cpu", head=None):
    """An :class:`InputSkip` embedding of width ``n_features + n_outputs``, optionally a head.

    The MLP (:func:`make_mlp`, ``Linear`` last) maps the inputs to ``n_outputs``
    learned features, beside the inputs weighted by a gate per input. With
    ``head`` (an output width), the MLP ends with its activation instead (the
    features are the plain MLP's last hidden layer), and the embedding (without
    gates: the head weighs the inputs) is followed by a ``Linear`` head that
    starts at zero: ``Sequential(InputSkip, Linear)``, ANIL's network, whose head is the last
    submodule with parameters. A zero head prefers no class, the right start
    when each episode assigns its classes to the outputs at random (and for a
    regressor, the mean of the standardised target).

    Examples
    --------
    >>> import torch
    >>> from sklmeta._core.nets import make_skip_mlp
    >>> net = make_skip_mlp(3, (8,), 4, generator=torch.Generator().manual_seed(0))
    >>> x = torch.randn(5, 3)
    >>> net(x).shape
    torch.Size([5, 7])
    >>> bool((net(x)[:, :3] == torch.tanh(x)).all())
    True
    >>> make_skip_mlp(3, (8,), 4, head=2)(x).abs().sum().item()  # the zero head
    0.0
    """
    if head is None:
        return InputSkip(make_mlp(n_features, hidden_layer_sizes, n_outputs, activation,
                                  generator, device), n_gates=n_features, device=device)
    mlp = make_mlp(n_features, hidden_layer_sizes[:-1], hidden_layer_sizes[-1], activation,
                   generator, device)
    body = InputSkip(torch.nn.Sequential(*mlp, ACTIVATIONS[activation]()))
    module = torch.nn.Sequential(body, torch.nn.Linear(
        n_features + hidden_layer_sizes[-1], head, device="meta"))
    if torch.device(device).type != "meta":
        module[1] = module[1].to_empty(device=device)
        with torch.no_grad():
            module[1].weight.zero_()
            module[1].bias.zero_()
    return module


def network(module, n_features, n_outputs, hidden_layer_sizes, activation, seed, device="cpu",
            skip=None):
    """A fit's network: a default network seeded by ``seed``, or a copy of ``module``.

    ``skip`` chooses the default network: None, the plain MLP (:func:`make_mlp`);
    "embedding", ProtoNet's :func:`make_skip_mlp` embedding ``[g * tanh(x), mlp(x)]``
    of width ``n_features + n_outputs``; "head", ANIL's: the plain MLP's hidden
    layers beside ``tanh(x)``, then a zero ``Linear`` head of ``n_outputs``
    (without hidden layers, the plain MLP: a linear model, nothing to skip).

    Either way it is checked to map ``[n, n_features]`` to ``[n, n_outputs]``
    (``n_outputs=None``: to any width, e.g. an embedding). On ``device="meta"``
    it is the architecture alone: shapes, no memory (what :func:`sklmeta.load`
    checks a file's weights against before building anything).
    """
    if skip not in (None, "embedding", "head"):
        raise ValueError(f"skip must be None, 'embedding' or 'head'; got {skip!r}.")
    if skip == "head" and not hidden_layer_sizes:
        skip = None
    if module is None:
        generator = torch.Generator().manual_seed(int(seed))
        if skip == "embedding":
            module = make_skip_mlp(n_features, hidden_layer_sizes, n_outputs, activation,
                                   generator, device)
            n_outputs = n_features + n_outputs
        elif skip == "head":
            module = make_skip_mlp(n_features, hidden_layer_sizes, None, activation,
                                   generator, device, head=n_outputs)
        else:
            module = make_mlp(n_features, hidden_layer_sizes, n_outputs, activation, generator,
                              device=device)
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
