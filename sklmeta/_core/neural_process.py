"""Conditional Neural Processes (Garnelo et al., 2018) as a strategy: adapting is one forward pass.

A neural process meta-learns a map from a support set to a predictor. Each
support row is encoded, the codes are aggregated into a representation of the
task, and a decoder predicts each query row from its features and that
representation. Adapting to a new task is one forward pass through the encoder
(no gradient steps), so it is instant and works with any support size.

The network (:class:`NeuralProcessNet`) has three parts:

- ``embed``: the estimator's network (sklmeta's MLP, or ``module=``), an
  x-embedding ``e(x)`` of width ``E``, shared by the support and query rows (and,
  with attention, the keys and queries);
- ``encoder``: an MLP that encodes a support row, ``h_i = encoder([e(x_i), y_i])``
  for a regressor and ``h_i = encoder(e(x_i))`` for a classifier, of width ``E``;
- ``decoder``: an MLP on ``[e(x_q), r]``: a mean and a raw scale for a regressor
  (``std = 0.1 + 0.9 softplus(raw)``, the CNP paper's bound), one logit per class
  for a classifier.

Aggregation (``aggregation``):

- ``"mean"``: ``r = mean_i h_i`` (the CNP);
- ``"attention"``: dot-product cross-attention from each query's embedding to
  the support rows, ``r(x_q) = sum_i softmax_i(s e(x_q) . e(x_i) / sqrt(E)) h_i``
  (the deterministic path of Attentive NPs, Kim et al., 2019), with a
  meta-learned sharpness ``s`` (initially 1, learning 10 times faster than the
  networks). On standardised inputs a fresh embedding's scaled dot products are
  small, so the softmax starts near uniform (attention is then the mean); without
  ``s`` the networks must grow the embedding to make attention local, which
  2,000 meta-steps did not do (sinusoids, K=10, 1,000 meta-steps: query MSE 2.1
  with a fixed ``s = 1``, 1.07 with it learned).

A classifier aggregates per class: the one-hot labels route each support row's
code to its class, ``r_c = mean_{i in c} h_i`` (or attention over the rows of
class ``c`` only), and the decoder scores the query against each class's
aggregate, ``logit_c = decoder([e(x_q), r_c])``. The same decoder serves every
class, so the head takes any number of classes at ``adapt``, and the logits are
equivariant to relabelling the classes.

The adapted parameters are the meta-learned ones (unchanged) and the context as
buffers: ``r`` (mean aggregation), or ``keys``, ``values`` (and ``onehot`` for a
classifier) for attention. :class:`AdaptedNeuralProcess` applies them to query rows.
"""

import hashlib
import math

import torch
import torch.nn.functional as F

from .algorithms import Learner
from .functional import SWAP_LOCK, FunctionalInnerLoop
from .nets import make_mlp

__all__ = ["AGGREGATIONS", "MIN_STD", "AdaptedNeuralProcess", "NeuralProcess",
           "NeuralProcessNet", "OneForwardPass", "gaussian_nll"]

AGGREGATIONS = ("mean", "attention")
MIN_STD = 0.1  # the CNP paper's lower bound on the predictive std: 0.1 + 0.9 softplus
TEMPERATURE_LR_SCALE = 10.0  # how much faster than the networks the attention's sharpness learns


def gaussian_nll(out, y):
    """Mean negative log-likelihood of ``y`` under ``Normal(out[..., 0], out[..., 1])``."""
    mean, std = out[..., 0], out[..., 1]
    return (torch.log(std) + 0.5 * ((y - mean) / std) ** 2 + 0.5 * math.log(2 * math.pi)).mean()


class OneForwardPass:
    """What a neural process has in place of an inner loop: nothing to iterate.

    Recorded in a fitted estimator's ``inner_loop_`` as ``"forward-pass"``.
    """

    name = "forward-pass"


