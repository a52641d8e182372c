import pickle
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import same_weights, small_classifier, small_regressor, weights
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_iris, load_wine
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Callback, EarlyStopping

import sklmeta
from sklmeta import AdaptedClassifier, AdaptedRegressor, TaskSplitter, stack_tasks
from sklmeta._adaptation import episode_scores
from sklmeta.datasets import make_sinusoid_tasks


# ---------------------------------------------------------------- the adapt contract
def test_adapt_returns_a_new_fitted_estimator_and_leaves_meta_unchanged(class_tasks):
    meta = small_classifier().fit(class_tasks)
    before = weights(meta)
    X, y = class_tasks[0]
    clf = meta.adapt(X[:6], y[:6])
    assert isinstance(clf, AdaptedClassifier) and clf is not meta
    assert same_weights(before, weights(meta))
    proba = clf.predict_proba(X[6:])
    assert proba.shape == (34, 2) and np.allclose(proba.sum(1), 1)
    assert set(clf.predict(X[6:])) <= {0, 1}
    assert 0 <= clf.score(X[6:], y[6:]) <= 1
    assert not hasattr(meta, "predict")
    # adapted weights differ from the meta-learned initialisation
    assert not same_weights(before, clf.params_.values())


@pytest.mark.parametrize("seed", range(5))
def test_a_rows_prediction_does_not_depend_on_the_other_rows(sine_tasks, class_tasks, seed):
    # scikit-learn's check_methods_sample_order_invariance (rtol 1e-7) failed on
    # float32 forwards, whose last bits move with the rows around a row.
    rng = np.random.RandomState(seed)
    reg = small_regressor(hidden_layer_sizes=(64, 64)).fit(sine_tasks)
    X, y = rng.uniform(-5, 5, (300, 1)), rng.randn(300)
    adapted = reg.adapt(X[:10], y[:10])
    order = rng.permutation(300)
    np.testing.assert_allclose(adapted.predict(X[order]), adapted.predict(X)[order], rtol=1e-10)
    np.testing.assert_allclose(adapted.predict(X[:7]), adapted.predict(X)[:7], rtol=1e-10)
    clf = small_classifier().fit(class_tasks).adapt(*(a[:10] for a in class_tasks[0]))
    Xc = rng.randn(300, class_tasks[0][0].shape[1])
    np.testing.assert_allclose(clf.predict_proba(Xc[order]), clf.predict_proba(Xc)[order],
                               rtol=1e-10)


def test_labels_are_mapped_back_to_the_users_labels(class_tasks):
    meta = small_classifier().fit(class_tasks)
    X, y = class_tasks[1]
    names = np.array(["cat", "dog"])[y]
    clf = meta.adapt(X[:10], names[:10])
    assert clf.classes_.tolist() == ["cat", "dog"]
    assert set(clf.predict(X[10:])) <= {"cat", "dog"}
    # renaming the labels changes nothing but the names
    np.testing.assert_array_equal(clf.predict(X[10:]),
                                  np.array(["cat", "dog"])[meta.adapt(X[:10], y[:10]).predict(X[10:])])


def test_fewer_classes_than_n_way_use_the_first_outputs():
    X, y = load_iris(return_X_y=True)
    meta = small_classifier(n_way=3, early_stopping=False).fit(X, y)
    two = y < 2
    clf = meta.adapt(X[two][::5], y[two][::5])
    assert clf.predict_proba(X[two]).shape == (100, 2)
    assert set(clf.predict(X)) <= {0, 1}


def test_batched_adaptation_equals_one_at_a_time(class_tasks):
    meta = small_classifier().fit(class_tasks)
    X, y, groups = stack_tasks(class_tasks)
    splitter = TaskSplitter(n_way=2, k_shot=3, n_query=5, n_tasks=10, random_state=1)
    one_by_one = cross_val_score(AdaptedClassifier(meta), X, y, groups=groups, cv=splitter)
    batched = episode_scores(meta, X, y, episodes=list(splitter.split(X, y, groups)), probe=AdaptedClassifier(meta))
    np.testing.assert_allclose(batched, one_by_one)
    meta.set_params(task_splitter=splitter)
    assert meta.score(X, y, groups) == pytest.approx(one_by_one.mean())


