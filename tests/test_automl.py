"""AutoMetaClassifier / AutoMetaRegressor: the choice on held-out tasks, and its API."""

import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.datasets import load_digits
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sklmeta
from sklmeta import AutoMetaClassifier, AutoMetaRegressor, TaskSplitter
from sklmeta.automl import default_candidates
from sklmeta.datasets import make_classification_tasks, make_sinusoid_tasks
from sklmeta.estimators import META_ESTIMATORS
from sklmeta.model_selection import compare
from sklmeta.transfer import PerSupport, PooledRegressor

SPLITTER = TaskSplitter(n_way=3, k_shot=5, n_query=5, n_tasks=20, random_state=0)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X, y


def _auto(candidates, **kw):
    return AutoMetaClassifier(candidates, **{"task_splitter": SPLITTER, "n_episodes": 30,
                                             "random_state": 0, **kw})


def _small(cls, splitter, **kw):
    return cls(task_splitter=splitter, hidden_layer_sizes=(16,), max_epochs=2,
               meta_batch_size=4, random_state=0, **kw)


# ------------------------------------------------------------------ the choice
def test_picks_the_best_and_ranks_with_paired_intervals(digits):
    X, y = digits
    auto = _auto({"chance": DummyClassifier(strategy="uniform", random_state=0),
                  "logistic": make_pipeline(StandardScaler(), LogisticRegression()),
                  "1-nn": KNeighborsClassifier(1)}, selection="best").fit(X[y < 8], y[y < 8])
    board = auto.leaderboard_
    assert auto.best_name_ == board.index[0] and auto.best_name_ != "chance"
    assert list(board.index).index("chance") == 2
    assert set(board.columns) >= {"mean", "ci_low", "ci_high", "diff", "diff_ci_low",
                                  "diff_ci_high", "fit_seconds", "adapt_seconds",
                                  "n_episodes", "status"}
    assert (board["status"] == "ok").all() and (board["n_episodes"] == 30).all()
    best = board.loc[auto.best_name_]
    assert best["diff"] == 0 and best["diff_ci_low"] == 0 == best["diff_ci_high"]
    chance = board.loc["chance"]
    assert chance["diff_ci_high"] < 0 and chance["mean"] < 0.5
    # the paired difference is that of the per-episode scores
    d = (auto.scores_["chance"] - auto.scores_[auto.best_name_]).mean()
    assert chance["diff"] == pytest.approx(d)
    assert best["ci_low"] < best["mean"] < best["ci_high"]
    assert auto.best_score_ == best["mean"]


def test_every_candidate_is_scored_on_the_same_episodes(digits):
    # two copies of one deterministic learner: identical per-episode scores, zero difference
    X, y = digits
    auto = _auto([KNeighborsClassifier(1), KNeighborsClassifier(1)]).fit(X, y)
    assert list(auto.scores_.columns) == ["KNeighborsClassifier", "KNeighborsClassifier-2"]
    np.testing.assert_array_equal(auto.scores_.iloc[:, 0], auto.scores_.iloc[:, 1])
    assert auto.leaderboard_["diff"].tolist() == [0.0, 0.0]
    assert auto.best_name_ == "KNeighborsClassifier"  # a tie goes to the first (cheaper) one


def _within_one_se(scores, name, best, clustered=False):
    d = (scores[name] - scores[best]).to_numpy()
    se = d.std(ddof=1) / np.sqrt(len(d))
    if clustered:  # the folds' mean differences, as clusters (CR1), never below se
        by_fold = pd.Series(d, index=scores.index.get_level_values("fold")).groupby(level=0)
        g, w = by_fold.ngroups, by_fold.size().to_numpy() / len(d)
        se = max(se, np.sqrt(g / (g - 1) * np.sum(w ** 2 * (by_fold.mean() - d.mean()) ** 2)))
    return d.mean() >= -se


@pytest.mark.parametrize("selection", ["one_se", "one_se_folds", "best"])
def test_selection_rule_picks_from_the_held_out_scores(digits, selection):
    # 1-NN is listed first and is clearly better than chance; logistic regression and
    # 1-NN are close on digits: the rule, recomputed from scores_, gives the pick
    X, y = digits
    names = ["chance", "1-nn", "logistic", "3-nn"]
    auto = _auto(dict(zip(names, [DummyClassifier(strategy="uniform", random_state=0),
                                  KNeighborsClassifier(1),
                                  make_pipeline(StandardScaler(), LogisticRegression()),
                                  KNeighborsClassifier(3)])),
                 selection=selection).fit(X, y)
    scores, board = auto.scores_, auto.leaderboard_
    top = scores.mean().idxmax()
    if selection == "best":
        assert auto.best_name_ == top
    else:
        clustered = selection == "one_se_folds"
        assert scores.index.get_level_values("fold").nunique() == 3  # 10 digits, 3 a fold
        first = next(n for n in names if _within_one_se(scores, n, top, clustered))
        assert auto.best_name_ == first
        assert not _within_one_se(scores, "chance", top, clustered)
    assert auto.best_score_ == board.loc[auto.best_name_, "mean"]
    assert board.loc[auto.best_name_, "diff"] == 0  # differences are to the pick


