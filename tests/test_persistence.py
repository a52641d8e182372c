"""sklmeta.save / sklmeta.load: round trips that predict identically, and refusals."""

import os
import pickle

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
)
from sklmeta._base import SAVED_ATTRIBUTES
from sklmeta.estimators import META_ESTIMATORS as META_CLASSES


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
            assert getattr(loaded, name) == getattr(meta, name), name
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
                                         r"this sklmeta .* reads version 1"):
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
    torch.save({**saved, "estimator": {**saved["estimator"], "class": "os.system"}}, path)
    with pytest.raises(ValueError, match="'os.system', which is not one of sklmeta's"):
        sklmeta.load(path)
    torch.save({**saved, "estimator": {"class": "MAMLClassifier"}}, path)
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
