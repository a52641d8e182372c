import pytest
import torch
from sklearn.base import is_classifier

from sklmeta import MAMLClassifier, MAMLRegressor, TaskSplitter
from sklmeta.datasets import make_classification_tasks, make_sinusoid_tasks


@pytest.fixture(autouse=True, scope="session")
def _threads():
    # Tiny tensors: a second intra-op thread adds nothing and, on a loaded
    # machine, oversubscription makes meta-training tens of times slower.
    torch.set_num_threads(1)


@pytest.fixture
def class_tasks():
    return make_classification_tasks(n_tasks=12, n_samples=40, n_features=10, n_informative=2,
                                     random_state=0)


@pytest.fixture
def sine_tasks():
    return make_sinusoid_tasks(n_tasks=40, n_samples=30, random_state=0)


def small(cls, n_way=2, **params):
    """A meta-estimator of class ``cls`` on a tiny budget (episodes sized for the fixtures)."""
    if is_classifier(cls()):
        splitter = TaskSplitter(n_way=n_way, k_shot=3, n_query=3, n_tasks=16, random_state=0)
    else:
        splitter = TaskSplitter(k_shot=5, n_query=5, n_tasks=16, random_state=0)
    defaults = dict(task_splitter=splitter, hidden_layer_sizes=(16,), max_epochs=2,
                    meta_batch_size=4, random_state=0)
    return cls(**{**defaults, **params})


def small_classifier(n_way=2, **params):
    return small(MAMLClassifier, n_way, **params)


def small_regressor(**params):
    return small(MAMLRegressor, **params)


def weights(meta):
    return [p.detach().clone() for p in meta.module_.parameters()]


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))




class NaNGradient(torch.nn.Module):
    """Finite outputs, NaN gradients: sqrt's infinite slope at 0 times a zero."""

    def __init__(self, n_in=10, n_out=4):
        super().__init__()
        self.linear = torch.nn.Linear(n_in, n_out)

    def forward(self, x):
        h = self.linear(x)
        return h + torch.sqrt(torch.relu(h) * 0.0)