def test_one_se_prefers_the_earlier_of_candidates_the_episodes_cannot_tell_apart():
    from sklmeta.automl import _pick

    rng = np.random.RandomState(0)
    base = rng.uniform(0.4, 0.9, size=200)
    noise = rng.normal(0, 0.05, size=200)
    noise -= noise.mean()
    se = noise.std(ddof=1) / np.sqrt(200)  # of the paired difference
    # costly's mean is higher, by a third of one standard error of the difference
    results = [{"name": "cheap", "scores": base},
               {"name": "costly", "scores": base + noise + se / 3}]
    assert _pick(results, "best")["name"] == "costly"
    assert _pick(results, "one_se")["name"] == "cheap"
    # a clear gap (many standard errors): both rules take the better one
    results[1]["scores"] = base + noise + 5 * se
    assert _pick(results, "one_se")["name"] == _pick(results, "best")["name"] == "costly"


def test_one_se_folds_counts_a_folds_episodes_as_one_cluster():
    from sklmeta.automl import _paired_se, _pick

    rng = np.random.RandomState(0)
    base = rng.uniform(0.4, 0.9, size=200)
    noise = rng.normal(0, 0.05, size=200)
    noise -= noise.mean()
    folds = np.repeat([0, 1, 2, 3], 50)
    se = noise.std(ddof=1) / np.sqrt(200)
    # costly leads by 3 episode standard errors overall, but all of it from one fold of four
    shift = np.where(folds == 0, 4 * 3 * se, 0.0)
    d = noise + shift
    assert _paired_se(d) == pytest.approx(d.std(ddof=1) / np.sqrt(200))
    assert _paired_se(d, np.zeros(200)) == _paired_se(d)  # one fold: the episodes' own
    fold_means = np.array([d[folds == f].mean() for f in range(4)])
    cr1 = np.sqrt(4 / 3 * np.sum((50 / 200) ** 2 * (fold_means - d.mean()) ** 2))
    assert _paired_se(d, folds) == pytest.approx(cr1) and cr1 > 1.5 * _paired_se(d)
    results = [{"name": "cheap", "scores": base, "folds": folds},
               {"name": "costly", "scores": base + d, "folds": folds}]
    assert _pick(results, "one_se")["name"] == "costly"
    assert _pick(results, "one_se_folds")["name"] == "cheap"
    # the same lead spread evenly over the folds: the clustered error is no larger
    # than the episodes' own, which it never goes below; both rules take costly
    results[1]["scores"] = base + noise + 3 * se
    assert _paired_se(noise + 3 * se, folds) == _paired_se(noise + 3 * se)
    assert _pick(results, "one_se_folds")["name"] == "costly"


def test_bad_selection_is_a_clear_error(digits):
    X, y = digits
    with pytest.raises(ValueError, match="selection"):
        _auto([KNeighborsClassifier(1)], selection="median").fit(X, y)


class _Spy(PerSupport):
    """Logistic regression on each support set; records the classes of every fit."""

    seen = []

    def fit(self, X, y=None, groups=None):
        type(self).seen.append(sorted(np.unique(y).tolist()))
        return super().fit(X, y, groups)


def test_candidates_never_train_on_the_held_out_classes(digits):
    X, y = digits
    _Spy.seen = []
    auto = _auto({"spy": _Spy(LogisticRegression()),
                  "chance": DummyClassifier(strategy="uniform", random_state=0)},
                 cv=1).fit(X, y)
    split = auto.validation_split_
    assert split["unit"] == "classes" and len(split["held_out"]) == 3  # max(n_way, 0.2 * 10)
    assert "folds" not in split
    trained, refit = _Spy.seen
    assert not set(trained) & set(split["held_out"])
    assert len(trained) == split["n_kept"] == 7
    assert auto.best_name_ == "spy" and refit == list(range(10))  # refit on all the data


