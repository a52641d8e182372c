"""Meta-estimators with the scikit-learn API, one pair per algorithm.

A meta-estimator (:class:`MAMLClassifier`, :class:`MetaSGDRegressor`, ...) is
*fitted* by meta-training on many tasks; it does not predict by itself.
``adapt(X, y)`` adapts it to a new task's support set and returns a new, fitted
:class:`~sklmeta.AdaptedClassifier` / :class:`~sklmeta.AdaptedRegressor` that
predicts; the meta-estimator is never changed by it.

Each algorithm's estimators live in a module of their own (explicit
``__init__``, written-out docstring, and ``__sklmeta_algorithm__``, which builds
the algorithm's strategy from :mod:`sklmeta._core.algorithms`). The registry
(:mod:`sklmeta._registry`) lists them once; :data:`META_ESTIMATORS` is its classes.
"""

from .._core import make_mlp
from .._registry import REGISTRY
from ..adapted import AdaptedClassifier, AdaptedRegressor, adapt
from ._anil import ANILClassifier, ANILRegressor
from ._dkt import DeepKernelGPRegressor
from ._maml import MAMLClassifier, MAMLRegressor
from ._meta_sgd import MetaSGDClassifier, MetaSGDRegressor
from ._neural_process import NeuralProcessClassifier, NeuralProcessRegressor
from ._protonet import ProtoNetClassifier
from ._reptile import ReptileClassifier, ReptileRegressor
from ._ridge import MetaRidgeClassifier, MetaRidgeRegressor

__all__ = [
    "ANILClassifier", "ANILRegressor", "AdaptedClassifier", "AdaptedRegressor",
    "DeepKernelGPRegressor", "MAMLClassifier", "MAMLRegressor", "META_ESTIMATORS",
    "MetaRidgeClassifier", "MetaRidgeRegressor", "MetaSGDClassifier", "MetaSGDRegressor",
    "NeuralProcessClassifier", "NeuralProcessRegressor", "ProtoNetClassifier", "REGISTRY",
    "ReptileClassifier", "ReptileRegressor", "adapt",
    "make_mlp",
]

# Every public meta-estimator class, in registry order.
META_ESTIMATORS = tuple(globals()[name] for pair in REGISTRY.values() for name in pair
                        if name is not None)
