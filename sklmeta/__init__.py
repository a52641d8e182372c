"""sklmeta: meta-learning (MAML and its cousins) behind the scikit-learn API."""

from . import datasets, model_selection
from ._show_versions import show_versions
from .estimators import (
    AdaptedClassifier,
    AdaptedRegressor,
    ANILClassifier,
    ANILRegressor,
    MAMLClassifier,
    MAMLRegressor,
    MetaSGDClassifier,
    MetaSGDRegressor,
    ProtoNetClassifier,
    ReptileClassifier,
    ReptileRegressor,
    adapt,
)
from .persistence import load, save
from .tasks import TaskSplitter, stack_tasks, train_test_split_classes

__version__ = "0.1.0.dev0"

__all__ = [
    "ANILClassifier",
    "ANILRegressor",
    "AdaptedClassifier",
    "AdaptedRegressor",
    "MAMLClassifier",
    "MAMLRegressor",
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
    "show_versions",
    "stack_tasks",
    "train_test_split_classes",
]