def test_few_classes_are_held_out_in_disjoint_folds(digits):
    # 10 classes, 3 held out at a time: "auto" makes 3 disjoint folds; every candidate
    # is meta-trained once a fold, never on that fold's classes, and the held-out
    # episodes are shared out among the folds
    X, y = digits
    _Spy.seen = []
    auto = _auto({"spy": _Spy(LogisticRegression()),
                  "chance": DummyClassifier(strategy="uniform", random_state=0)}).fit(X, y)
    split = auto.validation_split_
    folds = split["folds"]
    assert split["unit"] == "classes" and [len(f) for f in folds] == [3, 3, 3]
    assert sorted(split["held_out"]) == sorted(c for f in folds for c in f)
    assert len(set(split["held_out"])) == 9  # disjoint
    *trained, refit = _Spy.seen
    assert len(trained) == 3 and refit == list(range(10))
    for held, seen in zip(folds, trained):
        assert not set(seen) & set(held) and len(seen) == split["n_kept"] == 7
    assert len(auto.scores_) == 30 and auto.leaderboard_["n_episodes"].tolist() == [30, 30]
    # each episode carries its fold: 30 episodes shared out 10 a fold, in fold order
    assert auto.scores_.index.names == ["fold", "episode"]
    assert auto.scores_.index.get_level_values("fold").tolist() == [0] * 10 + [1] * 10 + [2] * 10
    assert auto.scores_.index.get_level_values("episode").tolist() == list(range(30))
    # the first fold is the single hold-out's: its episodes are the same
    one = _auto({"spy": _Spy(LogisticRegression()),
                 "chance": DummyClassifier(strategy="uniform", random_state=0)},
                cv=1, n_episodes=10).fit(X, y)
    np.testing.assert_array_equal(one.scores_["spy"].to_numpy()[:10],
                                  auto.scores_["spy"].to_numpy()[:10])
    with pytest.raises(ValueError, match="cv=4 disjoint hold-outs"):
        _auto([LogisticRegression()], cv=4).fit(X, y)


def test_many_held_out_tasks_need_one_fold():
    tasks = make_classification_tasks(n_tasks=50, n_samples=20, random_state=0)
    splitter = TaskSplitter(n_way=2, k_shot=3, n_query=3, n_tasks=10, random_state=0)
    auto = AutoMetaClassifier([LogisticRegression()], task_splitter=splitter, n_episodes=10,
                              random_state=0).fit(tasks)
    assert len(auto.validation_split_["held_out"]) == 10 and "folds" not in auto.validation_split_
    few = AutoMetaClassifier([LogisticRegression()], task_splitter=splitter, n_episodes=10,
                             random_state=0).fit(tasks[:20])  # 4 of 20 held out: 5 folds
    assert len(few.validation_split_["folds"]) == 5
    assert sorted(few.validation_split_["held_out"]) == list(range(20))


def test_holds_out_whole_groups_and_whole_tasks():
    tasks = make_classification_tasks(n_tasks=20, n_samples=40, random_state=0)
    splitter = TaskSplitter(n_way=2, k_shot=3, n_query=3, n_tasks=10, random_state=0)
    kw = dict(task_splitter=splitter, n_episodes=10, random_state=0)
    auto = AutoMetaClassifier([LogisticRegression()], **kw).fit(tasks)
    assert auto.validation_split_["unit"] == "tasks"
    assert [len(f) for f in auto.validation_split_["folds"]] == [4] * 5  # 4 of 20 a fold
    assert auto.unit_ == "tasks"
    X, y, groups = sklmeta.stack_tasks(tasks)
    auto = AutoMetaClassifier([LogisticRegression()], **kw).fit(X, y, groups=groups)
    assert auto.validation_split_["unit"] == "groups"
    assert auto.validation_split_["n_kept"] == 16


def test_too_few_classes_hold_out_rows_with_a_warning(digits):
    X, y = digits
    with pytest.warns(UserWarning, match="holds out rows, not classes"):
        auto = _auto([KNeighborsClassifier(1)]).fit(X[y < 4], y[y < 4])
    assert auto.validation_split_["unit"] == "rows"
    with pytest.raises(ValueError, match="cannot hold out data to choose on"):
        _auto([KNeighborsClassifier(1)]).fit(X[:12], y[:12] % 3)


def test_meta_learners_and_transfer_learners_compete(digits):
    X, y = digits
    splitter = TaskSplitter(n_way=3, k_shot=3, n_query=3, n_tasks=16, random_state=0)
    auto = AutoMetaClassifier(
        {"protonet": _small(sklmeta.ProtoNetClassifier, splitter),
         "maml": _small(sklmeta.MAMLClassifier, splitter),
         "embedding": sklmeta.PretrainedEmbeddingClassifier(max_epochs=2, random_state=0),
         "logistic": LogisticRegression()},
        task_splitter=splitter, n_episodes=20, random_state=0).fit(X, y)
    assert (auto.leaderboard_["status"] == "ok").all()
    assert (auto.leaderboard_.loc[["protonet", "maml", "embedding"], "fit_seconds"] > 0).all()
    assert isinstance(auto.best_estimator_,
        {"protonet": sklmeta.ProtoNetClassifier, "maml": sklmeta.MAMLClassifier,
         "embedding": sklmeta.PretrainedEmbeddingClassifier, "logistic": PerSupport}[
            auto.best_name_])


