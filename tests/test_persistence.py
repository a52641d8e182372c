"""sklmeta.save / sklmeta.load: round trips that predict identically, and refusals."""

import os
import pickle
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import small
from sklearn.base import clone, is_classifier
from sklearn.exceptions import NotFittedError
from skorch.callbacks import Callback

import sklmeta
from sklmeta import (
    AdaptedClassifier,
    MAMLClassifier,
    MAMLRegressor,
    MetaSGDRegressor,
    ProtoNetClassifier,
    TaskSplitter,
)
from sklmeta._base import SAVED_ATTRIBUTES
from sklmeta.datasets import make_classification_tasks
from sklmeta.estimators import META_ESTIMATORS as META_CLASSES
from sklmeta.persistence import _write as write  # a payload, with its checksum


def tiny(cls, **params):
    return small(cls, **{"hidden_layer_sizes": (8,), **params})


def round_trip(estimator, tmp_path, **load_params):
    path = tmp_path / "estimator.pt"
    sklmeta.save(estimator, path)
    return sklmeta.load(path, **load_params)


def same_state(a, b):
    a, b = a.state_dict(), b.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def assert_same_meta(meta, loaded):
    assert type(loaded) is type(meta)
    params, loaded_params = meta.get_params(deep=False), loaded.get_params(deep=False)
    splitter = params.pop("task_splitter")
    assert loaded_params.pop("task_splitter").get_params() == splitter.get_params()
    assert loaded_params == params
    for name in SAVED_ATTRIBUTES:
        assert hasattr(loaded, name) == hasattr(meta, name), name
        if hasattr(meta, name):
            np.testing.assert_equal(getattr(loaded, name), getattr(meta, name), err_msg=name)
    assert list(loaded.history_) == list(meta.history_)
    assert same_state(loaded.net_.module_, meta.net_.module_)


@pytest.mark.parametrize("cls", META_CLASSES, ids=lambda c: c.__name__)
def test_round_trip_adapts_and_scores_identically(cls, class_tasks, sine_tasks, tmp_path):
    tasks = class_tasks if is_classifier(cls()) else sine_tasks
    train, test = tasks[:-3], tasks[-3:]
    meta = tiny(cls).fit(train)
    loaded = round_trip(meta, tmp_path)
    assert_same_meta(meta, loaded)
    assert loaded.validation_split_ is not None and loaded.initial_valid_score_ is not None
    if hasattr(meta, "inner_lrs_"):  # Meta-SGD: the learned step sizes came back too
        assert meta.inner_lrs_.keys() == loaded.inner_lrs_.keys()
        assert all(np.array_equal(meta.inner_lrs_[k], loaded.inner_lrs_[k])
                   for k in meta.inner_lrs_)
    X, y = test[0]
    a, b = meta.adapt(X[:10], y[:10]), loaded.adapt(X[:10], y[:10])
    assert np.array_equal(a.predict(X[10:]), b.predict(X[10:]))
    if is_classifier(cls()):
        assert np.array_equal(a.predict_proba(X[10:]), b.predict_proba(X[10:]))
    assert a.score(X[10:], y[10:]) == b.score(X[10:], y[10:])
    assert meta.score(test) == loaded.score(test)
    # the file holds tensors and plain values only: torch's safe loader reads it
    raw = torch.load(tmp_path / "estimator.pt", weights_only=True)
    assert raw["format"] == "sklmeta" and raw["format_version"] == sklmeta.persistence.FORMAT_VERSION


