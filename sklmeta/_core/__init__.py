"""The torch-only core of sklmeta: no scikit-learn in here.

- :mod:`.functional`: the episode loss, step sizes, the inner-loop protocol
  (:class:`~.functional.InnerLoop`) and its torch.func implementation;
- :mod:`.batched_mlp`: the same protocol hand-batched for sklmeta's own MLP;
- :mod:`.algorithms`: MAML, Meta-SGD, ANIL, Reptile and ProtoNet as small
  strategies over that protocol;
- :mod:`.nets`: the default network.

:func:`select_inner_loop` is the one place that chooses an implementation for a
network; a fitted estimator records the choice in ``inner_loop_``.
"""

from .batched_mlp import BatchedMLPInnerLoop, mlp_layers
from .functional import EpisodeLoss, FunctionalInnerLoop, InnerLoop, inner_loop, step_size
from .nets import ACTIVATIONS, make_mlp, network

__all__ = ["ACTIVATIONS", "BatchedMLPInnerLoop", "EpisodeLoss", "FunctionalInnerLoop",
           "InnerLoop", "inner_loop", "make_mlp", "mlp_layers", "network",
           "select_inner_loop", "step_size"]


def select_inner_loop(model, adapted=None):
    """The inner-loop implementation for ``model``, chosen once.

    Parameters
    ----------
    model : torch.nn.Module
        The network whose parameters the inner loop adapts.
    adapted : collection of str, default=None
        The parameters the inner loop updates; None means all of them.

    Returns
    -------
    InnerLoop
        :class:`BatchedMLPInnerLoop` for a plain MLP that adapts all its
        parameters or only its last layer; :class:`FunctionalInnerLoop` otherwise.
    """
    layers = mlp_layers(model)
    if layers is not None:
        if adapted is None or set(adapted) == {n for n, _ in model.named_parameters()}:
            return BatchedMLPInnerLoop(layers)
        if set(adapted) == set(layers[-1][:2]):
            return BatchedMLPInnerLoop(layers, head_only=True)
    return FunctionalInnerLoop(model)
