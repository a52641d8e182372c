"""scikit-learn's common estimator checks for the meta-estimators.

``parametrize_with_checks`` runs every check of ``sklearn.utils.estimator_checks``
on every public meta-estimator: MAML, Meta-SGD, ANIL, Reptile, R2-D2 and the
neural processes (classifier and regressor each), ProtoNet (classifier) and Deep
Kernel Transfer (regressor), and on the adapted estimators
(``AdaptedClassifier`` / ``AdaptedRegressor``, whose ``fit`` is ``adapt``).

The meta-learning contract departs from a plain estimator's in one place the
checks notice: ``fit`` meta-trains an initialisation, and a meta-estimator
predicts only through ``adapt(X_support, y_support)``, which returns a new
``AdaptedClassifier`` / ``AdaptedRegressor``. A meta-estimator has no
``predict`` (and a meta-classifier no ``classes_``: episode labels are re-mapped
to ``0..n_way-1``), so every check that calls ``predict`` is expected to fail.
Everything else -- cloning, parameters, input validation, pickling, dtypes,
sparse input errors, idempotent fit, ``score`` (the mean few-shot score) --
must pass.
One more check fails by design: ``check_do_not_raise_errors_in_init_or_set_params``
passes the name of ``**kwargs`` (skorch's prefixed parameters, ``optimizer__*``
and ``compile__*``) as if it were a parameter; ``tests/test_skorch_params.py``
runs that check over every named parameter instead.

Every expected failure is listed in :data:`EXPECTED_FAILED_CHECKS` (meta-estimators)
or :data:`EXPECTED_FAILED_ADAPTED` (adapted estimators), with its
reason. The xfail marks are strict: an entry whose check starts passing fails
the run, so the list only ever holds what still fails. The skips (one per
estimator) are scikit-learn's own ``check_array_api_input``, which runs only when the
``SCIPY_ARRAY_API`` environment variable is set; sklmeta does not claim array-API
support (its arrays go to torch).
"""

import numpy as np
import pytest
from sklearn.base import is_classifier
from sklearn.utils.estimator_checks import parametrize_with_checks

import sklmeta
from sklmeta import TaskSplitter
from sklmeta._base import MetaEstimatorBase
from sklmeta.estimators import META_ESTIMATORS

_NO_PREDICT = "a meta-estimator predicts only after adapt(); it has no predict"
_KWARGS = (
    "**kwargs takes skorch's prefixed parameters (optimizer__*, compile__*), as skorch's "
    "NeuralNet does; the check passes the name 'kwargs' itself as a keyword, which __init__ "
    "refuses (TypeError) and set_params too (ValueError). "
    "tests/test_skorch_params.py runs the same check over every named parameter"
)

# The only place expected failures are listed: estimator kind -> {check name: reason}.
# They are the same for every algorithm: they come from the meta-learning contract.
EXPECTED_FAILED_CHECKS = {
    "classifier": {
        # -- the meta-learning contract
        "check_classifiers_train": (
            "a meta-classifier has no classes_ (episode labels are re-mapped to "
            "0..n_way-1; an adapted classifier takes classes_ from its support set) "
            f"and {_NO_PREDICT}"
        ),
        "check_classifiers_classes": f"{_NO_PREDICT}, which the check compares with y",
        "check_classifier_data_not_an_array": (
            f"{_NO_PREDICT}, which the check compares between list/DataFrame and array input"
        ),
        "check_supervised_y_2d": (
            f"{_NO_PREDICT}; the check calls it right after the first (1-d y) fit"
        ),
    },
    "regressor": {
        # -- the meta-learning contract
        "check_regressors_train": _NO_PREDICT,
        "check_regressors_int": f"{_NO_PREDICT}, which the check compares for int and float y",
        "check_regressor_data_not_an_array": (
            f"{_NO_PREDICT}, which the check compares between list/DataFrame and array input"
        ),
        "check_supervised_y_2d": (
            f"{_NO_PREDICT}; the check calls it right after the first (1-d y) fit"
        ),
    },
}


# An adapted estimator is fitted by adapt(): a few gradient steps (or prototypes)
# from a meta-trained starting point. Its parameter is that fitted meta-estimator.
_HASH_OF_A_COPY = (
    "the parameter meta_estimator is a fitted, torch-backed meta-estimator: the check "
    "compares joblib hashes of a deep copy with the original, and a deep copy of a torch "
    "module hashes differently though nothing changed (tests/test_estimators.py pins that "
    "adapt leaves the meta-estimator's weights unchanged)"
)
EXPECTED_FAILED_ADAPTED = {
    "AdaptedClassifier": {"check_estimators_overwrite_params": _HASH_OF_A_COPY},
    "AdaptedRegressor": {
        "check_estimators_overwrite_params": _HASH_OF_A_COPY,
        "check_regressors_train": (
            "the check asks for R^2 > 0.5 on its own data after fit; an adapted regressor "
            "takes adapt_steps gradient steps from an initialisation meta-trained (here for "
            "two epochs) on other tasks, not a full fit"
        ),
    },
}


# The meta-estimators' own (not AutoMeta's nor sklmeta.transfer's): their **kwargs.
EXPECTED_FAILED_META = {"check_do_not_raise_errors_in_init_or_set_params": _KWARGS}


