"""Hostile and odd inputs: each gives a named error, or a sensible documented result.

One test per kind of input, across MAMLClassifier / MAMLRegressor ``fit``,
``adapt``, ``score`` and ``TaskSplitter.split``, on tiny budgets. Cases that
tests/test_estimators.py and tests/test_tasks.py already pin (NaN in a
classifier's fit and adapt, a single class at fit and adapt, n_way above the
number of classes without groups, k_shot=0 of a bare splitter, a group too small
without n_way, a label outside the support set at score) are not repeated here.
"""

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import DataConversionWarning
from sklearn.linear_model import LogisticRegression

from sklmeta import MAMLClassifier, MAMLRegressor, TaskSplitter, stack_tasks
from sklmeta.datasets import make_classification_tasks, make_sinusoid_tasks


def classifier(**params):
    splitter = TaskSplitter(n_way=2, k_shot=3, n_query=3, n_tasks=8, random_state=0)
    defaults = dict(task_splitter=splitter, hidden_layer_sizes=(8,), max_epochs=1,
                    meta_batch_size=4, early_stopping=False, random_state=0)
    return MAMLClassifier(**{**defaults, **params})


def regressor(**params):
    splitter = TaskSplitter(k_shot=5, n_query=5, n_tasks=8, random_state=0)
    defaults = dict(task_splitter=splitter, hidden_layer_sizes=(8,), max_epochs=1,
                    meta_batch_size=4, early_stopping=False, random_state=0)
    return MAMLRegressor(**{**defaults, **params})


@pytest.fixture(scope="module")
def class_data():
    """Six 2-class tasks of 30 rows and 5 features, stacked: ``(X, y, groups)``."""
    return stack_tasks(make_classification_tasks(n_tasks=6, n_samples=30, n_features=5,
                                                 n_informative=2, random_state=0))


@pytest.fixture(scope="module")
def sine_data():
    """Eight sinusoid tasks of 20 points, stacked: ``(X, y, groups)``."""
    return stack_tasks(make_sinusoid_tasks(n_tasks=8, n_samples=20, random_state=0))


@pytest.fixture(scope="module")
def meta_clf(class_data):
    # shuffled labels: these tests adapt to labels the fit never saw
    X, y, groups = class_data
    return classifier(label_mode="shuffle").fit(X, y, groups=groups)


@pytest.fixture(scope="module")
def meta_reg(sine_data):
    X, y, groups = sine_data
    return regressor().fit(X, y, groups=groups)


def with_value(X, value, row=2, col=0):
    X = np.array(X, dtype=np.float64)
    X[row, col] = value
    return X


NON_FINITE = "Input X contains (NaN|infinity)"


# ------------------------------------------------------------------ NaN and inf
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_regressor_rejects_non_finite_X_at_fit_and_adapt(sine_data, meta_reg, bad):
    X, y, groups = sine_data
    with pytest.raises(ValueError, match=NON_FINITE):
        regressor().fit(with_value(X, bad), y, groups=groups)
    tasks = [(with_value(X[:20], bad), y[:20]), (X[20:], y[20:])]
    with pytest.raises(ValueError, match=f"task 0: {NON_FINITE}"):
        regressor().fit(tasks)
    with pytest.raises(ValueError, match=NON_FINITE):
        meta_reg.adapt(with_value(X[:10], bad), y[:10])


# scikit-learn's type_of_target casts the NaN label to int before it rejects it
@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
def test_non_finite_targets_are_rejected(sine_data, meta_reg, class_data):
    X, y, groups = sine_data
    for bad in (np.nan, np.inf):
        y_bad = np.array(y)
        y_bad[3] = bad
        with pytest.raises(ValueError, match="Input y contains (NaN|infinity)"):
            regressor().fit(X, y_bad, groups=groups)
        with pytest.raises(ValueError, match="Input y contains (NaN|infinity)"):
            meta_reg.adapt(X[:10], y_bad[:10])
    # A NaN class label: the classifier and the splitter agree that it is no class.
    Xc, yc, _ = class_data
    y_nan = yc.astype(float)
    y_nan[0] = np.nan
    with pytest.raises(ValueError, match="Input y contains NaN"):
        classifier().fit(Xc, y_nan)
    with pytest.raises(ValueError, match="Input y contains NaN"):
        next(TaskSplitter(n_way=2, k_shot=1, n_query=1).split(Xc, y_nan))