@pytest.mark.parametrize("case", ["string labels", "standardised regressor"])
def test_adapted_estimator_round_trip(case, class_tasks, sine_tasks, tmp_path):
    if case == "string labels":
        X, y = class_tasks[0]
        y = np.array(["cat", "dog"])[y]
        meta = tiny(MAMLClassifier, early_stopping=False).fit(class_tasks[1:])
    else:
        X, y = sine_tasks[0]
        meta = tiny(MetaSGDRegressor, standardize=True, early_stopping=False).fit(sine_tasks[1:])
    adapted = meta.adapt(X[:10], y[:10])
    loaded = round_trip(adapted, tmp_path)
    assert type(loaded) is type(adapted)
    assert_same_meta(meta, loaded.meta_estimator)
    assert loaded.params_.keys() == adapted.params_.keys()
    assert all(torch.equal(loaded.params_[k], adapted.params_[k]) for k in adapted.params_)
    assert np.array_equal(loaded.predict(X[10:]), adapted.predict(X[10:]))
    assert loaded.score(X[10:], y[10:]) == adapted.score(X[10:], y[10:])
    if case == "string labels":
        assert loaded.classes_.dtype == adapted.classes_.dtype
        assert loaded.classes_.tolist() == ["cat", "dog"]
        assert np.array_equal(loaded.predict_proba(X[10:]), adapted.predict_proba(X[10:]))
    else:
        assert np.array_equal(loaded.mean_, adapted.mean_)
        assert np.array_equal(loaded.scale_, adapted.scale_)
    assert loaded.n_features_padded_ == adapted.n_features_padded_


def test_dataframe_fitted_estimator_keeps_its_feature_names(class_tasks, tmp_path):
    X, y = class_tasks[0]
    columns = [f"gene_{i}" for i in range(X.shape[1])]
    X_all = pd.DataFrame(np.vstack([t[0] for t in class_tasks]), columns=columns)
    y_all = np.concatenate([t[1] + 2 * i for i, t in enumerate(class_tasks)])
    meta = tiny(MAMLClassifier, early_stopping=False).fit(X_all, y_all)
    adapted = meta.adapt(X_all.iloc[:10], y_all[:10])
    loaded = round_trip(meta, tmp_path)
    assert loaded.feature_names_in_.tolist() == columns
    assert loaded.feature_names_in_.dtype == meta.feature_names_in_.dtype
    again = loaded.adapt(X_all.iloc[:10], y_all[:10])
    assert np.array_equal(again.predict(X_all.iloc[10:20]), adapted.predict(X_all.iloc[10:20]))
    with pytest.raises(ValueError, match="feature names"):
        loaded.adapt(X_all.iloc[:10].rename(columns={"gene_0": "other"}), y_all[:10])
    loaded_adapted = round_trip(adapted, tmp_path)
    assert loaded_adapted.feature_names_in_.tolist() == columns


