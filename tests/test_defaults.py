"""What a user meets with the defaults: scaling, divergence said aloud, fixed labels."""

import warnings

import numpy as np
import pytest
from conftest import small, small_classifier, small_regressor

import sklmeta
from sklmeta import DivergenceWarning, TaskSplitter


def growth_curves(n_groups=30, n_years=25, seed=0):
    """Groups sharing a rise over raw calendar years, on a target near 60: what a
    life-expectancy table brings (unscaled years 1960-2016, a target far from 0)."""
    rng = np.random.RandomState(seed)
    years = np.linspace(1960, 2016, n_years)
    X, y, groups = [], [], []
    for g in range(n_groups):
        level, slope = rng.uniform(45, 75), rng.uniform(0.1, 0.5)
        X.append(years[:, None])
        y.append(level + slope * (years - 1960) + rng.randn(n_years))
        groups.append(np.full(n_years, g))
    return np.concatenate(X), np.concatenate(y), np.concatenate(groups)


@pytest.mark.parametrize("cls", [sklmeta.MAMLRegressor, sklmeta.ReptileRegressor])
def test_raw_years_and_a_target_near_60_train_without_diverging(cls):
    # Reptile raised MetaTrainingDiverged at its first step; MAML diverged silently
    # (validation loss 2e21, predictions 2e10): neither inputs nor targets were scaled.
    X, y, groups = growth_curves()
    splitter = TaskSplitter(k_shot=5, n_query=5, random_state=0)
    train = groups < 24
    with warnings.catch_warnings():
        warnings.simplefilter("error", DivergenceWarning)
        meta = cls(task_splitter=splitter, max_meta_steps=200, random_state=0).fit(
            X[train], y[train], groups=groups[train])
    assert meta.standardize_ == "global" and abs(meta.y_mean_ - y[train].mean()) < 1e-9
    test = groups == 27
    pred = meta.adapt(X[test][:5], y[test][:5]).predict(X[test][5:])
    assert np.isfinite(pred).all()
    # far better than a constant: the curve's level is adapted and the rise learned
    assert np.mean((pred - y[test][5:]) ** 2) < np.var(y[~train])


def test_a_diverging_meta_validation_is_said_and_the_best_weights_kept(sine_tasks):
    # 60 plain adaptation steps of lr 0.5 blow up on every held-out task (training takes 1)
    meta = small_regressor(inner_lr=0.5, inner_steps=1, adapt_steps=60, max_epochs=3,
                           adapt_backtrack=False)
    with pytest.warns(DivergenceWarning, match=r"random start's meta-validation loss is not "
                                               r"finite.*inner_lr \(now 0.5\)"):
        meta.fit(sine_tasks)


def test_a_backtracking_meta_validation_does_not_diverge_where_plain_sgd_does(sine_tasks):
    meta = small_regressor(inner_lr=0.5, inner_steps=1, adapt_steps=60, max_epochs=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DivergenceWarning)
        meta.fit(sine_tasks)
    losses = meta.history_[:, "valid_loss"]
    assert np.all(np.isfinite(losses)) and np.isfinite(meta.initial_valid_score_)


def test_meta_sgd_rates_stay_bounded(sine_tasks):
    from sklmeta._core.algorithms import RATE_BOUND

    meta = small(sklmeta.MetaSGDRegressor, inner_lr=0.05, inner_steps=1, meta_lr=0.5,
                 max_epochs=5, early_stopping=False).fit(sine_tasks)
    rates = np.concatenate([r.ravel() for r in meta.inner_lrs_.values()])
    assert rates.min() >= 0 and rates.max() <= RATE_BOUND * 0.05
    assert not np.allclose(rates, 0.05)  # they are learned


def shared_rule_groups(n_groups=40, n=60, seed=0):
    """Stores sharing one rule in 10 features: the label is the side of one hyperplane,
    with 20% of the labels flipped. The groups share the rule; a 1-shot support set's
    two rows (one of them mislabelled a third of the time) cannot tell which side is which."""
    rng = np.random.RandomState(seed)
    X = rng.randn(n_groups * n, 10)
    w = rng.randn(10)
    groups = np.repeat(np.arange(n_groups), n)
    y = ((X @ w > 0) ^ (rng.rand(len(X)) < 0.2)).astype(int)
    return X, y, groups


def test_fixed_labels_learn_a_rule_the_groups_share_and_reshuffled_ones_cannot():
    X, y, groups = shared_rule_groups()
    splitter = TaskSplitter(n_way=2, k_shot=1, n_query=10, random_state=0)
    train, test = groups < 30, groups >= 30
    scores = {}
    for mode in ("fixed", "shuffle"):
        meta = sklmeta.MAMLClassifier(task_splitter=splitter, label_mode=mode,
                                      max_meta_steps=300, random_state=0)
        meta.fit(X[train], y[train], groups=groups[train])
        scores[mode] = meta.score(X[test], y[test], groups[test])
    assert sklmeta.MAMLClassifier(task_splitter=splitter).set_params(
        max_meta_steps=1).fit(X[train], y[train], groups=groups[train]).label_mode_ == "fixed"
    # reshuffled labels must be re-oriented from each noisy support set; fixed ones keep
    # the rule (at most 80% can be right with 20% of the labels flipped)
    assert scores["fixed"] > 0.69 and scores["fixed"] > scores["shuffle"] + 0.04, scores


def test_fixed_labels_refuse_a_class_never_seen_and_say_what_to_do():
    X, y, groups = shared_rule_groups()
    meta = small_classifier(label_mode="fixed").fit(X, y, groups=groups)
    with pytest.raises(ValueError, match="not among the classes it was meta-trained on.*"
                                         "label_mode='shuffle'"):
        meta.adapt(X[:6], ["a", "b"] * 3)


def test_fit_leaves_torchs_threads_as_it_found_them(class_tasks):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        small_classifier().fit(class_tasks).adapt(*(a[:10] for a in class_tasks[0]))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