def _expected_failed_checks(estimator):
    if type(estimator).__name__ in EXPECTED_FAILED_ADAPTED:
        return EXPECTED_FAILED_ADAPTED[type(estimator).__name__]
    expected = EXPECTED_FAILED_CHECKS[estimator.__sklearn_tags__().estimator_type]
    if isinstance(estimator, MetaEstimatorBase):
        return {**expected, **EXPECTED_FAILED_META}
    return expected


# Small and fast. The episode sizes fit sklearn's small check data: the
# classifier needs k_shot + n_query = 3 samples per class (the smallest class in
# check_fit2d_1feature has 3); the regressor keeps n_query = 2 because R^2 of a
# single query sample is undefined (NaN), which would make the score checks vacuous.
_SMALL = dict(max_epochs=2, meta_batch_size=4, hidden_layer_sizes=(8,), random_state=0)
ESTIMATORS = [
    cls(task_splitter=TaskSplitter(k_shot=2, n_query=1 if is_classifier(cls()) else 2,
                                   n_tasks=8), **_SMALL)
    for cls in META_ESTIMATORS
]



def _adapted_estimators():
    """AdaptedClassifier / AdaptedRegressor around small meta-estimators.

    Meta-trained on 30-feature tasks with standardize=True, so they adapt to the
    checks' data of any width up to 30; the classifier's meta-estimator is a
    ProtoNet, which adapts to any number of classes.
    """
    rng = np.random.RandomState(0)
    tasks = [(rng.randn(40, 30), rng.randint(2, size=40)) for _ in range(6)]
    # a wider embedding than _SMALL's: the check wants 83% training accuracy on blobs
    clf = sklmeta.ProtoNetClassifier(
        task_splitter=TaskSplitter(n_way=2, k_shot=3, n_query=3, n_tasks=8), standardize=True,
        early_stopping=False, **{**_SMALL, "hidden_layer_sizes": (40,)}).fit(tasks)
    reg = sklmeta.MAMLRegressor(
        task_splitter=TaskSplitter(k_shot=3, n_query=3, n_tasks=8), standardize=True,
        early_stopping=False, **_SMALL).fit([(X, rng.randn(40)) for X, _ in tasks])
    return [sklmeta.AdaptedClassifier(clf), sklmeta.AdaptedRegressor(reg)]


ESTIMATORS += _adapted_estimators()


def _support_learners():
    """AutoMeta and sklmeta.transfer's learners: the meta-estimators' contract (fit on
    tasks, predict only after adapt), so the same expected failures, by estimator type.

    AutoMeta holds out rows when the checks' 2-3 classes are too few to hold out whole
    classes: 1 shot + 1 query per class for the classifier, validation_fraction=0.5 for
    the regressor's 4-row episodes, so the checks' 10-row datasets allow a hold-out.
    """
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sklmeta.transfer import PerSupport, PooledRegressor, PretrainedEmbeddingClassifier

    clf_splitter = TaskSplitter(k_shot=1, n_query=1, n_tasks=8)
    reg_splitter = TaskSplitter(k_shot=2, n_query=2, n_tasks=8)
    auto = dict(n_episodes=4, validation_fraction=0.5, random_state=0)
    return [
        PerSupport(LogisticRegression(), task_splitter=clf_splitter),
        PerSupport(Ridge(), task_splitter=reg_splitter),
        PretrainedEmbeddingClassifier(hidden_layer_sizes=(8,), max_epochs=2,
                                      task_splitter=clf_splitter, random_state=0),
        PooledRegressor(correction="ridge", task_splitter=reg_splitter),
        sklmeta.AutoMetaClassifier(
            {"logistic": LogisticRegression(),
             "protonet": sklmeta.ProtoNetClassifier(task_splitter=clf_splitter, **_SMALL)},
            task_splitter=clf_splitter, **auto),
        sklmeta.AutoMetaRegressor(
            {"ridge": make_pipeline(StandardScaler(), Ridge()),
             "pooled": PooledRegressor(task_splitter=reg_splitter, random_state=0)},
            task_splitter=reg_splitter, **auto),
    ]


ESTIMATORS += _support_learners()


def test_every_algorithm_is_checked():
    names = {cls.__name__ for cls in META_ESTIMATORS}
    assert names == {f"{a}{k}" for a in ("MAML", "MetaSGD", "ANIL", "Reptile")
                     for k in ("Classifier", "Regressor")} | {
        "ProtoNetClassifier", "MetaRidgeClassifier", "MetaRidgeRegressor",
        "DeepKernelGPRegressor", "NeuralProcessClassifier", "NeuralProcessRegressor"}
    # ...and the tuple holds every public meta-estimator (it is also load's allow-list)
    public = {name for name in sklmeta.__all__ if isinstance(getattr(sklmeta, name), type)
              and issubclass(getattr(sklmeta, name), MetaEstimatorBase)}
    assert public == names


# sklearn's check data are too small to hold out tasks or classes for
# meta-validation; early_stopping="auto" then warns (by design) on nearly every fit.
@pytest.mark.filterwarnings("ignore:Meta-training without early stopping:UserWarning")
@parametrize_with_checks(
    ESTIMATORS, expected_failed_checks=_expected_failed_checks, xfail_strict=True
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