class CreatesAFile:
    """A pickle that, when unpickled, creates a file: what a malicious one would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class RunsAShellCommand(CreatesAFile):
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
@pytest.mark.parametrize("payload", [CreatesAFile, RunsAShellCommand])
def test_a_file_that_would_run_code_is_refused(payload, writer, tmp_path):
    marker, path = tmp_path / "marker", tmp_path / "tampered.pt"
    evil = {"format": "sklmeta", "format_version": 1,
            "estimator": {"class": "MAMLClassifier", "params": payload(marker)}}
    if writer == "pickle":
        with open(path, "wb") as f:
            pickle.dump(evil, f, protocol=2)  # the protocol torch's loader reads
    else:
        torch.save(evil, path)
    with pytest.raises(ValueError, match=r"Refusing to load .* \(it names \S*(open|system)\)"
                                         r".* only if you trust its source"):
        sklmeta.load(path)
    assert not marker.exists()
    # the file is really hostile: plain pickle would have run it
    if writer == "pickle" and payload is CreatesAFile:
        with open(path, "rb") as f:
            pickle.load(f)["estimator"]["params"].close()
        assert marker.exists()


def test_a_pickled_estimator_is_refused_too(class_tasks, tmp_path):
    meta = tiny(MAMLClassifier, early_stopping=False, max_epochs=1).fit(class_tasks)
    joblib.dump(meta, tmp_path / "meta.joblib")
    with pytest.raises(ValueError, match="Refusing to load .*meta.joblib"):
        sklmeta.load(tmp_path / "meta.joblib")


def test_other_formats_and_versions_are_refused(class_tasks, tmp_path):
    meta = tiny(MAMLClassifier, early_stopping=False, max_epochs=1).fit(class_tasks)
    path = tmp_path / "file.pt"
    sklmeta.save(meta, path)
    saved = torch.load(path, weights_only=True)

    torch.save({**saved, "format_version": 999, "sklmeta_version": "9.0"}, path)
    with pytest.raises(ValueError, match=r"format version 999 \(written by sklmeta 9.0\); "
                                         r"this sklmeta .* reads versions 1, 2"):
        sklmeta.load(path)
    torch.save(meta.net_.module_.state_dict(), path)  # a plain torch checkpoint
    with pytest.raises(ValueError, match="not a file written by sklmeta.save .*format marker"):
        sklmeta.load(path)
    path.write_text("not a torch file")
    with pytest.raises(ValueError, match="not a file written by sklmeta.save"):
        sklmeta.load(path)
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="not a file written by sklmeta.save"):
        sklmeta.load(path)
    # with a valid checksum (sklmeta's own writer): refused for what they hold
    write({**saved["estimator"], "class": "os.system"}, path)
    with pytest.raises(ValueError, match="'os.system', which is not one of sklmeta's"):
        sklmeta.load(path)
    write({"class": "MAMLClassifier"}, path)
    with pytest.raises(ValueError, match="damaged sklmeta file"):
        sklmeta.load(path)


def test_saving_an_unfitted_estimator_is_an_error(class_tasks, tmp_path):
    with pytest.raises(NotFittedError, match="not fitted yet: sklmeta.save saves fitted"):
        sklmeta.save(MAMLClassifier(), tmp_path / "x.pt")
    meta = tiny(MAMLClassifier, early_stopping=False, max_epochs=0).fit(class_tasks)
    with pytest.raises(NotFittedError, match="not fitted"):
        sklmeta.save(AdaptedClassifier(meta), tmp_path / "x.pt")
    with pytest.raises(TypeError, match="got list.*joblib or pickle"):
        sklmeta.save([meta], tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


class Embedding(torch.nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.linear = torch.nn.Linear(10, width)

    def forward(self, x):
        return torch.tanh(self.linear(x))


def test_a_custom_module_needs_its_code_at_load(class_tasks, tmp_path):
    meta = tiny(ProtoNetClassifier, module=Embedding(), early_stopping=False).fit(class_tasks)
    path = tmp_path / "proto.pt"
    sklmeta.save(meta, path)
    with pytest.raises(ValueError, match=r"custom module \(Embedding\).*load\(path, module="):
        sklmeta.load(path)
    with pytest.raises(ValueError, match="do not fit the network .* and the module given"):
        sklmeta.load(path, module=Embedding(width=5))
    loaded = sklmeta.load(path, module=Embedding())
    X, y = class_tasks[0]
    assert np.array_equal(loaded.adapt(X[:10], y[:10]).predict_proba(X[10:]),
                          meta.adapt(X[:10], y[:10]).predict_proba(X[10:]))
    plain = tmp_path / "plain.pt"
    sklmeta.save(tiny(ProtoNetClassifier, max_epochs=0).fit(class_tasks), plain)
    with pytest.raises(ValueError, match="saved with the default network"):
        sklmeta.load(plain, module=Embedding())


class Noop(Callback):
    pass


def test_callbacks_are_dropped_with_a_warning_and_random_states_kept(sine_tasks, tmp_path):
    meta = tiny(MAMLRegressor, callbacks=[Noop()], early_stopping=False,
                random_state=np.random.RandomState(3)).fit(sine_tasks)
    with pytest.warns(UserWarning, match="does not save callbacks"):
        sklmeta.save(meta, tmp_path / "meta.pt")
    loaded = sklmeta.load(tmp_path / "meta.pt")
    assert loaded.callbacks is None
    a, b = meta.random_state.get_state(), loaded.random_state.get_state()
    assert a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2:] == b[2:]
    assert same_state(loaded.net_.module_, meta.net_.module_)


def test_a_loaded_estimator_refits_like_the_original(sine_tasks, tmp_path):
    meta = tiny(MetaSGDRegressor).fit(sine_tasks)
    loaded = round_trip(meta, tmp_path)
    refit, again = loaded.fit(sine_tasks), clone(meta).fit(sine_tasks)
    assert same_state(refit.net_.module_, again.net_.module_)
    assert same_state(refit.net_.module_, meta.net_.module_)


class MyMAML(MAMLClassifier):
    pass


def test_only_sklmeta_estimators_are_saved(class_tasks, tmp_path):
    meta = tiny(MyMAML, early_stopping=False, max_epochs=0).fit(class_tasks)
    with pytest.raises(TypeError, match="got MyMAML.*joblib or pickle"):
        sklmeta.save(meta, tmp_path / "x.pt")
    X, y = class_tasks[0]
    with pytest.raises(TypeError, match="got MyMAML"):
        sklmeta.save(meta.adapt(X[:10], y[:10]), tmp_path / "x.pt")


# ------------------------------------------------ bounds, checksums, atomic saves
def saved_document(meta, tmp_path):
    """What sklmeta.save wrote for ``meta``, as torch's loader reads it."""
    path = tmp_path / "meta.pt"
    sklmeta.save(meta, path)
    return torch.load(path, weights_only=True)


