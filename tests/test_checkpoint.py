"""sklmeta.callbacks: checkpoints that survive a kill at any moment, and say when they fail."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import torch
from conftest import same_weights, weights
from conftest import small_regressor as conftest_small_regressor
from skorch.callbacks import Callback

import sklmeta
from sklmeta import MetaSGDClassifier, TaskSplitter
from sklmeta.callbacks import (
    Checkpoint,
    CheckpointError,
    CheckpointWarning,
    LoadInitState,
    last_epoch,
)


def small_regressor(**params):
    """A MAMLRegressor on the smallest budget: one inner step, 8 hidden units."""
    return conftest_small_regressor(**{"inner_steps": 1, "hidden_layer_sizes": (8,), **params})


def checkpointing(dirname, **params):
    """Save every epoch; at train begin, load the last complete save if there is one."""
    cp = Checkpoint(dirname, **params)
    return [cp, LoadInitState(cp)]


def tiny_meta_sgd(**params):
    splitter = TaskSplitter(n_way=2, k_shot=3, n_query=3, n_tasks=16, random_state=0)
    return MetaSGDClassifier(**{**dict(task_splitter=splitter, hidden_layer_sizes=(16,),
                                       meta_batch_size=4, random_state=0), **params})


def assert_same_training(a, b):
    """Every meta-learned tensor, the optimizer's state and the losses: bit-identical."""
    assert a.history_[:, "epoch"] == b.history_[:, "epoch"]
    assert a.history_[:, "train_loss"] == b.history_[:, "train_loss"]
    sa, sb = a.net_.module_.state_dict(), b.net_.module_.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    oa, ob = (m.net_.optimizer_.state_dict()["state"] for m in (a, b))
    assert oa.keys() == ob.keys()
    assert all(torch.equal(oa[i][k], ob[i][k]) for i in oa for k in oa[i])


@pytest.mark.parametrize("make", [small_regressor, tiny_meta_sgd],
                         ids=["MAMLRegressor", "MetaSGDClassifier"])
def test_resuming_from_a_checkpoint_equals_an_uninterrupted_run(make, class_tasks, sine_tasks,
                                                                 tmp_path):
    tasks = sine_tasks if make is small_regressor else class_tasks
    full = make(max_epochs=6, early_stopping=False).fit(tasks)
    first = make(max_epochs=3, early_stopping=False, callbacks=checkpointing(tmp_path)).fit(tasks)
    assert last_epoch(tmp_path) == 3 and first.history_[:, "event_cp"] == [True] * 3
    # a new process would do the same: max_epochs counts the epochs of this call
    resumed = make(max_epochs=3, early_stopping=False,
                   callbacks=checkpointing(tmp_path)).fit(tasks)
    assert len(first.history_) == 3 and len(resumed.history_) == 6
    assert resumed.history_[:, "epoch"] == list(range(1, 7))
    assert dict(resumed.net_.callbacks_)["LoadInitState"].loaded_epoch_ == 3
    assert_same_training(full, resumed)
    assert not same_weights(weights(first), weights(full))
    # one complete checkpoint is kept (keep=1), nothing else
    assert sorted(p.name.split(".")[0] for p in tmp_path.iterdir()) == ["epoch-000006",
                                                                        "latest"]


class Killed(BaseException):
    """What a SIGKILL does to the writer: it stops, and nothing cleans up after it."""


STEPS = {}  # module level: the estimator deep-copies its callbacks


