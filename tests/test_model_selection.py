import numpy as np
import pytest
from conftest import small_classifier, small_regressor
from sklearn.datasets import load_iris
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklmeta import TaskSplitter, stack_tasks
from sklmeta.model_selection import compare, mean_ci


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