class NeuralProcessNet(torch.nn.Module):
    """The meta-learned network of a neural process: embedding, encoder, decoder.

    Every method takes task-first tensors, ``[T, n, ...]``.

    Parameters
    ----------
    embed : torch.nn.Module
        ``[n, n_features] -> [n, E]``.
    encoder, decoder : torch.nn.Module
        ``[n, E (+1)] -> [n, E]`` and ``[n, 2E] -> [n, 2]`` (regressor) or ``[n, 1]``.
    regression : bool
    aggregation : {"mean", "attention"}
    """

    def __init__(self, embed, encoder, decoder, regression, aggregation):
        super().__init__()
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}; got {aggregation!r}.")
        self.embed, self.encoder, self.decoder = embed, encoder, decoder
        self.regression, self.aggregation = regression, aggregation
        if aggregation == "attention":
            # the log of the attention's inverse temperature, stored divided by
            # TEMPERATURE_LR_SCALE so that Adam moves it that much faster
            self.raw_sharpness = torch.nn.Parameter(torch.zeros((), device=_device_of(embed)))

    def sharpness(self):
        """The factor on the scaled dot products: ``exp(10 raw_sharpness)``, initially 1."""
        return torch.exp(TEMPERATURE_LR_SCALE * self.raw_sharpness)

    @staticmethod
    def _rows(module, x):
        return module(x.flatten(0, -2)).unflatten(0, x.shape[:-1])

    def context(self, xs, ys, n_classes=None):
        """The support sets' representations, ``{name: [T, ...]}``."""
        keys = self._rows(self.embed, xs)  # [T, S, E]
        if self.regression:
            values = self._rows(self.encoder, torch.cat([keys, ys.unsqueeze(-1).to(keys.dtype)],
                                                         dim=-1))
            if self.aggregation == "mean":
                return {"r": values.mean(1)}
            return {"keys": keys, "values": values}
        values = self._rows(self.encoder, keys)
        onehot = F.one_hot(ys, n_classes).to(values.dtype)  # [T, S, C]
        if self.aggregation == "mean":
            counts = onehot.sum(1).clamp(min=1).unsqueeze(-1)  # an absent class: a zero code
            return {"r": onehot.transpose(1, 2) @ values / counts}  # [T, C, E]
        return {"keys": keys, "values": values, "onehot": onehot}

    def decode(self, context, xq):
        """Outputs ``[T, Q, 2]`` (mean, std) or ``[T, Q, C]`` (logits) of the query rows."""
        query = self._rows(self.embed, xq)  # [T, Q, E]
        if self.aggregation == "attention":
            scores = (query @ context["keys"].transpose(1, 2)
                      * (self.sharpness() / math.sqrt(query.shape[-1])))
        if self.regression:
            if self.aggregation == "mean":
                r = context["r"].unsqueeze(1).expand(-1, query.shape[1], -1)
            else:
                r = torch.softmax(scores, dim=-1) @ context["values"]  # [T, Q, E]
            raw = self._rows(self.decoder, torch.cat([query, r], dim=-1))
            return torch.stack([raw[..., 0], MIN_STD + (1 - MIN_STD) * F.softplus(raw[..., 1])],
                               dim=-1)
        if self.aggregation == "mean":
            r = context["r"].unsqueeze(1).expand(-1, query.shape[1], -1, -1)  # [T, Q, C, E]
        else:
            onehot = context["onehot"]  # [T, S, C]; attention within each class's rows
            member = (onehot.unsqueeze(1) > 0).expand(-1, query.shape[1], -1, -1)  # [T, Q, S, C]
            masked = scores.unsqueeze(-1).expand_as(member).masked_fill(
                ~member, torch.finfo(scores.dtype).min)
            weights = torch.softmax(masked, dim=2) * onehot.unsqueeze(1)  # absent class: 0
            r = torch.einsum("tqsc,tse->tqce", weights, context["values"])
        n_classes = r.shape[2]
        pair = torch.cat([query.unsqueeze(2).expand(-1, -1, n_classes, -1), r], dim=-1)
        return self._rows(self.decoder, pair)[..., 0]  # [T, Q, C]


class AdaptedNeuralProcess(torch.nn.Module):
    """A neural process conditioned on one support set: what ``adapt``'s parameters apply to.

    Its buffers hold the context (placeholders here; the adapted parameters,
    through ``functional_call``, replace them with a task's context), and
    ``forward(x [n, n_features])`` decodes.
    """

    def __init__(self, process):
        super().__init__()
        self.process = process
        device = next(process.parameters()).device
        names = ("r",) if process.aggregation == "mean" else (
            ("keys", "values") if process.regression else ("keys", "values", "onehot"))
        dims = {"r": 1 if process.regression else 2, "keys": 2, "values": 2, "onehot": 2}
        self.context_names = names
        for name in names:
            self.register_buffer(name, torch.zeros((1,) * dims[name], device=device))

    def forward(self, x):
        context = {name: getattr(self, name).unsqueeze(0) for name in self.context_names}
        return self.process.decode(context, x.unsqueeze(0))[0]