def test_score_accepts_a_task_list(class_tasks):
    meta = small_classifier().fit(class_tasks[:8])
    assert 0 <= meta.score(class_tasks[8:]) <= 1


def test_regressor_adapts_and_predicts(sine_tasks):
    reg = small_regressor().fit(sine_tasks)
    x, y = sine_tasks[0]
    fitted = reg.adapt(x[:5], y[:5])
    assert isinstance(fitted, AdaptedRegressor)
    assert fitted.predict(x).shape == (30,) and fitted.predict(x).dtype == np.float64
    assert np.isfinite(reg.score(sine_tasks[:5]))


# ------------------------------------------------------------------- bad input
def test_adapt_before_fit_names_the_problem():
    with pytest.raises(NotFittedError, match="not meta-trained yet"):
        small_classifier().adapt(np.zeros((4, 2)), [0, 1, 0, 1])


def test_adapt_with_more_classes_than_n_way(class_tasks):
    meta = small_classifier().fit(class_tasks)
    X, _ = class_tasks[0]
    with pytest.raises(ValueError, match="has 3 classes.*n_way=2 outputs"):
        meta.adapt(X[:6], [0, 1, 2, 0, 1, 2])


@pytest.mark.parametrize("cls", [sklmeta.MAMLClassifier, sklmeta.ProtoNetClassifier])
def test_a_single_class_support_set_adapts_and_predicts_its_class(class_tasks, cls):
    # real grouped data bring them; a RandomForest fits them (it was an error)
    from conftest import small

    meta = small(cls).fit(class_tasks)
    X = class_tasks[0][0]
    clf = meta.adapt(X[:4], ["a"] * 4)
    assert clf.classes_.tolist() == ["a"]
    assert (clf.predict(X[4:]) == "a").all()
    np.testing.assert_allclose(clf.predict_proba(X[4:]), 1.0)
    assert clf.score(X[4:], ["a"] * (len(X) - 4)) == 1.0


def test_adapt_width_mismatch(class_tasks):
    meta = small_classifier().fit(class_tasks)
    with pytest.raises(ValueError, match="X has 9 features, but MAMLClassifier is expecting 10 features"):
        meta.adapt(np.zeros((4, 9)), [0, 1, 0, 1])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_is_rejected(class_tasks, bad):
    X, y = class_tasks[0]
    X = X.copy()
    X[3, 2] = bad
    with pytest.raises(ValueError, match="task 0: Input X contains (NaN|infinity)"):
        small_classifier().fit([(X, y)] + class_tasks[1:])
    with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
        small_classifier(early_stopping=False).fit(X, y)
    meta = small_classifier().fit(class_tasks)
    with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
        meta.adapt(X[:6], y[:6])


def test_empty_task_list():
    with pytest.raises(ValueError, match="empty task list"):
        small_classifier().fit([])


def test_fit_needs_y_or_tasks():
    with pytest.raises(ValueError, match=r"needs \(X, y\) or a list"):
        small_classifier().fit(np.zeros((10, 2)))


def test_labels_outside_the_support_set_are_an_error_when_scoring(class_tasks):
    meta = small_classifier().fit(class_tasks)
    X, y = class_tasks[0]
    clf = meta.adapt(X[:6], y[:6])
    with pytest.raises(ValueError, match=r"labels \[7\] that are not among .* \[0, 1\]"):
        clf.score(X[:3], [0, 1, 7])


def test_too_few_samples_per_class_is_named(class_tasks):
    X, y = class_tasks[0]
    meta = small_classifier(task_splitter=TaskSplitter(n_way=2, k_shot=15, n_query=10))
    with pytest.raises(ValueError, match=r"Every class of task \d+ needs at least k_shot \+ n_query = 15 \+ 10 = 25 "
                       r"samples; class 0 has 20, class 1 has 20\."):
        meta.fit(class_tasks)


