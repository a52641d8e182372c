"""Every meta-learning algorithm, once: its name and its estimator classes' names.

Names, not classes, so that reading the registry imports neither torch nor skorch
(the command line's ``--help`` reads it). :mod:`sklmeta.estimators` turns it into
classes (``META_ESTIMATORS``); :func:`sklmeta.load`, the command line and the tests
use it. Adding an algorithm means its strategy (:mod:`sklmeta._core.algorithms`),
its estimator classes (:mod:`sklmeta.estimators`) and one line here.
"""

__all__ = ["REGISTRY"]

# algorithm key -> (classifier class name or None, regressor class name or None)
REGISTRY = {
    "maml": ("MAMLClassifier", "MAMLRegressor"),
    "metasgd": ("MetaSGDClassifier", "MetaSGDRegressor"),
    "anil": ("ANILClassifier", "ANILRegressor"),
    "reptile": ("ReptileClassifier", "ReptileRegressor"),
    "protonet": ("ProtoNetClassifier", None),
    "ridge": ("MetaRidgeClassifier", "MetaRidgeRegressor"),
    "dkt": (None, "DeepKernelGPRegressor"),
    "neuralprocess": ("NeuralProcessClassifier", "NeuralProcessRegressor"),
}