def test_score_and_predict_reject_non_finite_X(class_data, meta_clf, sine_data, meta_reg):
    X, y, groups = class_data
    with pytest.raises(ValueError, match=NON_FINITE):
        meta_clf.score(with_value(X, np.nan), y, groups=groups)
    clf = meta_clf.adapt(X[:6], y[:6])
    with pytest.raises(ValueError, match=NON_FINITE):
        clf.predict(with_value(X[6:12], np.inf))
    with pytest.raises(ValueError, match=NON_FINITE):
        clf.predict_proba(with_value(X[6:12], np.nan))
    Xs, ys, gs = sine_data
    with pytest.raises(ValueError, match=NON_FINITE):
        meta_reg.score(with_value(Xs, -np.inf), ys, groups=gs)
    with pytest.raises(ValueError, match=NON_FINITE):
        meta_reg.adapt(Xs[:10], ys[:10]).predict(with_value(Xs[10:20], np.nan))


def test_split_only_indexes_rows_so_nan_in_X_draws_the_same_episodes(class_data):
    # Like scikit-learn's splitters, TaskSplitter never reads X's values (the
    # estimator that is then fit on an episode rejects them).
    X, y, groups = class_data
    splitter = TaskSplitter(n_way=2, k_shot=2, n_query=2, n_tasks=5, random_state=0)
    clean = list(splitter.split(X, y, groups))
    dirty = list(splitter.split(np.full_like(X, np.nan), y, groups))
    assert all(np.array_equal(a, c) and np.array_equal(b, d)
               for (a, b), (c, d) in zip(clean, dirty))


# ------------------------------------------------------------------------ empty
def test_empty_arrays_at_fit_adapt_and_predict(meta_clf, meta_reg):
    empty = r"Found array with 0 sample\(s\) \(shape=\(0, 5\)\) while a minimum of 1 is required"
    with pytest.raises(ValueError, match=f"{empty} by MAMLClassifier"):
        classifier().fit(np.zeros((0, 5)), np.zeros(0))
    with pytest.raises(ValueError, match=f"task 1: {empty}"):
        classifier().fit([(np.ones((8, 5)), [0, 1] * 4), (np.zeros((0, 5)), [])])
    with pytest.raises(ValueError, match=f"{empty} by AdaptedClassifier"):
        meta_clf.adapt(np.zeros((0, 5)), np.zeros(0))
    with pytest.raises(ValueError, match="0 sample.*by MAMLRegressor"):
        regressor().fit(np.zeros((0, 1)), np.zeros(0))
    with pytest.raises(ValueError, match="0 sample.*by AdaptedRegressor"):
        meta_reg.adapt(np.zeros((0, 1)), np.zeros(0))
    clf = meta_clf.adapt(np.eye(6, 5), [0, 1, 0, 1, 0, 1])
    with pytest.raises(ValueError, match=f"{empty} by AdaptedClassifier"):
        clf.predict(np.zeros((0, 5)))


@pytest.mark.parametrize("params, with_groups, per_class", [
    (dict(n_way=2, k_shot=2, n_query=3), False, " per class"),
    (dict(k_shot=2, n_query=3), False, ""),
    (dict(k_shot=2, n_query=3), True, ""),  # used to be an IndexError
])
def test_empty_data_at_split_is_named(params, with_groups, per_class):
    groups = np.zeros(0) if with_groups else None
    message = rf"split got X with 0 samples; an episode needs k_shot \+ n_query = 2 \+ 3 samples{per_class}\.$"
    with pytest.raises(ValueError, match=message):
        next(TaskSplitter(**params).split(np.zeros((0, 5)), np.zeros(0), groups))