class Arm(Callback):
    """Arms the step counter as the epoch to be killed in ends (before Checkpoint runs)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, net, **kwargs):
        STEPS["armed"] = len(net.history) == self.epoch


def count_write_steps(monkeypatch, steps):
    """Each file-system step a checkpoint takes; raise Killed at step ``steps['kill']``."""
    import sklmeta.callbacks as callbacks

    def step(name, real):
        def wrapper(*args, **kwargs):
            if steps.get("armed"):
                steps["log"].append((name, str(args[0]) if args else ""))
                if len(steps["log"]) - 1 == steps.get("kill"):
                    raise Killed
            if name == "fsync":  # the order of the steps is simulated, not the disk's speed
                return None
            return real(*args, **kwargs)
        return wrapper

    for module, name in [(callbacks, "_write_file"), (os, "rename"), (os, "replace"),
                         (os, "fsync"), (shutil, "rmtree"), (tempfile, "mkdtemp"),
                         (os, "makedirs"), (os, "unlink")]:
        monkeypatch.setattr(module, name, step(name, getattr(module, name)))


@pytest.mark.parametrize("epoch", [1, 2], ids=["first save", "later save"])
def test_a_kill_at_any_write_step_resumes_from_the_last_complete_checkpoint(
        epoch, sine_tasks, tmp_path, monkeypatch):
    full = small_regressor(max_epochs=3, early_stopping=False).fit(sine_tasks)
    steps = STEPS
    steps.update(log=[], armed=False, kill=None)
    count_write_steps(monkeypatch, steps)

    def first_run(dirname):
        cbs = [Arm(epoch), *checkpointing(dirname)]
        return small_regressor(max_epochs=epoch, early_stopping=False, callbacks=cbs)

    first_run(tmp_path / "count").fit(sine_tasks)
    log = list(steps["log"])
    names = [name for name, _ in log]
    assert {"_write_file", "fsync", "rename", "replace"} <= set(names) and len(log) >= 10
    commit = max(i for i, (name, arg) in enumerate(log)  # the new latest put in place
                 if name == "replace" and os.path.basename(arg).startswith(".latest."))
    for kill in range(len(log)):
        dirname = tmp_path / f"kill-{kill}"
        steps.update(log=[], kill=kill)
        with pytest.raises(Killed):
            first_run(dirname).fit(sine_tasks)
        steps.update(armed=False, kill=None)
        loaded = last_epoch(dirname)
        assert loaded == (epoch if kill > commit else epoch - 1), (kill, log[kill])
        resumed = small_regressor(max_epochs=3 - loaded, early_stopping=False,
                                  callbacks=checkpointing(dirname)).fit(sine_tasks)
        assert_same_training(full, resumed)
        assert sorted(p.name.split(".")[0] for p in dirname.iterdir()) == [
            "epoch-000003", "latest"]  # what the killed write left is gone


def fail_writes(monkeypatch, after=0):
    """The disk fills up after ``after`` more checkpoint files."""
    import sklmeta.callbacks as callbacks

    real, left = callbacks._write_file, [after]

    def write(path, data):
        if left[0] <= 0:
            raise OSError(28, "No space left on device")
        left[0] -= 1
        real(path, data)

    monkeypatch.setattr(callbacks, "_write_file", write)


def test_a_failed_checkpoint_write_is_loud_and_recorded(sine_tasks, tmp_path, monkeypatch):
    fail_writes(monkeypatch, after=4)  # epoch 1 is saved (4 files), epoch 2 is not
    meta = small_regressor(max_epochs=3, early_stopping=False,
                           callbacks=checkpointing(tmp_path))
    with pytest.raises(CheckpointError, match=r"could not save epoch 2 in .*No space left on "
                                              r"device.*last complete checkpoint \(epoch 1\)"):
        meta.fit(sine_tasks)
    assert not hasattr(meta, "net_")  # a failed fit commits nothing; the disk has epoch 1
    assert last_epoch(tmp_path) == 1
    assert sorted(p.name.split(".")[0] for p in tmp_path.iterdir()) == ["epoch-000001",
                                                                        "latest"]
    # on_error="warn": training goes on, each failed epoch records event_cp=False
    fail_writes(monkeypatch, after=0)
    with pytest.warns(CheckpointWarning, match="could not save epoch 2"):
        meta = small_regressor(max_epochs=2, early_stopping=False,
                               callbacks=checkpointing(tmp_path, on_error="warn")
                               ).fit(sine_tasks)
    assert meta.history_[:, "event_cp"] == [True, False, False]
    assert last_epoch(tmp_path) == 1
    # a folder that cannot be created (under a file): refused at once, loudly
    (tmp_path / "file").write_text("")
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="could not save epoch 1 in .*file/run"):
        small_regressor(max_epochs=1, callbacks=[Checkpoint(tmp_path / "file" / "run")]
                        ).fit(sine_tasks)


class RecordsAnObject(Callback):
    def on_epoch_end(self, net, **kwargs):
        net.history.record("an_object", object())


def test_a_history_json_cannot_hold_is_a_clear_error(sine_tasks, tmp_path):
    with pytest.raises(TypeError, match="history as JSON, and epoch 1 holds a value JSON "
                                        "cannot store"):
        small_regressor(max_epochs=1, callbacks=[RecordsAnObject(), Checkpoint(tmp_path)]
                        ).fit(sine_tasks)
    assert last_epoch(tmp_path) == 0


def latest_folder(dirname):
    return Path(dirname) / json.loads((Path(dirname) / "latest").read_text())["checkpoint"]


@pytest.mark.parametrize("damage, message", [
    ("params.pt", "incomplete: params.pt is missing"),
    ("history.json", "incomplete: history.json is missing"),
    ("manifest.json", "incomplete: manifest.json is missing"),
    ("flip optimizer.pt", r"optimizer.pt does not match its checksum"),
    ("latest", r"holds \['epoch-000002\..*'\] but no 'latest' file"),
])
def test_a_partial_checkpoint_is_refused_not_restarted(damage, message, sine_tasks, tmp_path):
    small_regressor(max_epochs=2, early_stopping=False,
                    callbacks=checkpointing(tmp_path)).fit(sine_tasks)
    folder = latest_folder(tmp_path)
    if damage.startswith("flip"):
        path = folder / damage.split()[1]
        data = bytearray(path.read_bytes())
        data[-30] ^= 1
        path.write_bytes(bytes(data))
    elif damage == "latest":
        (tmp_path / "latest").unlink()
    else:
        (folder / damage).unlink()
    with pytest.raises(ValueError, match=message):
        small_regressor(max_epochs=1, early_stopping=False,
                        callbacks=checkpointing(tmp_path)).fit(sine_tasks)


def test_what_is_a_fresh_start(sine_tasks, tmp_path):
    fresh = small_regressor(max_epochs=1, early_stopping=False).fit(sine_tasks)
    for dirname in (tmp_path / "missing", tmp_path / "leftover"):
        if dirname.name == "leftover":  # only what a killed first write leaves
            (dirname / ".tmp-abc").mkdir(parents=True)
            (dirname / ".tmp-abc" / "params.pt").write_bytes(b"half")
        meta = small_regressor(max_epochs=1, early_stopping=False,
                               callbacks=checkpointing(dirname)).fit(sine_tasks)
        assert dict(meta.net_.callbacks_)["LoadInitState"].loaded_epoch_ == 0
        assert same_weights(weights(meta), weights(fresh))
        assert not (dirname / ".tmp-abc").exists()  # cleaned up by the first save
    # skorch's own checkpoint files are not a checkpoint to resume from
    skorch_run = tmp_path / "skorch"
    skorch_run.mkdir()
    torch.save(fresh.net_.module_.state_dict(), skorch_run / "params.pt")
    with pytest.raises(ValueError, match=r"holds \['params.pt'\] but no 'latest'"):
        small_regressor(max_epochs=1, callbacks=checkpointing(skorch_run)).fit(sine_tasks)


CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    import torch
    torch.set_num_threads(1)
    from conftest import small_regressor
    from sklmeta.callbacks import Checkpoint, LoadInitState
    from sklmeta.datasets import make_sinusoid_tasks
    cp = Checkpoint(sys.argv[1])
    small_regressor(max_epochs=100000, early_stopping=False, inner_steps=1,
                    hidden_layer_sizes=(8,),
                    callbacks=[cp, LoadInitState(cp)]).fit(
        make_sinusoid_tasks(n_tasks=40, n_samples=30, random_state=0))
""")