def laughs(depth):
    """A list of two references to a list of two references to ... : 2**depth leaves."""
    value = ["ha"]
    for _ in range(depth):
        value = [value, value]
    return value


def test_shared_references_are_refused_before_anything_is_built(class_tasks, tmp_path):
    document = saved_document(tiny(MAMLClassifier, max_epochs=1).fit(class_tasks), tmp_path)
    path = tmp_path / "laughs.pt"
    # 2**40 leaves once expanded, a few kilobytes on disk (the old loader walked them all)
    torch.save({**document, "estimator": {**document["estimator"], "history": laughs(40)}},
               path)
    assert path.stat().st_size < 10_000
    with pytest.raises(ValueError, match="refers to one list, tuple or dict twice"):
        sklmeta.load(path)
    nested = []
    for _ in range(100):
        nested = [nested]
    torch.save({**document, "estimator": {**document["estimator"], "history": nested}}, path)
    with pytest.raises(ValueError, match="nest deeper than MAX_DEPTH=32"):
        sklmeta.load(path)


@pytest.mark.parametrize("where, value, message", [
    ("params", {"hidden_layer_sizes": (10**9,)}, r"hidden_layer_sizes\[0\] is 1000000000"),
    ("attributes", {"n_features_in_": 200_000_000}, "n_features_in_ is 200000000"),
    ("attributes", {"n_way_": 10**9}, "n_way_ is 1000000000"),
    # within the bounds, but not what the saved weights are: refused by shape, unbuilt
    ("attributes", {"n_features_in_": 1000},
     r"'net.0.weight' is torch.float32 of shape \(8, 10\) in the file but torch.float32 of "
     r"shape \(8, 1000\) in the network"),
    ("params", {"hidden_layer_sizes": (8, 8)},
     r"'net.2.bias' is .*\(2,\) in the file but .*\(8,\)"),
    # one name of 1e8 characters: 400 MB once decoded, 20 bytes in the file
    ("attributes", {"feature_names_in_": {"__ndarray__": "<U100000000", "shape": (1,),
                                          "data": ["a"]}},
     r"an array of dtype <U100000000 and shape \(1,\) that its data do not fill"),
])
def test_declared_sizes_are_checked_before_the_network_is_built(where, value, message,
                                                                class_tasks, tmp_path,
                                                                monkeypatch):
    document = saved_document(tiny(MAMLClassifier, max_epochs=1).fit(class_tasks), tmp_path)
    estimator = document["estimator"]
    write({**estimator, where: {**estimator[where], **value}}, tmp_path / "absurd.pt")
    built = []
    real = torch.nn.Module.to_empty
    # the network is never built (to_empty is where make_mlp allocates its weights)
    monkeypatch.setattr(torch.nn.Module, "to_empty",
                        lambda self, **kw: built.append(self) or real(self, **kw))
    with pytest.raises(ValueError, match=message):
        sklmeta.load(tmp_path / "absurd.pt")
    assert built == []