def test_empty_data_at_meta_score_is_named(meta_clf, meta_reg):
    with pytest.raises(ValueError, match="split got X with 0 samples"):
        meta_clf.score(np.zeros((0, 5)), np.zeros(0))
    with pytest.raises(ValueError, match="split got X with 0 samples"):
        meta_reg.score(np.zeros((0, 1)), np.zeros(0))


def test_too_few_rows_without_groups_names_X():
    with pytest.raises(ValueError, match=r"^X has 5 samples, fewer than k_shot \+ n_query = 3 \+ 3 = 6\.$"):
        next(TaskSplitter(k_shot=3, n_query=3).split(np.zeros((5, 1))))


# ----------------------------------------------------------------- single class
def test_a_single_class_at_split_and_score(class_data, meta_clf):
    X, _, _ = class_data
    y = np.array(["only"] * len(X))
    message = r"n_way=2 is larger than the number of classes in y \(1: \['only'\]\)"
    with pytest.raises(ValueError, match=message):
        next(TaskSplitter(n_way=2).split(X, y))
    with pytest.raises(ValueError, match=message):
        meta_clf.score(X, y)


def test_a_task_with_a_single_class_is_named(class_data):
    X, y, _ = class_data
    tasks = [(X[:30], y[:30]), (X[30:60], np.zeros(30, dtype=int)), (X[60:90], y[60:90])]
    message = r"larger than the number of classes of task 1 \(1: \[0\]\)"
    with pytest.warns(UserWarning, match=r"Skipped 1 of 3 tasks too small for an episode.*"
                                         r"task 1\. The first: n_way=2 is " + message):
        classifier().fit(tasks)  # a task that cannot give an episode is skipped...
    with pytest.raises(ValueError, match=r"larger than the number of classes of task 0 "
                                         r"\(1: \[0\]\)"):  # ...unless no task can
        classifier().fit(tasks[1:2])