def _device_of(module):
    first = next(module.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def _seed_of(net):
    """A seed from the network's initial weights (which the estimator seeded)."""
    digest = hashlib.sha256()
    for p in net.parameters():
        digest.update(p.detach().float().cpu().numpy().tobytes())
    return int.from_bytes(digest.digest()[:4], "little")


class NeuralProcess:
    """Conditional Neural Process (Garnelo et al., 2018) strategy; see the module docstring.

    Parameters
    ----------
    regression : bool
        A Gaussian predictive (mean, std), trained by the query targets' negative
        log-likelihood; else per-class logits, trained by cross-entropy.
    aggregation : {"mean", "attention"}
    hidden_layer_sizes : tuple of int
        Hidden widths of the encoder and decoder MLPs.
    activation : str
        Their activation.
    """

    optimizer = torch.optim.Adam
    any_number_of_classes = True

    def __init__(self, regression, aggregation="mean", hidden_layer_sizes=(40, 40),
                 activation="relu"):
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}; got {aggregation!r}.")
        self.regression, self.aggregation = regression, aggregation
        self.hidden_layer_sizes, self.activation = tuple(hidden_layer_sizes), activation

    def learner(self, net, n_features):
        """The embedding ``net`` with an encoder and a decoder around it, in one Learner.

        The encoder and decoder are drawn from a generator seeded by ``net``'s
        initial weights, so the whole network follows the estimator's seed and
        torch's global random state is untouched. On torch's meta device (what
        :func:`sklmeta.load` checks shapes on) nothing is drawn.
        """
        first = next(net.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
        with torch.no_grad():
            width = net(torch.zeros(2, n_features, device=device)).shape[-1]
        generator = None if device.type == "meta" else torch.Generator().manual_seed(
            _seed_of(net))
        encoder = make_mlp(width + self.regression, self.hidden_layer_sizes, width,
                           self.activation, generator, device="meta" if generator is None
                           else "cpu").to(device)
        decoder = make_mlp(2 * width, self.hidden_layer_sizes, 2 if self.regression else 1,
                           self.activation, generator, device="meta" if generator is None
                           else "cpu").to(device)
        process = NeuralProcessNet(net, encoder, decoder, self.regression, self.aggregation)
        return Learner(process, n_features, inner_loop=OneForwardPass())

    @staticmethod
    def _n_classes(loss, ys):
        return loss.n_classes if loss.n_classes is not None else int(ys.max()) + 1

    def query_outputs(self, learner, xs, ys, xq, *, loss, training):
        """Query outputs ``[T, Q, 2]`` (mean, std) or ``[T, Q, C]`` given each support set."""
        process = learner.net
        with SWAP_LOCK:
            n_classes = None if self.regression else self._n_classes(loss, ys)
            return process.decode(process.context(xs, ys, n_classes), xq)

    def meta_loss(self, learner, xs, ys, xq, yq, *, loss):
        """``(objective, reported loss, outputs)``: the regressor's objective is the NLL.

        The reported loss is the episode loss (query MSE of the mean, or
        cross-entropy), the quantity meta-validation reports too.
        """
        out = self.query_outputs(learner, xs, ys, xq, loss=loss, training=True)
        value = loss(out, yq)
        objective = gaussian_nll(out, yq) if self.regression else value
        return objective, value, out.detach()

    def adapt(self, learner, xs, ys, *, loss):
        """The meta-learned parameters and the support sets' context, ``[T, ...]`` each."""
        process = learner.net
        with torch.no_grad(), SWAP_LOCK:
            n_classes = None if self.regression else self._n_classes(loss, ys)
            context = process.context(xs, ys, n_classes)
            params = dict(process.named_parameters())
        if not all(torch.isfinite(v).all() for v in context.values()):
            raise FloatingPointError(
                "Adaptation diverged: the support set's representation is not finite. "
                "Rescale the inputs (standardize=True) or the targets.")
        n = len(xs)
        return {**{f"process.{k}": v.detach().expand(n, *v.shape) for k, v in params.items()},
                **context}

    def predictor(self, learner):
        """What the adapted parameters are applied to: ``(module, inner loop)``."""
        module = AdaptedNeuralProcess(learner.net)
        return module, FunctionalInnerLoop(module)

    def fitted_attributes(self, learner):
        return {}