def test_a_stride_0_tensor_is_refused_unexpanded(class_tasks, tmp_path):
    meta = tiny(MAMLRegressor, standardize=True, early_stopping=False)
    X, y = class_tasks[0]
    adapted = meta.fit([(X, y.astype(float)) for X, y in class_tasks]).adapt(X[:10], y[:10])
    path = tmp_path / "adapted.pt"
    sklmeta.save(adapted, path)
    document = torch.load(path, weights_only=True)
    # 2.5e9 float32 zeros in 4 bytes of storage; decoding them as float64 took 20 GB
    huge = torch.zeros(1).expand(2_500_000_000)
    attributes = {**document["estimator"]["attributes"],
                  "mean_": {"__ndarray__": "<f8", "shape": (2_500_000_000,), "data": huge}}
    torch.save({**document, "estimator": {**document["estimator"], "attributes": attributes}},
               path)
    assert path.stat().st_size < 100_000
    with pytest.raises(ValueError, match=r"size \(2500000000,\) has stride \(0,\)"):
        sklmeta.load(path)


def test_a_pickle_calling_bytearray_is_refused_before_it_runs(tmp_path):
    path = tmp_path / "bytearray.pt"
    # GLOBAL builtins.bytearray, 2e9 as an int, TUPLE1, REDUCE: 2 GB allocated on unpickling
    path.write_bytes(b"\x80\x02cbuiltins\nbytearray\nJ\x00\x945w\x85R.")
    with pytest.raises(ValueError, match=r"Refusing to load .*\(it names builtins.bytearray\)"):
        sklmeta.load(path)


