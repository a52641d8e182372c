"""sklmeta.transfer: classical and transfer learners behind the fit / adapt API."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

import sklmeta
from sklmeta import TaskSplitter
from sklmeta.model_selection import adapter, compare, episode_scorer
from sklmeta.transfer import PerSupport, PooledRegressor, PretrainedEmbeddingClassifier


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X, y


def _splitter(**kw):
    return TaskSplitter(**{"n_way": 3, "k_shot": 5, "n_query": 5, "n_tasks": 20,
                           "random_state": 0, **kw})


def _intercept_tasks(n_tasks=20, slope=None, seed=0):
    """Tasks y = 2 x0 + b_task (+ s_task x1 with slope): a shared part, a task's own part."""
    rng = np.random.RandomState(seed)
    tasks = []
    for _ in range(n_tasks):
        X = rng.randn(40, 3)
        y = 2 * X[:, 0] + 5 * rng.randn() + 0.05 * rng.randn(40)
        if slope is not None:
            y = y + slope * rng.randn() * X[:, 1]
        tasks.append((X, y))
    return tasks


# ------------------------------------------------------------------- PerSupport
def test_per_support_adapts_a_fresh_clone(digits):
    X, y = digits
    est = LogisticRegression(max_iter=500)
    learner = PerSupport(est, task_splitter=_splitter()).fit(X[y < 6], y[y < 6])
    assert learner.n_features_in_ == 64 and learner.n_way_ == 3 and learner.unit_ is None
    s, q = next(_splitter().split(X[y >= 6], y[y >= 6]))
    Xu, yu = X[y >= 6], y[y >= 6]
    a, b = learner.adapt(Xu[s], yu[s]), learner.adapt(Xu[s], yu[s])
    assert a is not b and a is not est and not hasattr(est, "coef_")  # the parameter stays unfitted
    direct = LogisticRegression(max_iter=500).fit(Xu[s], yu[s])
    np.testing.assert_array_equal(a.predict(Xu[q]), direct.predict(Xu[q]))


def test_compare_scores_per_support_as_the_plain_estimator(digits):
    # before adapter took __sklmeta_adapter__, compare wrapped anything with adapt in
    # AdaptedClassifier, which needs a meta-trained network: this raised
    X, y = digits
    learner = PerSupport(KNeighborsClassifier(1), task_splitter=_splitter()).fit(X[y < 6],
                                                                                y[y < 6])
    Xu, yu = X[y >= 6], y[y >= 6]
    _, long = compare({"wrapped": learner, "plain": KNeighborsClassifier(1)}, Xu, yu,
                      cv=_splitter(), return_scores=True)
    per = long.pivot(index="episode", columns="estimator", values="score")
    np.testing.assert_array_equal(per["wrapped"], per["plain"])
    # score averages the same episodes (the splitter is seeded)
    expected = cross_val_score(KNeighborsClassifier(1), Xu, yu, cv=_splitter()).mean()
    assert learner.score(Xu, yu) == pytest.approx(expected)
    assert episode_scorer("accuracy")(learner, Xu, yu) == pytest.approx(expected)


def test_per_support_errors(digits):
    X, y = digits
    learner = PerSupport(LogisticRegression())
    with pytest.raises(NotFittedError, match="fit"):
        learner.adapt(X[:10], y[:10])
    learner.fit(X[y < 6], y[y < 6])
    with pytest.raises(ValueError, match="X has 10 features, but PerSupport is expecting 64"):
        learner.adapt(X[:10, :10], y[:10])
    with pytest.raises(AttributeError, match="adapt"):
        learner.predict(X)
    # tasks of different widths: each support set is fit at its own width, up to the widest
    mixed = PerSupport(LogisticRegression()).fit([(X[:20], y[:20]), (X[:20, :5], y[:20])])
    assert mixed.task_widths_ == [5, 64] and mixed.adapt(X[:20, :7], y[:20]).n_features_in_ == 7
    with pytest.raises(ValueError, match="at most 64 features"):
        mixed.adapt(np.hstack([X[:20], X[:20]]), y[:20])
    mixed.fit(X[y < 6], y[y < 6])  # refit on one width: the exact width again
    assert not hasattr(mixed, "task_widths_")
    with pytest.raises(ValueError, match="expecting 64 features"):
        mixed.adapt(X[:20, :7], y[:20])
    with pytest.raises(ValueError, match="different widths"):
        PretrainedEmbeddingClassifier().fit([(X[:20], y[:20]), (X[:20, :5], y[:20])])
    with pytest.raises(ValueError, match="n_way is for classification"):
        PerSupport(Ridge(), task_splitter=TaskSplitter(n_way=2)).fit(X, y.astype(float))
    with pytest.raises(ValueError, match="estimator"):
        PerSupport("not an estimator").fit(X, y)
    with pytest.raises(ValueError, match="only 1 class"):
        PerSupport(LogisticRegression()).fit(X[:5], np.zeros(5))


# ------------------------------------------------------------ pretrained embedding
def test_pretrained_embedding_learns_the_meta_training_classes(digits):
    X, y = digits
    seen = y < 6
    emb = PretrainedEmbeddingClassifier(max_epochs=15, random_state=0).fit(X[seen], y[seen])
    assert emb.n_classes_pretrained_ == 6
    E = emb.embed(X[:50])
    assert E.shape == (50, 64)
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, rtol=1e-6)
    # the embedding separates the classes it was trained on: a 1-NN on it, fit on 5 shots
    # per class, classifies other rows of those classes far above chance (1/6)
    Es, ys = emb.embed(X[seen][:300]), y[seen][:300]
    knn = KNeighborsClassifier(1).fit(Es[:30], ys[:30])
    assert knn.score(Es[30:], ys[30:]) > 0.8