# ---------------------------------------------------------- labels of mixed types
def test_mixed_type_labels_are_a_named_error(class_data, meta_clf):
    X, y, groups = class_data
    mixed = np.array([1, "a"] * (len(X) // 2), dtype=object)
    message = r"y has labels of mixed types \(int, str\) that cannot be sorted"
    with pytest.raises(ValueError, match=message):
        next(TaskSplitter(n_way=2, k_shot=2, n_query=2).split(X, mixed))
    with pytest.raises(ValueError, match=message):  # was a bare TypeError from numpy
        meta_clf.score(X, mixed)
    with pytest.raises(ValueError, match=r"groups has labels of mixed types \(int, str\)"):
        next(TaskSplitter(k_shot=2, n_query=2).split(X, groups=mixed))
    # fit and adapt name it too (they gave scikit-learn's "Unknown label type: unknown")
    with pytest.raises(ValueError, match=message):
        classifier().fit(X, mixed)
    with pytest.raises(ValueError, match=message):
        meta_clf.adapt(X[:6], mixed[:6])


def test_mixed_labels_in_a_list_become_strings_as_in_scikit_learn(class_data, meta_clf):
    # numpy turns the list [1, "a"] into the strings ["1", "a"]; scikit-learn does the same.
    X, _, _ = class_data
    labels = [1, "a"] * 3
    clf = meta_clf.adapt(X[:6], labels)
    assert clf.classes_.tolist() == ["1", "a"]
    assert clf.classes_.tolist() == LogisticRegression().fit(X[:6], labels).classes_.tolist()
    assert set(clf.predict(X[6:12])) <= {"1", "a"}


def test_labels_of_another_type_than_the_support_set_are_unknown_at_score(class_data, meta_clf):
    X, y, _ = class_data
    clf = meta_clf.adapt(X[:6], np.where(y[:6] == 0, "a", "b"))
    with pytest.raises(ValueError, match=r"labels \[0, 1\] that are not among the support set's classes \['a', 'b'\]"):
        clf.score(X[6:10], [0, 1, 0, 1])


def test_continuous_y_with_n_way_is_a_named_error_with_a_short_message(class_data):
    X, _, _ = class_data
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        next(TaskSplitter(n_way=2, k_shot=1, n_query=1).split(X, np.linspace(0, 1, len(X))))
    # 180 classes of one row each: the message lists ten of them, not all
    with pytest.raises(ValueError, match=r"class 0 has 1, .*class 9 has 1, \.\.\. \(170 more\)\.$"):
        next(TaskSplitter(n_way=2, k_shot=1, n_query=1).split(X, np.arange(len(X))))


# --------------------------------------------------------------- shapes of y
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_a_column_vector_y_warns_and_is_ravelled(kind, class_data, sine_data):
    X, y, groups = class_data if kind == "classifier" else sine_data
    make = classifier if kind == "classifier" else regressor
    flat = make().fit(X, y, groups=groups)
    with pytest.warns(DataConversionWarning, match="A column-vector y was passed"):
        column = make().fit(X, y.reshape(-1, 1), groups=groups)
    for a, b in zip(flat.module_.parameters(), column.module_.parameters()):
        assert torch.equal(a, b)
    with pytest.warns(DataConversionWarning, match="A column-vector y was passed"):
        adapted = flat.adapt(X[:10], y[:10].reshape(-1, 1))
    np.testing.assert_array_equal(adapted.predict(X[10:20]),
                                  flat.adapt(X[:10], y[:10]).predict(X[10:20]))
    with pytest.warns(DataConversionWarning, match="A column-vector y was passed"):
        assert flat.score(X, y.reshape(-1, 1), groups=groups) == flat.score(X, y, groups=groups)


def test_split_ravels_a_column_vector_silently_like_scikit_learn_splitters(class_data):
    X, y, groups = class_data
    splitter = TaskSplitter(n_way=2, k_shot=2, n_query=2, n_tasks=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        column = list(splitter.split(X, y.reshape(-1, 1), groups.reshape(-1, 1)))
    flat = list(splitter.split(X, y, groups))
    assert all(np.array_equal(a, c) and np.array_equal(b, d)
               for (a, b), (c, d) in zip(flat, column))


def test_a_two_column_y_or_groups_is_an_error_naming_it(class_data, meta_clf):
    X, y, groups = class_data
    two = np.c_[y, y]
    with pytest.raises(ValueError, match=r"y should be a 1d array, got an array of shape \(180, 2\)"):
        classifier().fit(X, two)
    with pytest.raises(ValueError, match="y should be a 1d array"):
        meta_clf.adapt(X[:6], two[:6])
    with pytest.raises(ValueError, match="y should be a 1d array"):
        next(TaskSplitter(n_way=2).split(X, two))
    with pytest.raises(ValueError, match=r"groups should be a 1d array, got an array of shape \(180, 2\)"):
        next(TaskSplitter(k_shot=2, n_query=2).split(X, groups=np.c_[groups, groups]))


# ------------------------------------------------------- splitter parameters at fit
@pytest.mark.parametrize("param", ["k_shot", "n_query"])
def test_zero_shots_or_queries_are_named_at_fit(param, class_data, sine_data):
    X, y, groups = class_data
    bad = TaskSplitter(**{"n_way": 2, param: 0})
    with pytest.raises(ValueError, match=f"{param} must be an integer >= 1; got 0"):
        classifier(task_splitter=bad).fit(X, y, groups=groups)
    Xs, ys, gs = sine_data
    with pytest.raises(ValueError, match=f"{param} must be an integer >= 1; got 0"):
        regressor(task_splitter=TaskSplitter(**{param: 0})).fit(Xs, ys, groups=gs)


def test_n_way_above_the_classes_of_a_group_names_the_group():
    X = np.zeros((40, 2))
    y = np.r_[np.tile([0, 1, 2], 7)[:20], np.tile([0, 1], 10)]
    groups = np.repeat(["a", "b"], 20)
    message = r"n_way=3 is larger than the number of classes of group 'b' \(2: \[0, 1\]\)"
    with pytest.warns(UserWarning, match=r"Skipped 1 of 2 groups .*The first: " + message):
        next(TaskSplitter(n_way=3, k_shot=1, n_query=1).split(X, y, groups))
    with pytest.raises(ValueError, match=message):  # when no group is left, an error
        next(TaskSplitter(n_way=3, k_shot=1, n_query=1).split(X[20:], y[20:], groups[20:]))


def test_a_group_too_small_for_k_shot_plus_n_query_is_named():
    X = np.random.RandomState(0).normal(size=(25, 2))
    y = np.tile([0, 1], 13)[:25]
    groups = np.repeat(["a", "b"], [20, 5])
    splitter = TaskSplitter(n_way=2, k_shot=2, n_query=2, n_tasks=4)
    message = (r"Every class of group 'b' needs at least k_shot \+ n_query = 2 \+ 2 = 4 "
               r"samples; class 0 has 3, class 1 has 2\.")
    # real grouped data bring small groups: skipped, counted and named in one warning
    with pytest.warns(UserWarning, match=r"Skipped 1 of 2 groups too small for an episode "
                                         r"\(k_shot \+ n_query = 4 rows for each of n_way=2 "
                                         r"classes\): group 'b'\. The first: " + message):
        next(splitter.split(X, y, groups))
    with pytest.warns(UserWarning, match=message):
        meta = classifier(task_splitter=splitter).fit(X, y, groups=groups)
    assert meta.validation_split_ is None or "b" not in meta.validation_split_["held_out"]
    with pytest.warns(UserWarning, match=r"group 'b' has 5 samples, fewer than k_shot \+ "
                                         r"n_query = 3 \+ 3 = 6"):
        regressor(task_splitter=TaskSplitter(k_shot=3, n_query=3)).fit(X, y, groups=groups)
    with pytest.raises(ValueError, match=message):  # an error only when none is left
        next(splitter.split(X[20:], y[20:], groups[20:]))


# -------------------------------------------------------------------- numerics
@pytest.mark.parametrize("standardize", [True, False])
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_float32_and_float64_give_the_same_adapted_predictions(kind, standardize, class_data,
                                                               sine_data):
    X, y, groups = class_data if kind == "classifier" else sine_data
    make = classifier if kind == "classifier" else regressor
    X32 = X.astype(np.float32)
    m64 = make(standardize=standardize, max_epochs=2).fit(X, y, groups=groups)
    m32 = make(standardize=standardize, max_epochs=2).fit(X32, y, groups=groups)
    np.testing.assert_allclose(m32.history_[:, "train_loss"], m64.history_[:, "train_loss"],
                               rtol=1e-5)
    a64, a32 = m64.adapt(X[:10], y[:10]), m32.adapt(X32[:10], y[:10])
    if kind == "classifier":
        np.testing.assert_allclose(a32.predict_proba(X32[10:30]), a64.predict_proba(X[10:30]),
                                   atol=1e-5)
        np.testing.assert_array_equal(a32.predict(X32[10:30]), a64.predict(X[10:30]))
    else:
        np.testing.assert_allclose(a32.predict(X32[10:30]), a64.predict(X[10:30]), atol=1e-5)


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_huge_X_with_standardize_is_finite_and_equals_the_unscaled_data(kind, class_data,
                                                                        sine_data):
    X, y, groups = class_data if kind == "classifier" else sine_data
    make = classifier if kind == "classifier" else regressor
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow anywhere
        big = make(standardize=True, max_epochs=2).fit(X * 1e6, y, groups=groups)
        small = make(standardize=True, max_epochs=2).fit(X, y, groups=groups)
        losses = big.history_[:, "train_loss"]
        assert np.isfinite(losses).all()
        np.testing.assert_allclose(losses, small.history_[:, "train_loss"], rtol=1e-4)
        out_big = big.adapt(X[:10] * 1e6, y[:10])
        out_small = small.adapt(X[:10], y[:10])
        if kind == "classifier":
            pred = out_big.predict_proba(X[10:30] * 1e6)
            expected = out_small.predict_proba(X[10:30])
        else:
            pred, expected = out_big.predict(X[10:30] * 1e6), out_small.predict(X[10:30])
        assert np.isfinite(pred).all()
        np.testing.assert_allclose(pred, expected, atol=1e-4)
        assert big.score(X * 1e6, y, groups=groups) == pytest.approx(
            small.score(X, y, groups=groups), abs=1e-3)


# --------------------------------------------- errors of the estimators themselves
def test_values_beyond_float32_are_standardised_in_float64_or_named(class_data):
    X, y, groups = class_data
    huge = X * 1e39  # beyond float32 (3.4e38): used to overflow silently into NaN
    for standardize in ("per-task", "global"):  # "global" is the default's choice here
        meta = classifier(standardize=standardize).fit(huge, y, groups=groups)
        assert np.isfinite(meta.history_[:, "train_loss"]).all()
        assert np.isfinite(meta.adapt(huge[:6], y[:6]).predict_proba(huge[6:12])).all()
    with pytest.raises(ValueError, match="beyond float32's range.*standardize='auto'"):
        classifier(standardize=False).fit(huge, y, groups=groups)


def test_score_without_n_way_needs_two_classes(class_data):
    X, y, groups = class_data
    splitter = TaskSplitter(k_shot=3, n_query=3, n_tasks=8, random_state=0)
    meta = classifier(task_splitter=splitter).fit(X, y, groups=groups)
    with pytest.raises(ValueError, match="score draws episodes of at least 2 classes; y has 1"):
        meta.score(X, np.zeros(len(X), dtype=int))


def test_mixed_type_labels_at_adapted_score_and_groups_at_fit(class_data, meta_clf):
    X, y, groups = class_data
    clf = meta_clf.adapt(X[:6], y[:6])
    with pytest.raises(ValueError, match=r"y has labels of mixed types \(int, str\)"):
        clf.score(X[6:10], np.array([0, "a", 1, "b"], dtype=object))
    mixed = np.array([1, "a"] * (len(X) // 2), dtype=object)
    with pytest.raises(ValueError, match=r"groups has labels of mixed types \(int, str\)"):
        classifier().fit(X, y, groups=mixed)
    with pytest.raises(ValueError, match=r"groups should be a 1d array, got an array of shape \(180, 2\)"):
        classifier().fit(X, y, groups=np.c_[groups, groups])


def test_a_regressor_with_string_targets_is_named(sine_data, meta_reg):
    X, y, groups = sine_data
    text = np.array(["a"] * len(y))
    with pytest.raises(ValueError, match="y of a regressor must be numeric"):
        regressor().fit(X, text, groups=groups)
    with pytest.raises(ValueError, match="y of a regressor must be numeric"):
        meta_reg.adapt(X[:5], text[:5])


def test_none_among_string_labels_is_a_named_error_at_fit_and_adapt(class_data, meta_clf):
    X, y, groups = class_data
    labels = np.where(y == 0, "a", "b").astype(object)
    labels[3] = None  # was a bare TypeError from numpy's sort
    message = r"y has labels of mixed types \(NoneType, str\)"
    with pytest.raises(ValueError, match=message):
        classifier().fit(X, labels, groups=groups)
    with pytest.raises(ValueError, match=message):
        meta_clf.adapt(X[:6], labels[:6])
    with pytest.raises(ValueError, match="task 1: " + message):
        classifier().fit([(X[:20], y[:20]), (X[:20], labels[:20])])


def test_a_non_finite_output_is_an_error_that_names_the_rows(class_data, meta_clf):
    X, y, _ = class_data
    clf = meta_clf.adapt(X[:6], y[:6])
    with torch.no_grad():  # adapted parameters that blow up on one feature's values
        clf.params_ = {k: v.clone() for k, v in clf.params_.items()}
        clf.params_["0.weight"][:, 0] = float("inf")
    query = X[6:10].copy()
    for method in (clf.predict_proba, clf.predict):
        with pytest.raises(ValueError, match=r"output is not finite for rows \[[0-9, ]+\] of X"):
            method(query)


def test_reordered_dataframe_columns_are_refused_whatever_the_scaling():
    import pandas as pd

    rng = np.random.RandomState(0)
    df = pd.DataFrame(rng.randn(60, 3), columns=["a", "b", "c"])
    y = np.tile([0, 1], 30)
    for standardize in ("per-task", "global"):
        meta = classifier(standardize=standardize).fit(df, y)
        with pytest.raises(ValueError, match="feature names should match"):
            meta.adapt(df[["c", "b", "a"]][:6], y[:6])
