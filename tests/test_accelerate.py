"""Meta-training through Hugging Face accelerate (skorch's AccelerateMixin)."""

import accelerate  # a test dependency (setup.cfg: the test extra)
import numpy as np
import pytest
from conftest import same_weights, small_classifier, small_regressor, weights


@pytest.fixture
def accelerator():
    return accelerate.Accelerator(cpu=True)


@pytest.mark.parametrize("make", [small_classifier, small_regressor])
def test_one_process_trains_exactly_like_the_plain_net(make, accelerator, class_tasks,
                                                       sine_tasks):
    tasks = class_tasks if make is small_classifier else sine_tasks
    plain = make(max_epochs=3).fit(tasks)
    accelerated = make(max_epochs=3, accelerator=accelerator).fit(tasks)
    assert type(accelerated.net_).__name__ == "AcceleratedMetaNet"
    assert same_weights(weights(plain), weights(accelerated))
    np.testing.assert_array_equal(plain.history_[:, "train_loss"],
                                  accelerated.history_[:, "train_loss"])
    X, y = tasks[0]
    np.testing.assert_array_equal(plain.adapt(X[:10], y[:10]).predict(X[10:]),
                                  accelerated.adapt(X[:10], y[:10]).predict(X[10:]))


def test_the_meta_step_goes_through_accelerator_backward(accelerator, class_tasks):
    calls = []
    backward = accelerator.backward

    def counting(loss, **kwargs):
        calls.append(loss.item())
        return backward(loss, **kwargs)

    accelerator.backward = counting
    meta = small_classifier(max_epochs=2, accelerator=accelerator).fit(class_tasks)
    assert len(calls) == int(sum(meta.history_[:, "train_batch_count"])) > 0


def test_reptile_and_protonet_train_accelerated(accelerator, class_tasks):
    from sklmeta import ProtoNetClassifier, ReptileClassifier

    for cls in (ReptileClassifier, ProtoNetClassifier):
        params = small_classifier().get_params()
        params = {k: v for k, v in params.items() if k in cls().get_params()}
        plain = cls(**params).fit(class_tasks)
        accelerated = cls(**{**params, "accelerator": accelerator}).fit(class_tasks)
        assert same_weights(weights(plain), weights(accelerated)), cls.__name__


def test_an_accelerator_that_is_not_one_is_named(class_tasks):
    with pytest.raises(ValueError, match="'accelerator' parameter of MAMLClassifier must be an object implementing 'backward'"):
        small_classifier(accelerator="cuda").fit(class_tasks)


SCRIPT = """
import sys, numpy as np, torch
import accelerate
from sklmeta import MAMLRegressor, TaskSplitter
from sklmeta.datasets import make_sinusoid_tasks
acc = accelerate.Accelerator(cpu=True)
meta = MAMLRegressor(task_splitter=TaskSplitter(k_shot=5, n_query=5, n_tasks=16, random_state=0),
                     hidden_layer_sizes=(16,), max_epochs=2, meta_batch_size=4,
                     early_stopping=False, accelerator=acc, random_state=0)
meta.fit(make_sinusoid_tasks(n_tasks=40, n_samples=30, random_state=0))
w = torch.cat([p.detach().flatten() for p in meta.module_.parameters()]).numpy()
np.save(f"weights_{acc.process_index}_of_{acc.num_processes}.npy", w)
np.save(f"loss_{acc.process_index}_of_{acc.num_processes}.npy", meta.history_[:, "train_loss"])
"""


@pytest.mark.slow
def test_two_processes_draw_their_own_episodes_and_share_the_weights(tmp_path):
    """torchrun's two CPU processes (gloo): what ``accelerate launch`` does on GPUs."""
    import subprocess
    import sys

    (tmp_path / "run.py").write_text(SCRIPT)
    for n in (2, 1):
        proc = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(n),
             "run.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    w0, w1, single = (np.load(tmp_path / f"weights_{i}_of_{n}.npy")
                      for i, n in ((0, 2), (1, 2), (0, 1)))
    np.testing.assert_array_equal(w0, w1)  # meta-gradients averaged: one set of weights
    assert not np.allclose(w0, single)  # ...made of two processes' meta-batches
    l0, l1 = (np.load(tmp_path / f"loss_{i}_of_2.npy") for i in (0, 1))
    assert not np.allclose(l0, l1)  # each process drew its own episodes


def test_an_accelerated_fit_pickles(accelerator, class_tasks):
    # the accelerated net class was defined inside a function: pickle could not find it
    meta = small_classifier(max_epochs=1, accelerator=accelerator).fit(class_tasks)
    import pickle

    X, y = class_tasks[0]
    again = pickle.loads(pickle.dumps(meta))
    assert type(again.net_).__name__ == "AcceleratedMetaNet"
    np.testing.assert_array_equal(again.adapt(X[:10], y[:10]).predict(X[10:]),
                                  meta.adapt(X[:10], y[:10]).predict(X[10:]))
