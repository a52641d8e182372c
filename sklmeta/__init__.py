"""sklmeta: meta-learning (MAML and its cousins) behind the scikit-learn API."""

from . import datasets, model_selection
from ._training import MetaTrainingDiverged
from ._version import __version__
from .adapted import AdaptedClassifier, AdaptedRegressor, adapt
from .estimators import (
    ANILClassifier,
    ANILRegressor,
    MAMLClassifier,
    MAMLRegressor,
    MetaSGDClassifier,
    MetaSGDRegressor,
    ProtoNetClassifier,
    ReptileClassifier,
    ReptileRegressor,
)
from .persistence import load, save
from .tasks import TaskSplitter, stack_tasks, train_test_split_classes

__all__ = [
    "ANILClassifier",
    "ANILRegressor",
    "AdaptedClassifier",
    "AdaptedRegressor",
    "MAMLClassifier",
    "MAMLRegressor",
    "MetaTrainingDiverged",
    "MetaSGDClassifier",
    "MetaSGDRegressor",
    "ProtoNetClassifier",
    "ReptileClassifier",
    "ReptileRegressor",
    "TaskSplitter",
    "adapt",
    "datasets",
    "load",
    "model_selection",
    "save",
    "stack_tasks",
    "train_test_split_classes",
]