@pytest.mark.slow  # 30 s on a loaded 2-core machine: a new process imports torch and warms up
def test_a_training_killed_with_sigkill_resumes_exactly(sine_tasks, tmp_path):
    root = Path(__file__).resolve().parents[1]
    dirname = tmp_path / "run"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(dirname), str(root / "tests")], cwd=root,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)})
    try:
        deadline = time.monotonic() + 120
        while not (dirname / "latest").exists():  # the first checkpoint is written
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        time.sleep(0.05 + 0.1 * (os.getpid() % 7) / 7)  # some moment in later epochs
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    loaded = last_epoch(dirname)
    assert loaded >= 1
    resumed = small_regressor(max_epochs=2, early_stopping=False,
                              callbacks=checkpointing(dirname)).fit(sine_tasks)
    full = small_regressor(max_epochs=loaded + 2, early_stopping=False).fit(sine_tasks)
    assert_same_training(full, resumed)


def test_callbacks_is_public():
    assert sklmeta.callbacks.Checkpoint is Checkpoint and "callbacks" in sklmeta.__all__
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'warn'"):
        Checkpoint("x", on_error="ignore").initialize()
    with pytest.raises(TypeError, match="needs a sklmeta.callbacks.Checkpoint"):
        from skorch.callbacks import Checkpoint as SkorchCheckpoint

        LoadInitState(SkorchCheckpoint()).initialize()