# ---------------------------------------------------------------- the API
def test_adapt_score_compare_and_pipeline(digits):
    X, y = digits
    seen, unseen = y < 6, y >= 6
    auto = _auto([KNeighborsClassifier(1), LogisticRegression(max_iter=300)]).fit(
        X[seen], y[seen])
    Xu, yu = X[unseen], y[unseen]
    s, q = next(SPLITTER.split(Xu, yu))
    clf = auto.adapt(Xu[s], yu[s])
    np.testing.assert_array_equal(clf.predict(Xu[q]),
                                  auto.best_estimator_.adapt(Xu[s], yu[s]).predict(Xu[q]))
    with pytest.raises(AttributeError, match="adapt"):
        auto.predict(Xu)
    score = auto.score(Xu, yu)
    assert score == auto.score(Xu, yu)  # seeded: the same episodes every time
    table = compare({"auto": auto, "winner": auto.best_estimator_}, Xu, yu, cv=SPLITTER)
    assert table.loc["auto", "mean"] == table.loc["winner", "mean"]
    pipe = make_pipeline(StandardScaler(), clone(auto)).fit(X[seen], y[seen])
    assert sklmeta.adapt(pipe, Xu[s], yu[s]).predict(Xu[q]).shape == (len(q),)


def test_grid_search_over_automl(digits):
    X, y = digits
    search = GridSearchCV(_auto([KNeighborsClassifier(1)], n_episodes=10),
                          {"validation_fraction": [0.2, 0.4]}, cv=[(
                              np.flatnonzero(y < 7), np.flatnonzero(y >= 7))])
    search.fit(X, y)
    assert 0 < search.best_score_ <= 1


def test_scoring_is_a_metric_over_episodes(digits):
    X, y = digits
    cands = [make_pipeline(StandardScaler(), LogisticRegression()), KNeighborsClassifier(1)]
    auto = _auto(cands, scoring="neg_log_loss").fit(X, y)
    assert (auto.scores_ < 0).all().all()  # log losses, not accuracies
    assert auto.score(X[y >= 5], y[y >= 5]) < 0
    # "accuracy" is the adapted estimators' own score: the same episodes, the same numbers
    by_name = _auto(cands, scoring="accuracy").fit(X, y)
    pd.testing.assert_frame_equal(by_name.scores_, _auto(cands).fit(X, y).scores_)


def test_regressor_on_sinusoids():
    tasks = make_sinusoid_tasks(n_tasks=40, n_samples=30, random_state=0)
    splitter = TaskSplitter(k_shot=5, n_query=10, n_tasks=16, random_state=0)
    auto = AutoMetaRegressor({"maml": _small(sklmeta.MAMLRegressor, splitter),
                              "ridge": Ridge(), "pooled": PooledRegressor()},
                             task_splitter=splitter, n_episodes=20,
                             scoring="neg_mean_squared_error", random_state=0).fit(tasks)
    assert auto.validation_split_["unit"] == "tasks"
    assert set(auto.leaderboard_.index) == {"maml", "ridge", "pooled"}
    assert auto.adapt(*tasks[0]).predict(tasks[0][0][:3]).shape == (3,)
    assert auto.score(tasks[:5]) < 0


def test_parallel_candidates_give_the_same_leaderboard(digits):
    X, y = digits
    cands = [KNeighborsClassifier(1), LogisticRegression(max_iter=200),
             sklmeta.PretrainedEmbeddingClassifier(max_epochs=1, random_state=0)]
    serial = _auto(cands).fit(X, y)
    with joblib.parallel_backend("threading"):
        parallel = _auto(cands, n_jobs=2).fit(X, y)
    pd.testing.assert_frame_equal(serial.scores_, parallel.scores_)
    assert serial.best_name_ == parallel.best_name_


def test_time_budget_skips_the_later_candidates(digits):
    X, y = digits
    auto = _auto([KNeighborsClassifier(1), LogisticRegression()], time_budget=1e-9).fit(X, y)
    assert auto.leaderboard_.loc["KNeighborsClassifier", "status"] == "ok"
    assert auto.leaderboard_.loc["LogisticRegression", "status"].startswith("skipped")
    assert auto.best_name_ == "KNeighborsClassifier"


