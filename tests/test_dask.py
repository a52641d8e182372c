"""GridSearchCV over a meta-estimator scales out on dask and finds what a local search finds.

joblib's dask backend ships each (candidate, fold) fit to a ``dask.distributed``
worker: the meta-estimator, its TaskSplitter and the data are pickled there and
back. The search on a two-worker LocalCluster must give the very candidates'
scores of the same search run in this process (``n_jobs=1``), and leave no
worker process or thread behind.
"""

import threading
import time

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, GroupKFold

from sklmeta import MAMLClassifier, TaskSplitter

distributed = pytest.importorskip("distributed")  # the test extra: pip install ".[test]"
psutil = pytest.importorskip("psutil")  # a dependency of distributed

GRID = {"inner_lr": [0.05, 0.5], "inner_steps": [1, 2]}


def make_search(n_jobs):
    splitter = TaskSplitter(n_way=2, k_shot=3, n_query=5, n_tasks=16, random_state=0)
    meta = MAMLClassifier(task_splitter=splitter, hidden_layer_sizes=(8,), max_epochs=2,
                          meta_batch_size=8, early_stopping=False, random_state=0)
    # Folds by class: each candidate is scored on few-shot episodes of digits it
    # never meta-trained on (meta.score is the mean accuracy over those episodes).
    return GridSearchCV(meta, GRID, cv=GroupKFold(n_splits=3), n_jobs=n_jobs)


def _alive(process):
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _cmdline(process):
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def _leftovers(threads_before, children_before, timeout=10.0):
    """Threads and child processes started since the snapshot, after up to ``timeout`` s.

    Not counted, as they live as long as this process by design: multiprocessing's
    resource tracker (started by the first spawned process, a nanny's worker) and
    distributed's one offload thread (a module-level executor, ``Dask-Offload``).
    """
    me = psutil.Process()
    deadline = time.monotonic() + timeout
    while True:
        threads = [t for t in threading.enumerate() if t not in threads_before
                   and t.is_alive() and not t.name.startswith("Dask-Offload")]
        children = [p for p in me.children(recursive=True)
                    if p.pid not in children_before and _alive(p)
                    and "multiprocessing.resource_tracker" not in " ".join(_cmdline(p))]
        if (not threads and not children) or time.monotonic() > deadline:
            return threads, children
        time.sleep(0.1)


def test_grid_search_on_a_dask_local_cluster_matches_the_local_search():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    local = make_search(n_jobs=1).fit(X, y, groups=y)

    threads_before = set(threading.enumerate())
    children_before = {p.pid for p in psutil.Process().children(recursive=True)}
    # Worker processes with one thread each. (Threads sharing one process are not
    # reproducible today: fit seeds the initial weights through torch's global RNG.)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        workers = list(client.scheduler_info()["workers"])
        assert len(workers) == 2
        with joblib.parallel_backend("dask"), distributed.get_task_stream(client) as stream:
            remote = make_search(n_jobs=-1).fit(X, y, groups=y)
        # the search ran as tasks on the two worker processes
        assert stream.data and {t["worker"] for t in stream.data} <= set(workers)

    threads, children = _leftovers(threads_before, children_before)
    assert not children, f"processes left running: {[_cmdline(p) for p in children]}"
    assert not threads, f"threads left running: {[t.name for t in threads]}"

    assert remote.best_params_ == local.best_params_
    assert remote.best_score_ == local.best_score_
    for key in ["mean_test_score"] + [f"split{i}_test_score" for i in range(3)]:
        np.testing.assert_array_equal(remote.cv_results_[key], local.cv_results_[key])
    # the comparison means something: the candidates do not all score alike
    assert len(set(local.cv_results_["mean_test_score"])) == len(local.cv_results_["params"])
