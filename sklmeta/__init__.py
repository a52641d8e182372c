"""sklmeta: meta-learning (MAML and its cousins) behind the scikit-learn API."""

from . import datasets, model_selection
from .estimators import AdaptedClassifier, AdaptedRegressor, MAMLClassifier, MAMLRegressor, adapt
from .tasks import TaskSplitter, stack_tasks, train_test_split_classes

__version__ = "0.1.0.dev0"

__all__ = [
    "AdaptedClassifier",
    "AdaptedRegressor",
    "MAMLClassifier",
    "MAMLRegressor",
    "TaskSplitter",
    "adapt",
    "datasets",
    "model_selection",
    "stack_tasks",
    "train_test_split_classes",
]
