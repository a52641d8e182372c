"""Meta-estimators with the scikit-learn API, one pair per algorithm.

A meta-estimator (:class:`MAMLClassifier`, :class:`MetaSGDRegressor`, ...) is
*fitted* by meta-training on many tasks; it does not predict by itself.
``adapt(X, y)`` adapts it to a new task's support set and returns a new, fitted
:class:`~sklmeta.AdaptedClassifier` / :class:`~sklmeta.AdaptedRegressor` that
predicts; the meta-estimator is never changed by it.

Each algorithm's estimators live in a module of their own (explicit
``__init__``, written-out docstring, and ``__sklmeta_algorithm__``, which builds
the algorithm's strategy from :mod:`sklmeta._core.algorithms`). :data:`REGISTRY`
lists them once: :func:`sklmeta.load`, the command line and the tests read it.
Adding an algorithm means its strategy, its estimator classes and one line here.
"""

from .._core import make_mlp
from ..adapted import AdaptedClassifier, AdaptedRegressor, adapt
from ._anil import ANILClassifier, ANILRegressor
from ._maml import MAMLClassifier, MAMLRegressor
from ._meta_sgd import MetaSGDClassifier, MetaSGDRegressor
from ._protonet import ProtoNetClassifier
from ._reptile import ReptileClassifier, ReptileRegressor

__all__ = [
    "ANILClassifier", "ANILRegressor", "AdaptedClassifier", "AdaptedRegressor", "MAMLClassifier",
    "MAMLRegressor", "META_ESTIMATORS", "MetaSGDClassifier", "MetaSGDRegressor",
    "ProtoNetClassifier", "REGISTRY", "ReptileClassifier", "ReptileRegressor", "adapt",
    "make_mlp",
]

# Every algorithm once: name -> (classifier, regressor or None).
REGISTRY = {
    "maml": (MAMLClassifier, MAMLRegressor),
    "metasgd": (MetaSGDClassifier, MetaSGDRegressor),
    "anil": (ANILClassifier, ANILRegressor),
    "reptile": (ReptileClassifier, ReptileRegressor),
    "protonet": (ProtoNetClassifier, None),
}

# Every public meta-estimator class, in registry order.
META_ESTIMATORS = tuple(cls for pair in REGISTRY.values() for cls in pair if cls is not None)