def flip_a_weight_bit(path):
    """Flip one bit of the first stored weight, in place (as a bad disk or copy would)."""
    data = bytearray(path.read_bytes())
    at = data.index(torch.load(path, weights_only=True)["estimator"]["state_dict"][
        "net.0.weight"].numpy().tobytes())
    data[at + 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_corrupted_file_is_refused(sine_tasks, tmp_path):
    meta = tiny(MAMLRegressor, max_epochs=1).fit(sine_tasks)
    path = tmp_path / "meta.pt"
    sklmeta.save(meta, path)
    flip_a_weight_bit(path)
    with pytest.raises(ValueError, match="damaged sklmeta file .*CRC"):
        sklmeta.load(path)
    # edited consistently (the zip's CRCs recomputed): the checksum still tells
    sklmeta.save(meta, path)
    document = torch.load(path, weights_only=True)
    document["estimator"]["state_dict"]["net.0.weight"][0, 0] += 1e-3
    torch.save(document, path)
    with pytest.raises(ValueError, match="checksum does not match its contents"):
        sklmeta.load(path)
    document["estimator"]["params"]["inner_lr"] = 0.5  # parameters are covered too
    write(document["estimator"], path)
    assert sklmeta.load(path).inner_lr == 0.5
    document = torch.load(path, weights_only=True)
    document["estimator"]["params"]["inner_lr"] = 0.25
    torch.save(document, path)
    with pytest.raises(ValueError, match="checksum does not match"):
        sklmeta.load(path)


def test_version_1_files_load_with_a_warning(sine_tasks, tmp_path):
    meta = tiny(MAMLRegressor, max_epochs=1).fit(sine_tasks)
    document = saved_document(meta, tmp_path)
    assert document["format_version"] == 4 and len(document["sha256"]) == 64
    del document["sha256"]
    torch.save({**document, "format_version": 1}, tmp_path / "v1.pt")
    with pytest.warns(UserWarning, match="version 1, which has no checksum"):
        loaded = sklmeta.load(tmp_path / "v1.pt")
    assert same_state(loaded.net_.module_, meta.net_.module_)


@pytest.mark.parametrize("version, name, refused, why", [
    # format 3 stores DKT's, MetaRidge's and the neural processes' scalars scaled
    (2, "MAMLRegressor", False, ""), (2, "DeepKernelGPRegressor", True, ""),
    # format 4: MetaRidgeClassifier's head has a centroid term older files lack
    (3, "ProtoNetClassifier", False, ""), (3, "MetaRidgeClassifier", True, "centroid_weight"),
])
def test_older_files_of_learners_whose_weights_changed_are_refused(sine_tasks, tmp_path,
                                                                    version, name, refused,
                                                                    why):
    cls = getattr(sklmeta, name)
    if is_classifier(cls()):
        tasks = make_classification_tasks(n_tasks=6, n_samples=20, n_features=4,
                                          random_state=0)
        splitter = TaskSplitter(n_way=2, k_shot=2, n_query=2, n_tasks=8, random_state=0)
        meta = cls(task_splitter=splitter, max_epochs=1, random_state=0).fit(tasks)
    else:
        meta = tiny(cls, max_epochs=1).fit(sine_tasks)
    document = saved_document(meta, tmp_path)
    assert document["format_version"] == 4
    torch.save({**document, "format_version": version}, tmp_path / "old.pt")
    if refused:
        with pytest.raises(ValueError, match=f"{name} in sklmeta file format version "
                                             f"{version}.*{why}.*Refit it"):
            sklmeta.load(tmp_path / "old.pt")
    else:
        assert same_state(sklmeta.load(tmp_path / "old.pt").net_.module_, meta.net_.module_)


def fail_half_way(obj, f):
    """torch.save on a full disk: part of the file written, then ENOSPC."""
    if hasattr(f, "write"):
        f.write(b"PK\x03\x04 half a file")
    else:
        with open(f, "wb") as out:
            out.write(b"PK\x03\x04 half a file")
    raise OSError(28, "No space left on device")


def test_a_failed_save_keeps_the_previous_file(sine_tasks, tmp_path, monkeypatch):
    meta = tiny(MAMLRegressor, max_epochs=1).fit(sine_tasks)
    path = tmp_path / "meta.pt"
    sklmeta.save(meta, path)
    before = path.read_bytes()
    monkeypatch.setattr(torch, "save", fail_half_way)
    with pytest.raises(OSError, match=f"could not write {path}: No space left on device; the "
                                      "previous file there, if any, is unchanged"):
        sklmeta.save(meta, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.pt"]  # no temporary left
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() makes files
    monkeypatch.undo()
    assert same_state(sklmeta.load(path).net_.module_, meta.net_.module_)


def test_only_regular_files_are_read(tmp_path):
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    outcome = []

    def load_fifo():
        try:
            sklmeta.load(fifo)
        except ValueError as e:
            outcome.append(str(e))

    reader = threading.Thread(target=load_fifo, daemon=True)
    reader.start()
    reader.join(timeout=10)  # the old loader waited forever for a writer
    assert not reader.is_alive()
    assert outcome and "not a regular file (a FIFO" in outcome[0]
    with pytest.raises(ValueError, match="/dev/zero is not a regular file"):
        sklmeta.load("/dev/zero")  # the old loader read it until memory ran out
    with pytest.raises(ValueError, match="is a directory"):
        sklmeta.load(tmp_path)
    (tmp_path / "big.pt").write_bytes(b"\x80" * 1000)
    with pytest.raises(ValueError, match="1000 bytes, more than max_bytes=999"):
        sklmeta.load(tmp_path / "big.pt", max_bytes=999)
    with pytest.raises(FileNotFoundError):
        sklmeta.load(tmp_path / "missing.pt")


def test_a_cuda_file_loads_on_a_machine_without_cuda(class_tasks, tmp_path, monkeypatch):
    from skorch.exceptions import DeviceWarning

    meta = tiny(MAMLClassifier, max_epochs=1).fit(class_tasks)
    X, y = class_tasks[0]
    adapted = meta.adapt(X[:10], y[:10])
    document = saved_document(adapted, tmp_path)
    estimator = document["estimator"]
    estimator["meta_estimator"]["params"]["device"] = "cuda"  # as if trained on a GPU
    write(estimator, tmp_path / "cuda.pt")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the machine lacks one
    with pytest.warns(DeviceWarning, match="saved with device='cuda' but CUDA is not "
                                           "available; loading it on device 'cpu'"):
        fallback = sklmeta.load(tmp_path / "cuda.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chosen = sklmeta.load(tmp_path / "cuda.pt", device="cpu")
    for loaded in (fallback, chosen):
        assert loaded.meta_estimator.device == "cpu"
        assert np.array_equal(loaded.predict_proba(X[10:]), adapted.predict_proba(X[10:]))
    # device= overrides the saved device the other way too (refused here: no CUDA)
    sklmeta.save(meta, tmp_path / "cpu.pt")
    with pytest.raises(ValueError, match="device='cuda' but CUDA is not available"):
        sklmeta.load(tmp_path / "cpu.pt", device="cuda")
