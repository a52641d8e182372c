import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn
from conftest import same_weights, small_classifier, small_regressor, weights
from scipy import stats
from sklearn.base import clone
from sklearn.datasets import load_iris, make_classification
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import FitFailedWarning
from sklearn.metrics import (
    balanced_accuracy_score,
    log_loss,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_val_score, cross_validate
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sklmeta
from sklmeta import TaskSplitter, stack_tasks
from sklmeta.datasets import make_classification_tasks, make_sinusoid_tasks
from sklmeta.model_selection import adapter, compare, episode_scorer, mean_ci, paired_ci

TIMES = ["seconds", "fit_time", "score_time"]


def test_every_estimator_sees_the_same_episodes(class_tasks):
    X, y, groups = stack_tasks(class_tasks)
    cv = TaskSplitter(n_way=2, k_shot=3, n_query=5, n_tasks=15, random_state=0)
    meta = small_classifier().fit(class_tasks)
    table, scores = compare({"maml": meta, "1nn": KNeighborsClassifier(1)}, X, y, cv=cv,
                            groups=groups, return_scores=True)
    assert list(table.index) == ["maml", "1nn"]
    assert {"mean", "ci_low", "ci_high", "std", "n_episodes"} <= set(table.columns)
    knn = scores[scores.estimator == "1nn"].score.to_numpy()
    np.testing.assert_allclose(knn, cross_val_score(KNeighborsClassifier(1), X, y, cv=cv,
                                                    groups=groups))
    maml = scores[scores.estimator == "maml"].score.to_numpy()
    np.testing.assert_allclose(maml, [meta.adapt(X[s], y[s]).score(X[q], y[q])
                                      for s, q in cv.split(X, y, groups)])
    for name in table.index:
        row = table.loc[name]
        assert row.ci_low < row["mean"] < row.ci_high and row.n_episodes == 15


def test_meta_estimator_in_a_pipeline_and_a_scorer(sine_tasks):
    X, y, groups = stack_tasks(sine_tasks)
    reg = small_regressor().fit(sine_tasks)
    pipe = make_pipeline(StandardScaler(), small_regressor()).fit(X, y, mamlregressor__groups=groups)
    cv = TaskSplitter(k_shot=5, n_query=5, n_tasks=6, random_state=0)
    table = compare({"maml": reg, "pipe": pipe, "knn": KNeighborsRegressor(3)}, X, y, cv=cv,
                    groups=groups, scoring="neg_mean_squared_error")
    assert (table["mean"] < 0).all()
    episodes = list(cv.split(X, y, groups))
    expected = -np.mean([np.mean((reg.adapt(X[s], y[s]).predict(X[q]) - y[q]) ** 2)
                         for s, q in episodes])
    assert table.loc["maml", "mean"] == pytest.approx(expected, rel=1e-5)


def test_an_unfitted_meta_estimator_is_refused():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(Exception, match="must be meta-trained"):
        compare({"maml": small_classifier(n_way=3)}, X, y,
                cv=TaskSplitter(n_way=3, k_shot=2, n_query=2, n_tasks=2))
    with pytest.raises(ValueError, match="at least one estimator"):
        compare({}, X, y, cv=TaskSplitter(n_way=3))


def test_mean_ci_is_a_student_t_interval():
    m, lo, hi = mean_ci([1.0, 2.0, 3.0])
    # t(0.975, 2) = 4.303, sem = 1 / sqrt(3)
    assert m == 2.0 and hi - m == pytest.approx(4.3027 / np.sqrt(3), rel=1e-4)
    assert np.isnan(mean_ci([1.0])[1])


# ------------------------------------------------------------------------------
# Shared fitted estimators (tiny budgets), built once for the tests below.
@pytest.fixture(scope="module")
def clf_data():
    tasks = make_classification_tasks(n_tasks=12, n_samples=40, n_features=10, n_informative=2,
                                      random_state=0)
    return tasks, *stack_tasks(tasks)


@pytest.fixture(scope="module")
def fitted_clf(clf_data):
    return small_classifier().fit(clf_data[0])


@pytest.fixture(scope="module")
def reg_data():
    tasks = make_sinusoid_tasks(n_tasks=40, n_samples=30, random_state=0)
    return tasks, *stack_tasks(tasks)


@pytest.fixture(scope="module")
def fitted_reg(reg_data):
    return small_regressor().fit(reg_data[0])


def _hand_loop(estimator, X, y, groups, metric, splitter):
    """The mean over ``splitter``'s episodes of ``metric(adapted, X_query, y_query)``."""
    out = []
    for s, q in splitter.split(X, y, groups):
        adapted = sklmeta.adapt(estimator, X[s], y[s])
        out.append(metric(adapted, X[q], y[q]))
    return np.mean(out)


# ------------------------------------------------------------------ 1. routing
def test_task_splitter_takes_groups_through_metadata_routing(clf_data, fitted_clf):
    _, X, y, groups = clf_data
    cv = TaskSplitter(n_way=2, k_shot=3, n_query=5, n_tasks=8, random_state=0)
    off = cross_val_score(KNeighborsClassifier(1), X, y, cv=cv, groups=groups)
    pooled = cross_val_score(KNeighborsClassifier(1), X, y, cv=cv)
    assert not np.allclose(off, pooled)  # groups change the episodes
    adapted_off = cross_validate(adapter(fitted_clf), X, y, cv=cv, groups=groups)["test_score"]
    table_off = compare({"maml": fitted_clf, "1nn": KNeighborsClassifier(1)}, X, y, cv=cv,
                        groups=groups)
    with sklearn.config_context(enable_metadata_routing=True):
        on = cross_val_score(KNeighborsClassifier(1), X, y, cv=cv, params={"groups": groups})
        adapted_on = cross_validate(adapter(fitted_clf), X, y, cv=cv,
                                    params={"groups": groups})["test_score"]
        table_on = compare({"maml": fitted_clf, "1nn": KNeighborsClassifier(1)}, X, y, cv=cv,
                           groups=groups)
    np.testing.assert_array_equal(on, off)
    np.testing.assert_array_equal(adapted_on, adapted_off)
    pd.testing.assert_frame_equal(table_on.drop(columns=TIMES), table_off.drop(columns=TIMES))


def _fold_scores(meta, X, y, groups, cv, route):
    """Each fold's score as GridSearchCV computes it, by hand: fit and score with the
    fold's groups when they are routed, without them otherwise."""
    out = []
    for train, test in cv.split(X, y, groups):
        fold = clone(meta)
        if route:
            fold.fit(X[train], y[train], groups=groups[train])
            out.append(fold.score(X[test], y[test], groups=groups[test]))
        else:
            fold.fit(X[train], y[train])
            out.append(fold.score(X[test], y[test]))
    return out


def test_grid_search_with_group_k_fold_routes_groups_to_fit_and_score(clf_data):
    _, X, y, groups = clf_data
    meta, cv = small_classifier(max_epochs=1, early_stopping=False), GroupKFold(3)
    keys = [f"split{i}_test_score" for i in range(3)]
    off = GridSearchCV(meta, {"inner_lr": [0.4]}, cv=cv).fit(X, y, groups=groups)
    np.testing.assert_allclose([off.cv_results_[k][0] for k in keys],
                               _fold_scores(meta, X, y, groups, cv, route=False))
    with sklearn.config_context(enable_metadata_routing=True):
        on = GridSearchCV(meta, {"inner_lr": [0.4]}, cv=cv).fit(X, y, groups=groups)
    # the groups reached every fold's fit and score, and the refit
    np.testing.assert_allclose([on.cv_results_[k][0] for k in keys],
                               _fold_scores(meta, X, y, groups, cv, route=True))
    assert same_weights(weights(on.best_estimator_),
                        weights(clone(meta).fit(X, y, groups=groups)))
    assert not same_weights(weights(on.best_estimator_), weights(off.best_estimator_))


def test_grid_search_by_class_with_routing_opts_out_of_groups():
    # The README's "validate on unseen classes": GroupKFold(3) with groups=y. There the
    # groups only split the folds; with routing on, the estimator says it does not take them.
    X, y = make_classification(n_samples=240, n_features=8, n_informative=6, n_classes=6,
                               n_clusters_per_class=1, random_state=0)
    meta = small_classifier(max_epochs=1, early_stopping=False)
    grid, cv = {"inner_lr": [0.4]}, GroupKFold(3)
    off = GridSearchCV(meta, grid, cv=cv, refit=False).fit(X, y, groups=y)
    with sklearn.config_context(enable_metadata_routing=True):
        with pytest.raises(ValueError, match="larger than the number of classes of group"):
            GridSearchCV(meta, grid, cv=cv, refit=False, error_score="raise").fit(
                X, y, groups=y)
        opted_out = clone(meta).set_fit_request(groups=False).set_score_request(groups=False)
        on = GridSearchCV(opted_out, grid, cv=cv, refit=False).fit(X, y, groups=y)
        with pytest.raises(ValueError, match="larger than the number of classes of group"):
            GridSearchCV(opted_out, grid, cv=cv, refit=False, error_score="raise",
                         scoring=episode_scorer("balanced_accuracy")).fit(X, y, groups=y)
        scorer = episode_scorer("balanced_accuracy").set_score_request(groups=False)
        on_scorer = GridSearchCV(opted_out, grid, cv=cv, refit=False, scoring=scorer).fit(
            X, y, groups=y)
    np.testing.assert_array_equal(on.cv_results_["mean_test_score"],
                                  off.cv_results_["mean_test_score"])
    assert np.isfinite(off.cv_results_["mean_test_score"]).all()
    off_scorer = GridSearchCV(meta, grid, cv=cv, refit=False,
                              scoring=episode_scorer("balanced_accuracy")).fit(X, y, groups=y)
    np.testing.assert_array_equal(on_scorer.cv_results_["mean_test_score"],
                                  off_scorer.cv_results_["mean_test_score"])


# ------------------------------------------------------------ 2. episode_scorer
CLASSIFIER_METRICS = {
    "roc_auc": lambda a, X, y: roc_auc_score(y, a.predict_proba(X)[:, 1]),
    "neg_log_loss": lambda a, X, y: -log_loss(y, a.predict_proba(X), labels=a.classes_),
    "balanced_accuracy": lambda a, X, y: balanced_accuracy_score(y, a.predict(X)),
}
REGRESSOR_METRICS = {
    "neg_mean_squared_error": lambda a, X, y: -mean_squared_error(y, a.predict(X)),
    "r2": lambda a, X, y: r2_score(y, a.predict(X)),
}


@pytest.mark.parametrize("name", CLASSIFIER_METRICS)
def test_episode_scorer_is_the_metric_over_the_classifiers_episodes(name, clf_data, fitted_clf):
    _, X, y, groups = clf_data
    expected = _hand_loop(fitted_clf, X, y, groups, CLASSIFIER_METRICS[name],
                          fitted_clf.task_splitter)
    got = episode_scorer(name)(fitted_clf, X, y, groups=groups)
    assert got == pytest.approx(expected, abs=1e-12)
    # groups pass through: without them the episodes (and the score) are others
    pooled = _hand_loop(fitted_clf, X, y, None, CLASSIFIER_METRICS[name],
                        fitted_clf.task_splitter)
    assert episode_scorer(name)(fitted_clf, X, y) == pytest.approx(pooled, abs=1e-12)


@pytest.mark.parametrize("name", REGRESSOR_METRICS)
def test_episode_scorer_is_the_metric_over_the_regressors_episodes(name, reg_data, fitted_reg):
    _, X, y, groups = reg_data
    expected = _hand_loop(fitted_reg, X, y, groups, REGRESSOR_METRICS[name],
                          fitted_reg.task_splitter)
    assert episode_scorer(name)(fitted_reg, X, y, groups) == pytest.approx(expected, abs=1e-12)
    # a Pipeline ending in a meta-estimator: adapted through sklmeta.adapt
    pipe = make_pipeline(StandardScaler(), small_regressor()).fit(
        X, y, mamlregressor__groups=groups)
    expected = _hand_loop(pipe, X, y, groups, REGRESSOR_METRICS[name], pipe[-1].task_splitter)
    assert episode_scorer(name)(pipe, X, y, groups) == pytest.approx(expected, abs=1e-12)


def test_episode_scorer_draws_episodes_as_score_does(clf_data):
    # An unseeded task_splitter takes the estimator's random_state, as in score.
    tasks, X, y, groups = clf_data
    meta = small_classifier(random_state=3)
    meta.task_splitter.set_params(random_state=None)
    meta.fit(tasks)
    seeded = clone(meta.task_splitter).set_params(random_state=3)
    metric = CLASSIFIER_METRICS["balanced_accuracy"]
    assert episode_scorer("balanced_accuracy")(meta, X, y, groups) == pytest.approx(
        _hand_loop(meta, X, y, groups, metric, seeded), abs=1e-12)
    accuracy = _hand_loop(meta, X, y, groups, lambda a, X, y: a.score(X, y), seeded)
    assert episode_scorer()(meta, X, y, groups) == pytest.approx(accuracy, abs=1e-12)


def test_roc_auc_on_multiclass_episodes_needs_ovr():
    X, y = load_iris(return_X_y=True)
    meta = small_classifier(n_way=3, max_epochs=1, early_stopping=False).fit(X, y)
    with pytest.raises(ValueError, match="multi_class"):
        episode_scorer("roc_auc")(meta, X, y)
    expected = _hand_loop(meta, X, y, None, lambda a, X, y: roc_auc_score(
        y, a.predict_proba(X), multi_class="ovr", labels=a.classes_), meta.task_splitter)
    assert episode_scorer("roc_auc_ovr")(meta, X, y) == pytest.approx(expected, abs=1e-12)


def test_episode_scorer_refuses_bad_metrics_and_unknown_query_labels(clf_data, fitted_clf):
    _, X, y, _ = clf_data
    with pytest.raises(ValueError, match="not a valid scoring value"):
        episode_scorer("roc_aucc")
    with pytest.raises(TypeError, match="one metric"):
        episode_scorer(["roc_auc", "r2"])
    with pytest.raises(ValueError, match="must be meta-trained"):
        episode_scorer("roc_auc")(small_classifier(), X, y)
    # compare's episodes are the caller's: a query label the support set lacks is an error
    X3, y3 = X[:30], np.r_[np.zeros(10), np.ones(10), np.full(10, 2)]
    support, query = np.r_[0:3, 10:13], np.r_[3:6, 13:16, 20:23]
    with pytest.raises(ValueError, match="not among the support set's classes"):
        compare({"maml": fitted_clf}, X3, y3, cv=[(support, query)],
                scoring="balanced_accuracy")


def test_grid_search_with_episode_scorer_gives_finite_scores(clf_data):
    _, X, y, groups = clf_data
    meta, cv = small_classifier(max_epochs=1, early_stopping=False), GroupKFold(2)
    with pytest.warns(UserWarning):
        plain = GridSearchCV(meta, {"inner_lr": [0.4]}, cv=cv, scoring="roc_auc",
                             refit=False).fit(X, y, groups=groups)
    assert np.isnan(plain.cv_results_["mean_test_score"]).all()  # what scoring="roc_auc" gives
    search = GridSearchCV(meta, {"inner_lr": [0.1, 0.4]}, cv=cv, refit=False,
                          scoring=episode_scorer("roc_auc")).fit(X, y, groups=groups)
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all() and ((0 <= scores) & (scores <= 1)).all()
    train, test = next(cv.split(X, y, groups))
    fold = clone(meta).set_params(inner_lr=0.1).fit(X[train], y[train])
    assert search.cv_results_["split0_test_score"][0] == pytest.approx(
        episode_scorer("roc_auc")(fold, X[test], y[test]), abs=1e-12)


def test_cross_validate_with_two_episode_scorers(clf_data):
    _, X, y, groups = clf_data
    meta, cv = small_classifier(max_epochs=1, early_stopping=False), GroupKFold(2)
    scoring = {"auc": episode_scorer("roc_auc"), "bacc": episode_scorer("balanced_accuracy")}
    off = cross_validate(meta, X, y, cv=cv, groups=groups, scoring=scoring,
                         return_estimator=True, return_indices=True)
    with sklearn.config_context(enable_metadata_routing=True):
        on = cross_validate(meta, X, y, cv=cv, params={"groups": groups}, scoring=scoring,
                            return_estimator=True, return_indices=True)
    for i, test in enumerate(off["indices"]["test"]):
        for name, scorer in scoring.items():
            assert np.isfinite(off[f"test_{name}"][i])
            assert off[f"test_{name}"][i] == pytest.approx(
                scorer(off["estimator"][i], X[test], y[test]), abs=1e-12)
            # with routing on, the fold's groups reached fit and both scorers
            assert on[f"test_{name}"][i] == pytest.approx(
                scorer(on["estimator"][i], X[test], y[test], groups=groups[test]), abs=1e-12)
        assert same_weights(weights(on["estimator"][i]), weights(clone(meta).fit(
            X[on["indices"]["train"][i]], y[on["indices"]["train"][i]],
            groups=groups[on["indices"]["train"][i]])))


# ------------------------------------------- 10. scipy's intervals, cross_validate
def test_the_intervals_are_scipys():
    rng = np.random.RandomState(0)
    a, b = rng.uniform(size=30), rng.uniform(size=30)
    m, lo, hi = mean_ci(a, confidence=0.9)
    assert (lo, hi) == pytest.approx(stats.t.interval(0.9, 29, loc=a.mean(),
                                                      scale=stats.sem(a)), abs=1e-12)
    m, lo, hi = paired_ci(a, b)
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert m == pytest.approx(np.mean(a - b), abs=1e-12)
    assert (lo, hi) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert (m, lo, hi) == pytest.approx(mean_ci(a - b), abs=1e-12)
    assert mean_ci([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)  # scipy's NaN for a zero scale
    assert paired_ci([1.0, 2.0], [0.5, 1.5]) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="at least one score"):
        mean_ci([])
    with pytest.raises(ValueError, match="same episodes"):
        paired_ci([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1.0, 2.0], confidence=95)


def test_compare_runs_through_cross_validate(clf_data, fitted_clf):
    _, X, y, groups = clf_data
    cv = TaskSplitter(n_way=2, k_shot=3, n_query=5, n_tasks=8, random_state=0)
    estimators = {"maml": fitted_clf, "1nn": KNeighborsClassifier(1)}
    metrics = ["roc_auc", "balanced_accuracy"]
    table, scores = compare(estimators, X, y, cv=cv, groups=groups, scoring=metrics,
                            return_scores=True)
    for m in metrics:
        assert {f"mean_{m}", f"ci_low_{m}", f"ci_high_{m}", f"std_{m}"} <= set(table.columns)
    assert (table[["fit_time", "score_time"]] > 0).all().all()
    assert (table.n_episodes == 8).all()
    episodes = list(cv.split(X, y, groups))
    auc = [roc_auc_score(y[q], fitted_clf.adapt(X[s], y[s]).predict_proba(X[q])[:, 1])
           for s, q in episodes]
    maml = scores[scores.estimator == "maml"]
    np.testing.assert_allclose(maml["score_roc_auc"], auc, rtol=0, atol=1e-12)
    assert table.loc["maml", "mean_roc_auc"] == pytest.approx(np.mean(auc), abs=1e-12)
    # an episode scorer is the metric itself on an adapted or fitted estimator
    single = compare(estimators, X, y, cv=cv, groups=groups, scoring=episode_scorer("roc_auc"))
    np.testing.assert_allclose(single["mean"], table["mean_roc_auc"], rtol=0, atol=1e-12)
    # in parallel threads: the same numbers (processes: the slow test below)
    with joblib.parallel_config(backend="threading"):
        parallel = compare(estimators, X, y, cv=cv, groups=groups, scoring=metrics, n_jobs=2)
    pd.testing.assert_frame_equal(parallel.drop(columns=TIMES), table.drop(columns=TIMES))


@pytest.mark.slow  # starting two worker processes that import torch: ~20 s on a busy 2-core box
def test_compare_in_worker_processes_gives_the_same_numbers(clf_data, fitted_clf):
    _, X, y, groups = clf_data
    cv = TaskSplitter(n_way=2, k_shot=3, n_query=5, n_tasks=8, random_state=0)
    estimators = {"maml": fitted_clf, "1nn": KNeighborsClassifier(1)}
    one = compare(estimators, X, y, cv=cv, groups=groups, scoring="neg_log_loss")
    two = compare(estimators, X, y, cv=cv, groups=groups, scoring="neg_log_loss", n_jobs=2)
    pd.testing.assert_frame_equal(two.drop(columns=TIMES), one.drop(columns=TIMES))


def test_compare_adapts_a_pipeline_without_refitting_its_transformers(reg_data):
    _, X, y, groups = reg_data
    pipe = make_pipeline(StandardScaler(), small_regressor()).fit(
        X, y, mamlregressor__groups=groups)
    cv = TaskSplitter(k_shot=5, n_query=5, n_tasks=6, random_state=0)
    table, scores = compare({"pipe": pipe}, X, y, cv=cv, groups=groups, return_scores=True)
    expected = [sklmeta.adapt(pipe, X[s], y[s]).score(X[q], y[q])
                for s, q in cv.split(X, y, groups)]
    np.testing.assert_allclose(scores["score"], expected, rtol=0, atol=1e-12)
    wrapped = adapter(pipe)
    assert wrapped[0].estimator is pipe[0] and wrapped[-1].meta_estimator is pipe[-1]


def test_compare_error_score():
    X, y = load_iris(return_X_y=True)
    cv = TaskSplitter(n_way=2, k_shot=3, n_query=5, n_tasks=6, random_state=1)
    has_2 = np.array([2 in y[s] for s, _ in cv.split(X, y)])
    assert has_2.any() and not has_2.all()
    # fails on the support sets without class 2: an error by default, NaN when asked
    broken = DummyClassifier(strategy="constant", constant=2)
    with pytest.raises(ValueError, match="constant"):
        compare({"broken": broken}, X, y, cv=cv)
    with pytest.warns(FitFailedWarning, match=f"{(~has_2).sum()} fits failed out of a total of 6"):
        table, scores = compare({"broken": broken, "1nn": KNeighborsClassifier(1)}, X, y,
                                cv=cv, error_score=np.nan, return_scores=True)
    assert np.isnan(table.loc["broken", "mean"]) and np.isfinite(table.loc["1nn", "mean"])
    broken_scores = scores[scores.estimator == "broken"].score.to_numpy()
    np.testing.assert_array_equal(np.isnan(broken_scores), ~has_2)
