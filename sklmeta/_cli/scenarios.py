"""The command line's scenarios, as data; ``benchmarks/few_shot_accuracy.py`` runs them too.

A :class:`Scenario` records how to build its data (one or more
:class:`Setting`: meta-training data and the test set scored after it), which
network and inner loop its meta-learners get, which baselines it fits on each
support set, its shot counts and its :class:`Metric`. It holds no conclusion:
the verdicts are computed from the scores (``report.py``).

This module imports neither torch nor skorch (``python -m sklmeta --help``
reads it); the builders import what they need when they run. They use the
public API only: ``sklmeta.MAMLClassifier``..., ``TaskSplitter``,
``stack_tasks``, ``sklmeta.datasets`` and ``sklmeta.baselines``.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from .._registry import REGISTRY

MAML = "MAML (meta-trained)"
RANDOM_START = "MAML random start (max_epochs=0)"
MLP = "MLP from scratch (skorch)"
FINE_TUNED = "pretrained + fine-tuned (10 SGD steps)"
CLASSIFIER_BASELINES = ("RandomForest", "1-NN", "LogisticRegression", MLP)


@dataclass(frozen=True)
class Algorithm:
    """One meta-learning algorithm: its table row and its public sklmeta classes."""

    row: str
    classifier: str | None  # a class name in sklmeta's public API; None: regression only
    regressor: str | None  # None: classification only
    takes_inner: bool  # takes the scenario's inner loop (Reptile and ProtoNet keep their own)


# --algorithms: key -> Algorithm, one per entry of sklmeta's registry
_ROWS = {"maml": MAML, "metasgd": "Meta-SGD", "ridge": "R2-D2 (MetaRidge)",
         "dkt": "DKT (DeepKernelGP)"}  # otherwise the class name without "Classifier"
# keep their own inner-loop defaults (or adapt in closed form, or by a forward pass)
_OWN_INNER = {"reptile", "protonet", "ridge", "dkt", "neuralprocess"}
ALGORITHMS = {
    key: Algorithm(_ROWS.get(key, (classifier or "").removesuffix("Classifier")), classifier,
                   regressor, key not in _OWN_INNER)
    for key, (classifier, regressor) in REGISTRY.items()
}


@dataclass(frozen=True)
class Metric:
    """How one episode is scored, and how its score reads.

    ``scoring`` goes to :func:`sklmeta.model_selection.compare`; the scores are
    always "higher is better". ``negated`` says the scorer is minus the metric
    (scikit-learn's ``neg_mean_squared_error``), which the report flips back for
    display; ``bounds`` is the range of the *score*, which confidence intervals
    are clipped to.
    """

    name: str  # as in "query <name>"
    scoring: str | None
    header: str  # table column, after "k-shot"
    bounds: tuple  # (low, high) of the score
    negated: bool = False
    percent: bool = False  # shown as a percentage, differences in points
    csv: str = ""  # what the CSV's score column holds


ACCURACY = Metric("accuracy", None, "query accuracy", (0.0, 1.0), percent=True, csv="accuracy")
MSE = Metric("MSE", "neg_mean_squared_error", "query MSE (lower is better)", (-math.inf, 0.0),
             negated=True, csv="negated MSE, scikit-learn's neg_mean_squared_error")


@dataclass(frozen=True)
class Setting:
    """Meta-training data and the test data scored after it (one table)."""

    label: str
    title: str
    train: tuple  # the arguments of the meta-learners' fit
    X: object
    y: object
    groups: object = None
    chance: float | None = None  # the score of guessing, drawn as a line
    facts: dict = field(default_factory=dict)  # for the notes


@dataclass(frozen=True)
class Scenario:
    """A scenario as data: what to build, how to meta-train and what to score.

    ``data(opts)`` returns the settings, ``baselines(opts, setting, fit)`` the
    baselines by table row (``fit`` is the interruptible fit, for any baseline
    that is pretrained), ``notes(opts, setting, meta)`` the facts printed under
    the table (``meta`` is the last meta-trained estimator, or None).
    """

    help: str
    metric: Metric
    data: Callable
    baselines: Callable
    notes: Callable
    shots: tuple  # default shot counts
    epochs: int  # default meta-training budget (max_epochs; early stopping may stop sooner)
    n_way: tuple = ()  # allowed n_way, the first the default; () for regression
    max_shots: int = 35
    hidden: tuple = (40, 40)
    params: dict = field(default_factory=dict)  # for every meta-learner
    inner: dict = field(default_factory=dict)  # for the algorithms that take_inner
    train_shots: int = 5  # k_shot of the meta-training episodes
    train_episodes: int = 320  # meta-training episodes per epoch
    n_query: int = 15  # query points per class (per task in regression)
    scaled: bool = False  # a StandardScaler before each meta-learner
    random_start: bool = True  # also score MAML's random start (max_epochs=0)
    curve: tuple = ()  # benchmark extra: refit MAML without early stopping at these epochs

    @property
    def task(self):
        return "classification" if self.n_way else "regression"


# ------------------------------------------------------------------ data builders
def _shared_structure_data(opts):
    import sklmeta
    from sklmeta.datasets import make_classification_tasks

    n_train, n_test = 250, 60
    # One call: the informative columns depend on random_state, and the held-out tasks
    # must share them with the training tasks.
    tasks = make_classification_tasks(n_tasks=n_train + n_test, n_samples=100, n_features=40,
                                      n_informative=4, random_state=opts.seed)
    X, y, groups = sklmeta.stack_tasks(tasks[n_train:])
    return [Setting("shared-structure", f"2-way episodes of {n_test} held-out tasks",
                    (tasks[:n_train],), X, y, groups, chance=0.5, facts={"n_train": n_train})]


def _digits_data(opts):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    seen = y <= 5
    return [Setting("digits", f"{opts.n_way}-way episodes of the unseen digits 6-9",
                    (X[seen], y[seen]), X[~seen], y[~seen], chance=1 / opts.n_way)]


def _cross_dataset_data(opts):
    import numpy as np
    from sklearn.datasets import load_breast_cancer, load_iris, load_wine

    loaders = {"iris": load_iris, "wine": load_wine, "breast_cancer": load_breast_cancer}
    data = {name: load(return_X_y=True) for name, load in loaders.items()}
    width = max(X.shape[1] for X, _ in data.values())
    settings = []
    for test, (X, y) in data.items():
        train = [n for n in data if n != test]
        # sklmeta standardises each task dataset and zero-pads it to the widest, and adapts
        # to at most that width; zero columns make the widest the test dataset's too (a zero
        # column stays zero when standardised, exactly as sklmeta's own padding).
        tasks = [(np.pad(data[n][0], ((0, 0), (0, width - data[n][0].shape[1]))), data[n][1])
                 for n in train]
        settings.append(Setting(
            f"cross-dataset:{test}", f"2-way episodes of {test}, meta-trained on "
            f"{' + '.join(train)}", (tasks,), X, y, chance=0.5,
            facts={"train": train, "width": width}))
    return settings


def _sinusoid_data(opts):
    import sklmeta
    from sklmeta.datasets import make_sinusoid_tasks

    train = make_sinusoid_tasks(n_tasks=1000, n_samples=50, random_state=opts.seed)
    test = make_sinusoid_tasks(n_tasks=100, n_samples=max(50, max(opts.shots) + 10),
                               random_state=opts.seed + 1)
    X, y, groups = sklmeta.stack_tasks(test)
    return [Setting("sinusoid", "episodes of 100 fresh sinusoids", (train,), X, y, groups)]


# ---------------------------------------------------------------------- baselines
def _classifier_baselines(opts, setting, fit):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    from sklmeta.baselines import SkorchMLPClassifier

    forest, nn, logistic, mlp = CLASSIFIER_BASELINES
    return {
        forest: RandomForestClassifier(random_state=opts.seed),
        nn: KNeighborsClassifier(n_neighbors=1),
        logistic: LogisticRegression(),
        # 50 full-batch Adam steps at lr 0.01 fit 2-50 samples; more did not score better.
        mlp: SkorchMLPClassifier(hidden_layer_sizes=(40, 40), lr=0.01, max_epochs=50,
                                 random_state=opts.seed),
    }


def _sinusoid_baselines(opts, setting, fit):
    """The paper's baseline, one network pretrained on all training tasks' pooled data and
    fine-tuned on each support set with as many SGD steps as MAML adapts with, at a step
    size tuned on training-task episodes; and an MLP from scratch."""
    from sklearn.model_selection import GridSearchCV

    import sklmeta
    from sklmeta.baselines import FineTunedRegressor, SkorchMLPRegressor

    X_pool, y_pool, g_pool = sklmeta.stack_tasks(setting.train[0])
    epochs = min(10, max(1, opts.epochs // 4))  # its loss is flat after about 6
    say = print if opts.verbose else (lambda *a, **k: None)
    say(f"\nPretraining the baseline network on the pooled {len(y_pool)} points of the "
        f"training tasks ({epochs} epochs):", flush=True)
    pretrained = fit(SkorchMLPRegressor(hidden_layer_sizes=(40, 40), lr=1e-3, max_epochs=epochs,
                                        batch_size=256, verbose=int(opts.verbose),
                                        random_state=opts.seed), X_pool, y_pool)
    search = GridSearchCV(
        FineTunedRegressor(pretrained.module_, n_steps=10), {"lr": [0.001, 0.003, 0.01]},
        scoring="neg_mean_squared_error", refit=False,
        cv=sklmeta.TaskSplitter(k_shot=10, n_query=10, n_tasks=50, random_state=opts.seed + 3),
    ).fit(X_pool, y_pool, groups=g_pool)
    lr = search.best_params_["lr"]
    say(f"Fine-tuning step size {lr} (best of {search.param_grid['lr']} on 50 episodes of "
        "training tasks).", flush=True)
    return {
        FINE_TUNED: FineTunedRegressor(pretrained.module_, lr=lr, n_steps=10),
        MLP: SkorchMLPRegressor(hidden_layer_sizes=(40, 40), lr=0.01, max_epochs=100,
                                random_state=opts.seed),
    }


# -------------------------------------------------------------------------- notes
def _kept(meta, default):
    """What early stopping left to meta-train on: ``validation_split_``'s n_kept."""
    split = getattr(meta, "validation_split_", None)
    return default if split is None else split["n_kept"]


def _shared_structure_notes(opts, setting, meta):
    return (f"Every task labels points by a hyperplane in the same 4 of 40 features; a "
            f"meta-learner can learn which from {setting.facts['n_train']} training tasks, "
            "while a learner fit on a handful of examples must tell those 4 from the 36 noise "
            "features.")


def _digits_notes(opts, setting, meta):
    return (f"Honest note: digits 0-5 are only 6 meta-training classes ({_kept(meta, 6)} left "
            "to meta-train on after early stopping's hold-out); the baselines see the raw "
            "pixels.")


def _cross_dataset_notes(opts, setting, meta):
    train, width = setting.facts["train"], setting.facts["width"]
    split = getattr(meta, "validation_split_", None)
    kept = ("both" if split is None else
            " and ".join(train[i] for i in range(len(train)) if i not in split["held_out"])
            + " only")
    return (f"sklmeta standardises each support set and zero-pads it to {width} features (at 1 "
            "shot, 2 points: every feature becomes -1 or +1); the baselines see the raw "
            "features. Two task datasets are few tasks to meta-learn from (early stopping "
            f"kept {kept} for meta-training).")


def _sinusoid_notes(opts, setting, meta):
    return ("y = A sin(x - phi), A in [0.1, 5], phi in [0, pi], x in [-5, 5]; query MSE on 10 "
            "points. MAML, its random start, Meta-SGD (from learned rates) and ANIL adapt with 10 "
            "steps of lr 0.01, Reptile with its own 5. Predicting 0 everywhere scores about 4.2 "
            "on average.")


SCENARIOS = {
    "shared-structure": Scenario(
        help="binary tasks sharing 4 informative features of 40 (make_classification_tasks)",
        metric=ACCURACY, data=_shared_structure_data, baselines=_classifier_baselines,
        notes=_shared_structure_notes, shots=(1, 5), epochs=60, n_way=(2,),
        # one inner step: the command line's protocol, within its time budget (the
        # estimators' defaults take five: benchmarks/defaults_sweep.py)
        inner={"inner_steps": 1}),
    "digits": Scenario(
        help="meta-train on digits 0-5 (6 classes), test on 6-9",
        metric=ACCURACY, data=_digits_data, baselines=_classifier_baselines, notes=_digits_notes,
        shots=(1, 5), epochs=40, n_way=(3, 2, 4), max_shots=150, hidden=(64, 64),
        inner={"inner_lr": 0.4, "inner_steps": 1}, train_episodes=160, scaled=True,
        curve=(0, 1, 2, 5, 10, 20, 40)),
    "cross-dataset": Scenario(
        help="meta-train on two of iris, wine, breast_cancer, test on the third (each "
             "rotation)",
        metric=ACCURACY, data=_cross_dataset_data, baselines=_classifier_baselines,
        notes=_cross_dataset_notes, shots=(1, 5), epochs=40, n_way=(2,), max_shots=30,
        params={"standardize": True}, inner={"inner_lr": 0.4, "inner_steps": 1},
        train_episodes=160),
    "sinusoid": Scenario(
        help="the MAML paper's sinusoid regression; MSE, with the pretrained + fine-tuned "
             "baseline",
        metric=MSE, data=_sinusoid_data, baselines=_sinusoid_baselines, notes=_sinusoid_notes,
        shots=(5, 10), epochs=40, max_shots=100,
        params={"meta_batch_size": 16},
        # The paper's protocol (1 inner step when meta-training, 10 when adapting;
        # meta-trained once on 10-shot episodes), with the paper's inner lr of 0.01 on raw
        # targets taken to 0.1 on the scaled ones (their std is about 2.5).
        inner={"inner_lr": 0.1, "inner_steps": 1, "adapt_steps": 10, "meta_lr": 0.01},
        train_shots=10, n_query=10),
}
DEFAULT_SCENARIOS = ("shared-structure", "digits")