def test_n_way_above_the_number_of_classes(class_tasks):
    with pytest.raises(ValueError, match="n_way=3 is larger than the number of classes"):
        small_classifier(n_way=3, early_stopping=False).fit(class_tasks)


@pytest.mark.parametrize("param, value, message", [
    ("inner_steps", 0, r"'inner_steps' parameter of MAMLClassifier must be an int in the range \[1"),
    ("hidden_layer_sizes", (16, 0), "hidden_layer_sizes must be a tuple of positive integers"),
    ("inner_lr", -0.1, r"'inner_lr' parameter of MAMLClassifier must be a float in the range \(0"),
    ("inner_lr", float("inf"), "'inner_lr' parameter of MAMLClassifier must be a float in"),
    ("early_stopping", "yes", "'early_stopping' parameter of MAMLClassifier must be"),
    ("validation_fraction", 1.5, "'validation_fraction' parameter of MAMLClassifier must be a "
                                 "float in the range"),
    ("validation_fraction", "0.2", "'validation_fraction' parameter of MAMLClassifier must be"),
    ("task_splitter", 5, "'task_splitter' parameter of MAMLClassifier must be an instance of "
                         "'sklmeta.tasks.TaskSplitter'"),
    ("first_order", "no", "'first_order' parameter of MAMLClassifier must be an instance of "
                          "'bool'"),
    ("verbose", -1, "'verbose' parameter of MAMLClassifier must be"),
    ("activation", "swish", "'activation' parameter of MAMLClassifier must be a str among"),
    ("device", "meta", "device='meta' holds no data"),
    ("device", 3, "'device' parameter of MAMLClassifier must be"),
])
def test_bad_parameters_are_named_at_fit(class_tasks, param, value, message):
    with pytest.raises(ValueError, match=message):
        small_classifier(**{param: value}).fit(class_tasks)
    # scikit-learn's InvalidParameterError is a ValueError and a TypeError
    with pytest.raises(TypeError):
        if param not in ("hidden_layer_sizes", "device"):
            small_classifier(**{param: value}).fit(class_tasks)
        else:
            raise TypeError


def test_regressor_rejects_n_way(sine_tasks):
    with pytest.raises(ValueError, match="n_way is for classification"):
        small_regressor(task_splitter=TaskSplitter(n_way=2)).fit(sine_tasks)


# ------------------------------------------------------- mixed widths, dataframes
def test_tasks_of_different_widths_are_standardised_and_padded():
    X_iris, y_iris = load_iris(return_X_y=True)
    X_bc, y_bc = load_breast_cancer(return_X_y=True)
    X_wine, y_wine = load_wine(return_X_y=True)
    keep = y_iris < 2
    meta = small_classifier().fit([(X_iris[keep], y_iris[keep]), (X_bc, y_bc)])
    assert meta.standardize_ and meta.n_features_in_ == 30
    clf = meta.adapt(X_wine[[0, 1, 2, 70, 71, 72]], y_wine[[0, 1, 2, 70, 71, 72]])
    assert clf.n_features_in_ == 13 and clf.predict(X_wine[:5]).shape == (5,)
    # the support set's statistics standardise the queries too
    np.testing.assert_allclose(clf.mean_, X_wine[[0, 1, 2, 70, 71, 72]].mean(0), rtol=1e-5)
    with pytest.raises(ValueError, match="X has 31 features.*adapt accepts at most 30"):
        meta.adapt(np.ones((4, 31)), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="1 sample cannot be standardised"):
        meta.adapt(X_wine[:1], y_wine[:1])
    with pytest.raises(ValueError, match="different widths"):
        small_classifier(standardize=False).fit([(X_iris[keep], y_iris[keep]), (X_bc, y_bc)])