def test_pretrained_embedding_classes_are_task_class_pairs():
    tasks = sklmeta.datasets.make_classification_tasks(n_tasks=7, n_samples=30, random_state=0)
    emb = PretrainedEmbeddingClassifier(max_epochs=1, hidden_layer_sizes=(8,),
                                        random_state=0).fit(tasks)
    # labels 0/1 in every task are 14 different classes
    assert emb.n_classes_pretrained_ == 14 and emb.unit_ == "tasks"
    assert emb.module_[-1].out_features == 14


@pytest.mark.parametrize("head", ["logistic", "centroid"])
def test_pretrained_embedding_adapts_a_head_to_unseen_classes(digits, head):
    X, y = digits
    seen = y < 6
    emb = PretrainedEmbeddingClassifier(max_epochs=15, head=head, task_splitter=_splitter(),
                                        random_state=0).fit(X[seen], y[seen])
    Xu, yu = X[~seen], np.array([f"digit {v}" for v in y[~seen]])  # string labels
    s, q = next(_splitter().split(Xu, yu))
    clf = emb.adapt(Xu[s], yu[s])
    assert set(clf.classes_) == set(yu[s])
    assert set(clf.predict(Xu[q])) <= set(yu[s])
    score = emb.score(Xu, yu)
    assert 1 / 3 + 0.15 < score <= 1  # well above chance on classes it never saw
    # compare treats it as it treats a meta-estimator, any metric
    table = compare({"emb": emb}, Xu, yu, cv=_splitter(), scoring="accuracy")
    assert table.loc["emb", "mean"] == pytest.approx(score)
    if head == "logistic":
        assert episode_scorer("neg_log_loss")(emb, Xu, yu) < 0


def test_pretrained_embedding_is_reproducible_and_leaves_torch_rng_alone(digits):
    import torch

    X, y = digits
    state = torch.get_rng_state()
    a = PretrainedEmbeddingClassifier(max_epochs=2, random_state=3).fit(X[:300], y[:300])
    b = PretrainedEmbeddingClassifier(max_epochs=2, random_state=3).fit(X[:300], y[:300])
    assert torch.equal(state, torch.get_rng_state())
    np.testing.assert_array_equal(a.embed(X[:20]), b.embed(X[:20]))


def test_pretrained_embedding_errors(digits):
    X, y = digits
    with pytest.raises(ValueError, match="at least one layer"):
        PretrainedEmbeddingClassifier(hidden_layer_sizes=()).fit(X, y)
    with pytest.raises(ValueError, match="head"):
        PretrainedEmbeddingClassifier(head="svm").fit(X, y)
    emb = PretrainedEmbeddingClassifier(max_epochs=1, random_state=0).fit(X[:200], y[:200])
    with pytest.raises(ValueError, match="single class"):
        emb.adapt(X[:3], [1, 1, 1])
    with pytest.raises(ValueError, match="NaN"):
        emb.adapt(np.full((4, 64), np.nan), [0, 1, 0, 1])


# ---------------------------------------------------------------- pooled regressor
def test_pooled_regressor_intercept_recovers_a_new_tasks_offset():
    train = _intercept_tasks()
    reg = PooledRegressor().fit(train)
    rng = np.random.RandomState(9)
    X = rng.randn(30, 3)
    y = 2 * X[:, 0] + 11.0  # an offset no training task had
    pooled_error = np.abs(reg.estimator_.predict(X[5:]) - y[5:]).mean()
    corrected = reg.adapt(X[:5], y[:5])
    error = np.abs(corrected.predict(X[5:]) - y[5:]).mean()
    assert pooled_error > 5 and error < 0.3
    # the correction is the support rows' mean residual
    assert corrected.correction_ == pytest.approx(
        (y[:5] - reg.estimator_.predict(X[:5])).mean())


def test_pooled_regressor_ridge_correction_fits_a_tasks_own_slope():
    train = _intercept_tasks(slope=3.0)
    splitter = TaskSplitter(k_shot=10, n_query=10, n_tasks=40, random_state=0)
    test = _intercept_tasks(slope=3.0, seed=1)
    X, y, groups = sklmeta.stack_tasks(test)
    scores = {c: PooledRegressor(correction=c, alpha=0.1, task_splitter=splitter)
              .fit(train).score(X, y, groups) for c in ("intercept", "ridge")}
    assert scores["ridge"] > scores["intercept"] + 0.1
    assert scores["ridge"] > 0.9


def test_pooled_regressor_takes_an_mlp_and_serves_compare():
    from sklmeta.baselines import SkorchMLPRegressor

    train = _intercept_tasks(n_tasks=10)
    splitter = TaskSplitter(k_shot=5, n_query=10, n_tasks=10, random_state=0)
    reg = PooledRegressor(SkorchMLPRegressor(hidden_layer_sizes=(8,), max_epochs=3,
                                             random_state=0), task_splitter=splitter).fit(train)
    X, y, groups = sklmeta.stack_tasks(_intercept_tasks(n_tasks=5, seed=2))
    table = compare({"pooled": reg}, X, y, groups=groups, cv=splitter,
                    scoring="neg_mean_squared_error")
    assert table.loc["pooled", "n_episodes"] == 10
    assert np.isfinite(table.loc["pooled", "mean"])
    assert type(adapter(reg)).__name__ == "AdaptOnFit"