def test_verbose_reports_each_candidate(digits, capsys):
    X, y = digits
    _auto([KNeighborsClassifier(1), LogisticRegression()], verbose=1).fit(X, y)
    out = capsys.readouterr().out
    assert "[AutoMeta] KNeighborsClassifier:" in out and "[AutoMeta] LogisticRegression:" in out
    assert "[AutoMeta] chose" in out


class _Broken(ClassifierMixin, BaseEstimator):
    def fit(self, X, y):
        raise RuntimeError("boom")

    def predict(self, X):  # pragma: no cover
        raise RuntimeError("boom")


def test_a_failing_candidate_is_left_out_with_a_warning(digits):
    X, y = digits
    with pytest.warns(UserWarning, match="_Broken: failed: RuntimeError: boom"):
        auto = _auto([_Broken(), KNeighborsClassifier(1)]).fit(X, y)
    assert auto.best_name_ == "KNeighborsClassifier"
    assert auto.leaderboard_.index[-1] == "_Broken"
    assert np.isnan(auto.leaderboard_.loc["_Broken", "mean"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="No candidate could be scored"):
            _auto([_Broken()]).fit(X, y)


def test_bad_candidates_are_clear_errors(digits):
    X, y = digits
    with pytest.raises(ValueError, match="candidates is empty"):
        _auto([]).fit(X, y)
    with pytest.raises(ValueError, match="is not a classifier"):
        _auto([Ridge()]).fit(X, y)
    with pytest.raises(TypeError, match="not an estimator"):
        _auto({"x": 3}).fit(X, y)
    with pytest.raises(ValueError, match="clash with the defaults"):
        _auto({"1-NN": KNeighborsClassifier(1)}, add_defaults=True).fit(X, y)
    with pytest.raises(ValueError, match="scoring"):
        _auto([KNeighborsClassifier(1)], scoring=["accuracy"]).fit(X, y)


# -------------------------------------------------------------- default candidates
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_defaults_are_every_meta_estimator_with_its_defaults(task):
    splitter = TaskSplitter(k_shot=3)
    cands = default_candidates(task, splitter, random_state=7)
    metas = [c for c in META_ESTIMATORS
             if (task == "classification") == (c.__sklearn_tags__(c()).estimator_type
                                              == "classifier")]
    found = [c for c in cands.values() if type(c) in metas]
    assert [type(c) for c in found] == metas
    for est in found:  # only task_splitter and random_state set
        expected = type(est)(task_splitter=splitter, random_state=7).get_params(deep=False)
        assert est.get_params(deep=False) == expected
    # cheap first: the classical learners, then the transfer learners, then meta-learners
    kinds = [type(c).__name__ for c in cands.values()]
    assert kinds[:5] == ["PerSupport"] * 5
    assert kinds.index(type(found[0]).__name__) > max(
        i for i, k in enumerate(kinds) if k in ("PretrainedEmbeddingClassifier",
                                               "PooledRegressor"))


def test_add_defaults_extends_them(digits, monkeypatch):
    import sklmeta.automl as automl

    calls = []
    small = {"1-NN": PerSupport(KNeighborsClassifier(1))}

    def fake(task, splitter, seed):
        calls.append(task)
        return small

    monkeypatch.setattr(automl, "default_candidates", fake)
    X, y = digits
    auto = _auto({"logistic": LogisticRegression()}, add_defaults=True).fit(X, y)
    assert set(auto.leaderboard_.index) == {"1-NN", "logistic"} and calls == ["classification"]


# ------------------------------------------------------------------- save / load
def test_save_and_load_an_automl_whose_winner_is_a_meta_estimator(tmp_path):
    tasks = make_classification_tasks(n_tasks=20, n_samples=40, random_state=0)
    splitter = TaskSplitter(n_way=2, k_shot=3, n_query=3, n_tasks=10, random_state=0)
    auto = AutoMetaClassifier({"protonet": _small(sklmeta.ProtoNetClassifier, splitter)},
                              task_splitter=splitter, n_episodes=10, random_state=0).fit(tasks)
    path = tmp_path / "auto.pt"
    with pytest.warns(UserWarning, match="saves candidates only when"):
        sklmeta.save(auto, path)
    loaded = sklmeta.load(path)
    assert type(loaded) is AutoMetaClassifier and loaded.candidates is None
    assert loaded.get_params()["task_splitter"].get_params() == splitter.get_params()
    pd.testing.assert_frame_equal(loaded.leaderboard_, auto.leaderboard_)
    pd.testing.assert_frame_equal(loaded.scores_, auto.scores_)
    assert loaded.best_name_ == "protonet" and loaded.validation_split_ == auto.validation_split_
    X, y = tasks[0]
    np.testing.assert_array_equal(loaded.adapt(X[:6], y[:6]).predict_proba(X[6:]),
                                  auto.adapt(X[:6], y[:6]).predict_proba(X[6:]))
    assert loaded.score(tasks[:4]) == auto.score(tasks[:4])


def test_save_and_load_an_automl_whose_winner_is_a_classical_learner(tmp_path, digits):
    X, y = digits
    auto = _auto([make_pipeline(StandardScaler(), KNeighborsClassifier(1))]).fit(X, y)
    path = tmp_path / "auto.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn's candidates are saved: no warning
        sklmeta.save(auto, path)
    loaded = sklmeta.load(path)
    assert [type(c[-1]) for c in loaded.candidates] == [KNeighborsClassifier]
    assert type(loaded.best_estimator_) is PerSupport
    inner = loaded.best_estimator_.estimator
    assert type(inner[-1]) is KNeighborsClassifier and inner[-1].n_neighbors == 1
    pd.testing.assert_frame_equal(loaded.leaderboard_, auto.leaderboard_)
    pd.testing.assert_frame_equal(loaded.scores_, auto.scores_)  # 3 folds' labels kept
    assert auto.scores_.index.get_level_values("fold").nunique() == 3
    s, q = next(SPLITTER.split(X, y))
    np.testing.assert_array_equal(loaded.adapt(X[s], y[s]).predict(X[q]),
                                  auto.adapt(X[s], y[s]).predict(X[q]))
    assert loaded.score(X, y) == auto.score(X, y)


def test_a_file_saved_without_fold_labels_loads_as_one_fold(digits):
    # files written before scores_ kept each episode's fold
    from sklmeta import automl, persistence
    from sklmeta._encoding import decode, encode

    X, y = digits
    auto = _auto([KNeighborsClassifier(1)]).fit(X, y)
    payload = automl.to_payload(auto, persistence._winner_payload, encode)
    del payload["score_folds"]
    loaded = automl.from_payload(payload, lambda p: auto.best_estimator_, decode)
    assert loaded.scores_.index.get_level_values("fold").tolist() == [0] * 30
    np.testing.assert_array_equal(loaded.scores_.to_numpy(), auto.scores_.to_numpy())


def test_save_and_load_a_pooled_regressor_with_its_fitted_models(tmp_path):
    tasks = make_sinusoid_tasks(n_tasks=8, random_state=0)
    reg = PooledRegressor(correction="ridge", alpha=0.5).fit(tasks)
    sklmeta.save(reg, tmp_path / "pooled.pt")
    loaded = sklmeta.load(tmp_path / "pooled.pt")
    np.testing.assert_array_equal(loaded.estimator_[-1].coef_, reg.estimator_[-1].coef_)
    X, y = make_sinusoid_tasks(n_tasks=1, random_state=1)[0]
    np.testing.assert_array_equal(loaded.adapt(X[:5], y[:5]).predict(X[5:]),
                                  reg.adapt(X[:5], y[:5]).predict(X[5:]))


class _OwnNeighbours(KNeighborsClassifier):
    """A user's estimator class: code that a file may not name."""


def test_save_refuses_a_winner_of_a_users_class_and_says_to_use_joblib(tmp_path, digits):
    X, y = digits
    auto = _auto([_OwnNeighbours(1)]).fit(X, y)
    with pytest.raises(TypeError, match="joblib"):
        sklmeta.save(auto, tmp_path / "auto.pt")
    assert not (tmp_path / "auto.pt").exists()
    joblib.dump(auto, tmp_path / "auto.joblib")  # trusted files: pickle keeps everything
    assert joblib.load(tmp_path / "auto.joblib").best_name_ == "_OwnNeighbours"


def test_load_builds_only_the_estimators_it_allows(tmp_path):
    from sklmeta._encoding import ESTIMATOR, decode, encode

    stored = encode(KNeighborsClassifier(3), "estimator")
    assert type(decode(stored)) is KNeighborsClassifier and decode(stored).n_neighbors == 3
    for name in ("_OwnNeighbours", "os.system", "PretrainedEmbeddingClassifier"):
        with pytest.raises(TypeError, match="not an estimator sklmeta.load builds"):
            decode({**stored, ESTIMATOR: name})
    with pytest.raises(TypeError, match="attribute named"):
        decode({**stored, "state": {"__class__": 1}})


# ------------------------------------------- the targets, at reduced budgets
def _unseen_scores(auto, train, X, y, groups, splitter):
    """Per-episode scores on unseen tasks of AutoMeta and of every candidate refit on train."""
    ests = {"AutoMeta": auto}
    for name, est in auto.candidates_.items():
        ests[name] = auto.best_estimator_ if name == auto.best_name_ else clone(est).fit(
            *train)
    _, long = compare(ests, X, y, groups=groups, cv=splitter, return_scores=True)
    return {n: g["score"].to_numpy() for n, g in long.groupby("estimator", sort=False)}


def _kinds(auto):
    meta = {cls.__name__.removesuffix("Classifier") for cls in META_ESTIMATORS}
    classical = [n for n, e in auto.candidates_.items() if isinstance(e, PerSupport)]
    return classical, [n for n in auto.candidates_ if n in meta]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_unseen_digits_within_two_points_of_the_best_classical_learner(digits):
    X, y = digits
    seen = y <= 5
    picks = []
    for seed in (0, 1):
        splitter = TaskSplitter(n_way=3, k_shot=5, n_query=15, n_tasks=100, random_state=seed)
        auto = AutoMetaClassifier(task_splitter=splitter, n_episodes=50,
                                  random_state=seed).fit(X[seen], y[seen])
        classical, meta = _kinds(auto)
        picks.append(auto.best_name_)
        if seed == 0:
            test = TaskSplitter(n_way=3, k_shot=5, n_query=15, n_tasks=100, random_state=99)
            per = _unseen_scores(auto, (X[seen], y[seen]), X[~seen], y[~seen], None, test)
            best_classical = max(per[n].mean() for n in classical)
            assert per["AutoMeta"].mean() >= best_classical - 0.02
    # the gap between the classical learners and the meta-learners is large here: the pick
    # is a classical learner for every seed
    assert all(p in classical for p in picks), picks


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_shared_structure_meta_learning_wins_and_the_estimate_holds():
    tasks = make_classification_tasks(n_tasks=310, n_samples=100, n_features=40,
                                      n_informative=4, random_state=0)
    splitter = TaskSplitter(n_way=2, k_shot=5, n_query=15, n_tasks=320, random_state=0)
    auto = AutoMetaClassifier(task_splitter=splitter, n_episodes=100,
                              random_state=0).fit(tasks[:250])
    X, y, groups = sklmeta.stack_tasks(tasks[250:])
    test = TaskSplitter(n_way=2, k_shot=5, n_query=15, n_tasks=100, random_state=99)
    per = _unseen_scores(auto, (tasks[:250],), X, y, groups, test)
    classical, meta = _kinds(auto)
    score = per["AutoMeta"].mean()
    assert score >= max(per[n].mean() for n in meta) - 0.02
    assert all(score >= per[n].mean() + 0.10 for n in classical)
    # the held-out estimate agrees with the score on unseen tasks: the intervals overlap
    # (the estimate is of the best of several, so a little optimistic; the refit on all
    # the tasks, a little better than what was chosen on)
    _, lo, hi = sklmeta.model_selection.mean_ci(per["AutoMeta"])
    pick = auto.leaderboard_.loc[auto.best_name_]
    assert max(lo, pick["ci_low"]) <= min(hi, pick["ci_high"])


def test_a_pipeline_ending_in_a_meta_estimator_is_meta_trained_on_groups():
    tasks = make_classification_tasks(n_tasks=12, n_samples=40, random_state=0)
    X, y, groups = sklmeta.stack_tasks(tasks)
    splitter = TaskSplitter(n_way=2, k_shot=3, n_query=3, n_tasks=8, random_state=0)
    pipe = make_pipeline(StandardScaler(), _small(sklmeta.ProtoNetClassifier, splitter))
    auto = AutoMetaClassifier({"protonet": pipe}, task_splitter=splitter, n_episodes=6,
                              random_state=0).fit(X, y, groups=groups)
    # meta-trained (not wrapped in PerSupport), on groups: its own early stopping
    # held out groups, as it does when fit(X, y, groups=groups) directly
    meta = auto.best_estimator_[-1]
    assert isinstance(meta, sklmeta.ProtoNetClassifier)
    assert meta.validation_split_["unit"] == "groups"
    assert sklmeta.adapt(auto.best_estimator_, X[:6], y[:6]).predict(X[6:9]).shape == (3,)


# ------------------------------------------------- task datasets of different widths
def _tasks_of_widths(widths, seed=0):
    rng = np.random.RandomState(seed)
    tasks = []
    for width in widths:
        X = rng.randn(40, width)
        tasks.append((X, (X[:, 0] + 0.3 * rng.randn(40) > 0).astype(int)))
    return tasks


def test_task_datasets_of_different_widths_are_chosen_among_and_adapted_to():
    tasks = _tasks_of_widths([3, 5, 8] * 4)
    splitter = TaskSplitter(n_way=2, k_shot=3, n_query=5, n_tasks=10, random_state=0)
    candidates = {"logistic": LogisticRegression(), "1-NN": KNeighborsClassifier(1),
                  "protonet": _small(sklmeta.ProtoNetClassifier, splitter),
                  "embedding": sklmeta.transfer.PretrainedEmbeddingClassifier(
                      task_splitter=splitter, random_state=0)}
    auto = AutoMetaClassifier(candidates, task_splitter=splitter, n_episodes=20,
                              random_state=0).fit(tasks)
    assert auto.task_widths_ == [3, 5, 8] and auto.n_features_in_ == 8
    board = auto.leaderboard_
    assert board.loc["embedding", "status"] == "skipped: needs task datasets of one width"
    assert (board.drop("embedding")["status"] == "ok").all()
    assert set(auto.candidates_) == set(candidates)
    X, y = _tasks_of_widths([5], seed=1)[0]
    assert auto.adapt(X[:6], y[:6]).predict(X[6:]).shape == (34,)
    with pytest.raises(ValueError, match="at most 8 features"):
        auto.adapt(np.zeros((6, 9)), y[:6])
    # score on a task list of different widths: each episode at its own task's width
    unseen = _tasks_of_widths([4, 7], seed=2)
    assert 0 <= auto.score(unseen) <= 1
    _WidthRecorder.widths = []
    PerSupport(_WidthRecorder(), task_splitter=splitter).fit(tasks).score(unseen)
    assert set(_WidthRecorder.widths) == {4, 7} and len(_WidthRecorder.widths) == 10



class _WidthRecorder(ClassifierMixin, BaseEstimator):
    """Records the width of every support set it is fit on; predicts its first class."""

    widths = []

    def fit(self, X, y):
        type(self).widths.append(np.shape(X)[1])
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def _fit_with_one_wide_task(n_narrow, at):
    """AutoMeta (logistic regression) on ``n_narrow`` 5-feature task datasets and one
    12-feature one at index ``at``; the fitted AutoMeta and the wide task."""
    tasks = make_classification_tasks(n_tasks=n_narrow, n_samples=30, n_features=5,
                                      random_state=0)
    wide = make_classification_tasks(n_tasks=1, n_samples=30, n_features=12,
                                     random_state=1)[0]
    splitter = TaskSplitter(n_way=2, k_shot=3, n_query=3, n_tasks=10, random_state=0)
    auto = AutoMetaClassifier([LogisticRegression()], task_splitter=splitter, n_episodes=10,
                              random_state=0).fit(tasks[:at] + [wide] + tasks[at:])
    return auto, wide


def test_a_task_wider_than_every_other_is_trained_on_not_held_out():
    # held out, the one 12-feature dataset could not be adapted to by candidates
    # trained on 5-feature ones: every fold keeps it to train on, and says so
    auto, (wide_X, wide_y) = _fit_with_one_wide_task(20, at=7)
    split = auto.validation_split_
    assert auto.leaderboard_.loc["LogisticRegression", "status"] == "ok"
    assert 7 not in split["held_out"] and split["trained_on_too_wide"] == [7]
    assert len(split["folds"]) == 5 and len(split["held_out"]) == 19
    assert auto.adapt(wide_X[:6], wide_y[:6]).predict(wide_X[6:]).shape == (24,)


def test_held_out_episodes_are_scored_at_their_own_tasks_width():
    tasks = _tasks_of_widths([3, 6] * 5)
    splitter = TaskSplitter(n_way=2, k_shot=4, n_query=5, n_tasks=10, random_state=0)
    _WidthRecorder.widths = []
    auto = AutoMetaClassifier({"recorder": _WidthRecorder()}, task_splitter=splitter,
                              n_episodes=20, random_state=0).fit(tasks)
    held = {tasks[i][0].shape[1] for i in auto.validation_split_["held_out"]}
    assert len(_WidthRecorder.widths) == 20 and set(_WidthRecorder.widths) == held


def test_a_fold_left_without_held_out_tasks_gives_its_episodes_to_the_others():
    # five tasks, five folds of one: the fold holding out the one wide task has
    # nothing left to score on, so the other four share all n_episodes
    auto, _ = _fit_with_one_wide_task(4, at=2)
    split = auto.validation_split_
    assert split["trained_on_too_wide"] == [2] and 2 not in split["held_out"]
    assert len(split["folds"]) == 4 and sorted(split["held_out"]) == [0, 1, 3, 4]
    assert auto.leaderboard_.loc["LogisticRegression", "n_episodes"] == 10