def test_dataframe_feature_names_are_kept_and_checked_at_adapt(class_tasks):
    X, y = class_tasks[0]
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(10)])
    meta = small_classifier(early_stopping=False).fit(df, y)
    assert meta.feature_names_in_.tolist() == list(df.columns)
    assert meta.adapt(df.iloc[:6], y[:6]).predict(df.iloc[6:]).shape == (34,)
    with pytest.raises(ValueError, match="feature names"):
        meta.adapt(df.iloc[:6, ::-1], y[:6])  # columns in another order
    with pytest.raises(ValueError, match="Feature names seen at fit time, yet now missing"):
        meta.adapt(df.iloc[:6, :-1], y[:6])  # a column missing
    clf = meta.adapt(df.iloc[:6], y[:6])
    assert clf.feature_names_in_.tolist() == list(df.columns)
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(df.iloc[6:, ::-1])


# ------------------------------------------------ reproducibility and persistence
def test_same_random_state_same_weights_and_scores(class_tasks):
    a, b = small_classifier().fit(class_tasks), small_classifier().fit(class_tasks)
    assert same_weights(weights(a), weights(b))
    assert a.score(class_tasks[:4]) == b.score(class_tasks[:4])
    c = small_classifier(random_state=1).fit(class_tasks)
    assert not same_weights(weights(a), weights(c))


def test_random_start_is_the_same_network(class_tasks):
    trained = small_classifier(max_epochs=0).fit(class_tasks)
    other = small_classifier(max_epochs=0, early_stopping=False, meta_lr=0.5).fit(class_tasks)
    assert same_weights(weights(trained), weights(other))


