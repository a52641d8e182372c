"""sklmeta: meta-learning (MAML and its cousins) behind the scikit-learn API.

The public names are imported on first use (PEP 562), so that ``import sklmeta``
and ``python -m sklmeta --help`` do not import torch and skorch; ``from sklmeta
import MAMLClassifier`` works as usual.
"""

import importlib

from ._version import __version__  # noqa: F401 (public)

# public name -> the submodule that defines it
_EXPORTS = {
    "ANILClassifier": "estimators",
    "ANILRegressor": "estimators",
    "AdaptedClassifier": "adapted",
    "AdaptedRegressor": "adapted",
    "AutoMetaClassifier": "automl",
    "AutoMetaRegressor": "automl",
    "DeepKernelGPRegressor": "estimators",
    "DivergenceWarning": "_training",
    "MAMLClassifier": "estimators",
    "MAMLRegressor": "estimators",
    "MetaRidgeClassifier": "estimators",
    "MetaRidgeRegressor": "estimators",
    "MetaSGDClassifier": "estimators",
    "MetaSGDRegressor": "estimators",
    "MetaTrainingDiverged": "_training",
    "NeuralProcessClassifier": "estimators",
    "NeuralProcessRegressor": "estimators",
    "PerSupport": "transfer",
    "PooledRegressor": "transfer",
    "PretrainedEmbeddingClassifier": "transfer",
    "ProtoNetClassifier": "estimators",
    "ReptileClassifier": "estimators",
    "ReptileRegressor": "estimators",
    "adapt": "adapted",
    "load": "persistence",
    "save": "persistence",
    "show_versions": "_show_versions",
    "TaskSplitter": "tasks",
    "stack_tasks": "tasks",
    "train_test_split_classes": "tasks",
}
_SUBMODULES = ("automl", "callbacks", "datasets", "model_selection", "transfer")

__all__ = sorted([*_EXPORTS, *_SUBMODULES])


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # looked up once
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