@pytest.mark.parametrize("dump, load", [
    (pickle.dumps, pickle.loads),
    (lambda est: joblib_dump(est), lambda blob: joblib_load(blob)),
])
def test_pickle_and_joblib_round_trips_predict_identically(class_tasks, dump, load):
    meta = small_classifier().fit(class_tasks)
    X, y = class_tasks[2]
    clf = meta.adapt(X[:6], y[:6])
    meta2, clf2 = load(dump(meta)), load(dump(clf))
    np.testing.assert_array_equal(clf2.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(meta2.adapt(X[:6], y[:6]).predict_proba(X), clf.predict_proba(X))
    assert meta2.score(class_tasks[:3]) == meta.score(class_tasks[:3])


def joblib_dump(est):
    import io
    buf = io.BytesIO()
    joblib.dump(est, buf)
    return buf.getvalue()


def joblib_load(blob):
    import io
    return joblib.load(io.BytesIO(blob))


# ------------------------------------------------------- scikit-learn integration
def test_clone_and_params_are_verbatim(class_tasks):
    callbacks = [EarlyStopping(patience=3)]
    meta = small_classifier(callbacks=callbacks, hidden_layer_sizes=(8, 4))
    params = meta.get_params()
    assert params["callbacks"] is callbacks and params["hidden_layer_sizes"] == (8, 4)
    assert params["task_splitter__k_shot"] == 3
    twin = clone(meta)
    assert twin.get_params()["hidden_layer_sizes"] == (8, 4)
    meta.fit(class_tasks)
    assert meta.get_params()["callbacks"] is callbacks and callbacks[0].patience == 3
    assert not hasattr(twin, "net_")


def test_adapted_estimator_clones_share_the_meta_estimator(class_tasks):
    meta = small_classifier().fit(class_tasks)
    twin = clone(AdaptedClassifier(meta))
    assert twin.meta_estimator is meta and not hasattr(twin, "params_")


def test_grid_search_over_meta_hyperparameters():
    X, y = load_iris(return_X_y=True)
    grid = GridSearchCV(small_classifier(n_way=3, max_epochs=1, early_stopping=False),
                        {"inner_lr": [0.1, 0.4], "inner_steps": [1, 2]}, cv=2)
    grid.fit(X, y)
    assert len(grid.cv_results_["mean_test_score"]) == 4
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()
    assert grid.best_params_["inner_lr"] in (0.1, 0.4)


def test_pipeline_fits_scores_and_adapts_through_sklmeta_adapt(class_tasks):
    X, y, groups = stack_tasks(class_tasks)
    pipe = make_pipeline(StandardScaler(), small_classifier()).fit(X, y, mamlclassifier__groups=groups)
    assert 0 <= pipe.score(X, y) <= 1
    scaler_before = pipe[0].mean_.copy()
    adapted = sklmeta.adapt(pipe, X[:6], y[:6])
    expected = pipe[-1].adapt(pipe[0].transform(X[:6]), y[:6]).predict(pipe[0].transform(X))
    np.testing.assert_array_equal(adapted.predict(X), expected)
    np.testing.assert_array_equal(pipe[0].mean_, scaler_before)
    assert adapted[0] is not pipe[0]
    with pytest.raises(TypeError, match="not a meta-estimator"):
        sklmeta.adapt(StandardScaler(), X, y)


# -------------------------------------------------------------- the skorch loop
def test_history_and_verbose_progress(class_tasks, capsys):
    meta = small_classifier(max_epochs=3, verbose=1, n_iter_no_change=10).fit(class_tasks)
    assert len(meta.history_) == 3 and meta.history_ is meta.net_.history
    assert {"train_loss", "valid_loss", "valid_acc"} <= set(meta.history_[-1])
    captured = capsys.readouterr()
    assert "train_loss" in captured.out and "valid_acc" in captured.out


def test_early_stopping_leaves_no_progress_bar_open(class_tasks):
    """Stopping raises at epoch end; a bar still open there shifted every later bar."""
    from tqdm.auto import tqdm

    meta = small_classifier(max_epochs=30, verbose=1, n_iter_no_change=1,
                            callbacks=[WreckWeights()])
    meta.fit(class_tasks)
    assert len(meta.history_) < 30  # it did stop early
    assert len(tqdm._instances) == 0


class CountEpochs(Callback):
    def __init__(self):
        self.epochs = 0

    def on_epoch_end(self, net, **kwargs):
        self.epochs += 1


def test_user_callbacks_run_on_a_copy_and_skorch_early_stopping_works(class_tasks):
    counter = CountEpochs()
    stop = EarlyStopping(monitor="valid_loss", patience=2, threshold=100.0, threshold_mode="abs")
    meta = small_classifier(max_epochs=10, n_iter_no_change=10, callbacks=[counter, stop])
    meta.fit(class_tasks)
    # epoch 1 sets the bar, epochs 2 and 3 miss it by 100: stopped after 3 epochs
    assert len(meta.history_) == 3
    assert dict(meta.net_.callbacks_)["CountEpochs"].epochs == 3 and counter.epochs == 0


# -------------------------------------------------------------- early stopping
class WreckWeights(Callback):
    """Zero every weight after each meta-step: meta-training that only hurts."""

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            with torch.no_grad():
                for p in net.module_.parameters():
                    p.zero_()


def test_meta_overfitting_falls_back_to_the_random_start(class_tasks):
    meta = small_classifier(max_epochs=3, n_iter_no_change=5, callbacks=[WreckWeights()])
    meta.fit(class_tasks)
    start = small_classifier(max_epochs=0).fit(class_tasks)
    # zero weights adapt to constant logits: chance (0.5) on balanced queries
    assert list(meta.history_[:, "valid_acc"]) == [0.5, 0.5, 0.5]
    assert meta.early_stopping_ and meta.initial_valid_score_ > 0.5
    assert meta.best_epoch_ == 0 and same_weights(weights(meta), weights(start))


def test_held_out_classes_tasks_and_rows(class_tasks):
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    meta = small_classifier(n_way=2, max_epochs=1).fit(X[y < 4], y[y < 4])
    split = meta.validation_split_
    assert meta.early_stopping_ and len(meta.history_) == 1
    assert split["unit"] == "classes" and len(split["held_out"]) == 2 and split["n_kept"] == 2
    assert set(split["held_out"]) < {0, 1, 2, 3}
    meta = small_classifier(max_epochs=1).fit(class_tasks)
    assert meta.validation_split_["unit"] == "tasks"
    assert len(meta.validation_split_["held_out"]) == 2 and meta.validation_split_["n_kept"] == 10
    Xg, yg, groups = stack_tasks(class_tasks)
    meta = small_classifier(max_epochs=1).fit(Xg, yg, groups=np.array(list("abcdefghijkl"))[groups])
    assert meta.validation_split_["unit"] == "groups"
    assert set(meta.validation_split_["held_out"]) < set("abcdefghijkl")
    x, t = make_sinusoid_tasks(n_tasks=1, n_samples=100, random_state=0)[0]
    reg = small_regressor(max_epochs=1).fit(x, t)
    assert reg.validation_split_["unit"] == "rows" and len(reg.validation_split_["held_out"]) == 20
    assert "valid_loss" in reg.history_[-1]
    assert small_regressor(early_stopping=False).fit(x, t).validation_split_ is None


def test_early_stopping_auto_warns_when_the_data_do_not_allow_it():
    X, y = load_iris(return_X_y=True)
    with pytest.warns(UserWarning, match="3 classes are too few to hold out n_way=2"):
        small_classifier(max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="early_stopping=True but the data do not allow it"):
        small_classifier(max_epochs=1, early_stopping=True).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small_classifier(max_epochs=1, early_stopping=False).fit(X, y)


# ------------------------------------------------------------------ it learns
def test_sinusoid_meta_training_beats_the_random_start():
    train = make_sinusoid_tasks(n_tasks=200, n_samples=20, random_state=0)
    test = make_sinusoid_tasks(n_tasks=100, n_samples=20, random_state=1)
    splitter = TaskSplitter(k_shot=10, n_query=10, n_tasks=200, random_state=0)
    params = dict(task_splitter=splitter, hidden_layer_sizes=(40, 40), meta_batch_size=10,
                  meta_lr=1e-2, random_state=0)
    meta = sklmeta.MAMLRegressor(max_epochs=15, **params).fit(train)
    start = sklmeta.MAMLRegressor(max_epochs=0, **params).fit(train)

    def mse(est):
        return np.mean([np.mean((est.adapt(x[:10], y[:10]).predict(x[10:]) - y[10:]) ** 2)
                        for x, y in test])

    assert mse(meta) < 0.5 * mse(start)


def test_a_single_class_cannot_be_meta_trained():
    X = np.random.RandomState(0).rand(30, 3)
    with pytest.raises(ValueError, match=r"at least 2 classes per task; y has only 1 class \(7\)"):
        small_classifier(early_stopping=False, task_splitter=TaskSplitter(k_shot=2, n_query=2)).fit(
            X, np.full(30, 7))


def test_score_is_seeded_by_the_estimator_and_draws_classes():
    X, y = load_iris(return_X_y=True)
    meta = small_classifier(n_way=3, early_stopping=False,
                            task_splitter=TaskSplitter(k_shot=2, n_query=3, n_tasks=5)).fit(X, y)
    assert meta.n_way_ == 3
    # unseeded splitter: episodes follow the estimator's random_state, classes are drawn
    assert meta.score(X, y) == meta.score(X, y)
    assert 0 <= meta.score(X[y < 2], y[y < 2]) <= 1  # two classes: 2-way episodes


def test_adapt_steps_is_read_when_adapting(sine_tasks):
    reg = small_regressor(early_stopping=False).fit(sine_tasks)
    ten = small_regressor(early_stopping=False, adapt_steps=10).fit(sine_tasks)
    x, y = sine_tasks[0]
    one_step = reg.adapt(x[:5], y[:5]).predict(x)
    reg.set_params(adapt_steps=10)
    np.testing.assert_allclose(reg.adapt(x[:5], y[:5]).predict(x), ten.adapt(x[:5], y[:5]).predict(x))
    assert not np.allclose(one_step, reg.adapt(x[:5], y[:5]).predict(x))
    with pytest.raises(ValueError, match="'adapt_steps' parameter of MAMLRegressor must be an int in the range"):
        reg.set_params(adapt_steps=0).adapt(x[:5], y[:5])


def test_an_adapted_estimator_survives_a_refit_of_its_meta_estimator(class_tasks):
    meta = small_classifier().fit(class_tasks)
    X, y = class_tasks[0]
    clf = meta.adapt(X[:6], y[:6])
    before = clf.predict_proba(X)
    meta.set_params(hidden_layer_sizes=(3, 3)).fit([(X[:, :7], y) for X, y in class_tasks])
    np.testing.assert_array_equal(clf.predict_proba(X), before)


def test_cuda_without_cuda_is_a_clear_error(class_tasks, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device='cuda' but CUDA is not available"):
        small_classifier(device="cuda").fit(class_tasks)


def test_batched_regression_scores_equal_adapt_then_r2(sine_tasks):
    reg = small_regressor().fit(sine_tasks)
    X, y, groups = stack_tasks(sine_tasks[:6])
    y = y.copy()
    y[groups == 0] = 1.5  # a constant task: r2_score's special case
    episodes = list(TaskSplitter(k_shot=5, n_query=5, n_tasks=12, random_state=3).split(
        X, y, groups))
    one_by_one = [reg.adapt(X[s], y[s]).score(X[q], y[q]) for s, q in episodes]
    # the batched path predicts in float32, adapt(...).predict in float64: R^2 near 0
    # magnifies their last-bit differences, so the tolerance is absolute, in R^2 units
    np.testing.assert_allclose(episode_scores(reg, X, y, episodes=episodes, probe=AdaptedRegressor(reg)), one_by_one,
                               rtol=1e-6, atol=1e-6)


def test_skorch_checkpoint_saves_the_best_meta_parameters(class_tasks, tmp_path):
    from skorch.callbacks import Checkpoint

    meta = small_classifier(max_epochs=3, n_iter_no_change=10,
                            callbacks=[Checkpoint(dirname=str(tmp_path), monitor="valid_loss_best")])
    meta.fit(class_tasks)
    assert (tmp_path / "params.pt").stat().st_size > 0
    saved = torch.load(tmp_path / "params.pt", weights_only=True)
    best = int(np.argmin(meta.history_[:, "valid_loss"]))
    assert set(saved) == set(meta.net_.module_.state_dict())
    assert meta.history_[best, "event_cp"] is True


def test_fits_in_concurrent_threads_are_reproducible(class_tasks):
    """The initial weights come from a private generator, not torch's global RNG,
    which threads (joblib's threading backend, dask threads) would share."""
    from concurrent.futures import ThreadPoolExecutor

    def build(seed):
        return weights(small_classifier(max_epochs=0, random_state=seed).fit(class_tasks))

    expected = [build(seed) for seed in range(32)]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(build, range(32)))
    assert all(same_weights(a, b) for a, b in zip(expected, got))


# ---------------------------------------------------------- where a newcomer trips
@pytest.mark.parametrize("method", ["predict", "predict_proba"])
def test_a_meta_estimator_says_to_adapt_before_predicting(class_tasks, method):
    meta = small_classifier().fit(class_tasks)
    X, _ = class_tasks[0]
    with pytest.raises(AttributeError, match=rf"predicts only after adapting.*\.adapt\("
                                             rf"X_support, y_support\)\.{method}\(X\)"):
        getattr(meta, method)(X)
    assert not hasattr(meta, method)  # so scikit-learn's duck typing sees no predict
    pipe = make_pipeline(StandardScaler(), small_classifier()).fit(*class_tasks[0])
    with pytest.raises(AttributeError) as raised:
        getattr(pipe, method)(X)
    # scikit-learn's Pipeline raises its own AttributeError from ours: the traceback shows both
    assert "predicts only after adapting" in str(raised.value.__cause__)


def test_a_task_list_takes_no_y(class_tasks):
    with pytest.raises(ValueError, match="fit\\(tasks\\) takes no y"):
        small_classifier().fit(class_tasks, np.zeros(3))


def test_nested_splitter_parameters_work_with_the_default_splitter():
    meta = sklmeta.MAMLClassifier().set_params(task_splitter__k_shot=2)
    assert meta.task_splitter.k_shot == 2
    assert meta.get_params()["task_splitter__k_shot"] == 2


def test_diverged_is_importable_from_the_package():
    assert issubclass(sklmeta.MetaTrainingDiverged, FloatingPointError)
    assert "MetaTrainingDiverged" in sklmeta.__all__


class _FailAt(Callback):
    def __init__(self, where):
        self.where = where

    def on_train_begin(self, net, **kwargs):
        if self.where == "begin":
            raise KeyboardInterrupt  # Ctrl-C before the loop starts

    def on_epoch_end(self, net, **kwargs):
        if self.where == "epoch":
            raise RuntimeError("a callback failed")


@pytest.mark.parametrize("where, error", [("epoch", RuntimeError), ("begin", KeyboardInterrupt)])
def test_a_failed_refit_leaves_the_previous_fit_whole(class_tasks, where, error):
    meta = small_classifier().fit(class_tasks)
    before, history, net = weights(meta), list(meta.history_), meta.net_
    X, y = class_tasks[0]
    adapted = meta.adapt(X[:10], y[:10]).predict_proba(X[10:])
    meta.set_params(callbacks=[_FailAt(where)], max_epochs=3, hidden_layer_sizes=(8,))
    with pytest.raises(error):
        meta.fit(class_tasks[:6])
    assert meta.net_ is net and same_weights(before, weights(meta))
    assert list(meta.history_) == history
    np.testing.assert_array_equal(meta.adapt(X[:10], y[:10]).predict_proba(X[10:]), adapted)


def test_a_failed_first_fit_leaves_the_estimator_unfitted(class_tasks):
    meta = small_classifier(callbacks=[_FailAt("epoch")])
    with pytest.raises(RuntimeError):
        meta.fit(class_tasks)
    X, y = class_tasks[0]
    with pytest.raises(NotFittedError, match="not meta-trained yet"):
        meta.adapt(X[:10], y[:10])


def test_which_inner_loop_ran_is_recorded(class_tasks):
    assert small_classifier(activation="gelu").fit(class_tasks).inner_loop_ == "batched-mlp"
    custom = torch.nn.Sequential(torch.nn.Linear(10, 8), torch.nn.SiLU(), torch.nn.Linear(8, 2))
    assert small_classifier(module=custom).fit(class_tasks).inner_loop_ == "torch.func"


def test_a_regressor_without_uncertainty_says_so_at_return_std(sine_tasks):
    reg = small_regressor().fit(sine_tasks)
    X, y = sine_tasks[0]
    adapted = reg.adapt(X[:5], y[:5])
    assert adapted.predict(X[5:]).shape == (len(y) - 5,)
    with pytest.raises(ValueError, match="MAMLRegressor predicts no standard deviation"):
        adapted.predict(X[5:], return_std=True)


def test_a_task_list_of_dataframes_with_shared_columns_keeps_their_names(class_tasks):
    columns = [f"c{i}" for i in range(class_tasks[0][0].shape[1])]
    frames = [(pd.DataFrame(X, columns=columns), pd.Series(y)) for X, y in class_tasks]
    meta = small_classifier().fit(frames)
    assert meta.feature_names_in_.tolist() == columns
    X, y = frames[0]
    with pytest.raises(ValueError, match="feature names should match"):
        meta.adapt(X[columns[::-1]][:6], y[:6])
    # tasks whose columns differ share no names
    renamed = frames[:1] + [(X.set_axis([f"d{i}" for i in range(len(columns))], axis=1), y)
                            for X, y in frames[1:]]
    assert not hasattr(small_classifier().fit(renamed), "feature_names_in_")


def test_read_only_pandas_input_at_adapt_raises_no_torch_warning(class_tasks):
    meta = small_classifier().fit(class_tasks)
    X, y = class_tasks[0]
    X_ro, y_ro = X[:10].copy(), y[:10].copy()
    X_ro.setflags(write=False)
    y_ro.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns on non-writable numpy arrays
        meta.adapt(pd.DataFrame(X_ro), pd.Series(y_ro)).predict(pd.DataFrame(X_ro))
