"""R2-D2: meta-estimators with a closed-form ridge-regression head on a learned embedding."""

import numbers

from sklearn.utils._param_validation import Interval

from .._base import MetaClassifierBase, MetaRegressorBase
from .._core import closed_form

__all__ = ["MetaRidgeClassifier", "MetaRidgeRegressor"]

_CONSTRAINTS = {"embedding_dim": [Interval(numbers.Integral, 1, None, closed="left")]}


class MetaRidgeClassifier(MetaClassifierBase):
    """R2-D2 (Bertinetto et al., 2019): ridge regression in closed form on a learned embedding.

    ``fit`` meta-trains an embedding network ``f`` so that, in each episode, a
    ridge regression of the one-hot support labels on the support embeddings
    ``Z = f(X_support)``, solved in closed form, classifies the query rows. The
    head is ``W = Z^T (Z Z^T + lambda I)^-1 Y`` (the Woodbury form: a system as
    large as the support set, whatever the embedding width), and the logits are
    ``scale * f(x) W + bias - g |f(x) - mu_c|^2``, ``mu_c`` the mean support
    embedding of class ``c``: the ridge outputs plus a nearest-class-mean term
    (ProtoNet's), which a ridge fit on one shot a class lacks (unseen leaves,
    1 shot, ``embedding_dim=40``: 88.5% without it, 89.8% with). The
    embedding, the penalty ``lambda`` (as ``exp(log lambda)``, initially 1),
    the output scale and bias (initially 10 and 0) and the centroid weight
    ``g`` (initially 0) are meta-learned, the meta-gradient flowing through the
    solve (the penalty, scale and bias ten times faster than the embedding).
    ``adapt(X, y)`` solves for the head, with no gradient steps, for any number
    of classes (not limited to ``n_way``); the adapted model is the embedding
    followed by that linear head.

    Parameters
    ----------
    task_splitter : TaskSplitter, default=None
        Draws the episodes: ``n_tasks`` training episodes per epoch from the
        fit data, and the episodes ``score`` averages over. None means
        ``TaskSplitter()`` (for a classifier: all classes of the data in each
        episode).
    hidden_layer_sizes : tuple of int, default=()
        Hidden widths of the default MLP: none by default, a linear embedding
        ``f(x) = A x + b``. The ridge head already fits each task's classifier, so
        the embedding only needs to be a metric, as LDA learns one; a deeper one
        meta-overfits few meta-training classes (unseen leaf species, 20 for
        meta-training: 86.2% / 95.7% at 1 / 5 shots linear, 80.7% / 92.7% with
        (40, 40), before the centroid term; see ``benchmarks/RESULTS.md``). Give
        hidden layers for inputs whose classes are not separated by a linear map
        (images, say).
    embedding_dim : int, default=100
        Output width of the default MLP: the embedding the ridge head acts on.
        Wider than most inputs on purpose: a linear map to more dimensions than
        it has inputs spans no more, but meta-trains faster (unseen digits, 64
        pixels: 78.4% / 91.0% at 1 / 5 shots at 100, 67.1% / 88.0% at 40).
    activation : {"relu", "tanh", "gelu"}, default="relu"
        Activation of the default MLP.
    module : torch.nn.Module, default=None
        A network to use instead of the MLP (deep-copied at fit). It maps
        ``[n, n_features]`` to an embedding of any width.
    meta_lr : float, default=0.001
        Adam's learning rate (the outer loop).
    meta_batch_size : int, default=16
        Tasks per meta-step.
    max_meta_steps : int, default=2000
        The meta-training budget: at most this many meta-steps, each on a
        meta-batch of ``meta_batch_size`` fresh episodes; early stopping usually
        ends sooner. Used when ``max_epochs`` is None; 0 keeps the random start.
    validation_interval : int, default=100
        Meta-steps between two meta-validations (each is one row of ``history_``).
    max_epochs : int or None, default=None
        Instead of the meta-step budget: epochs of ``task_splitter.n_tasks``
        training episodes, each followed by a meta-validation on as many
        episodes; 0 keeps the random start.
    early_stopping : {"auto", True, False}, default="auto"
        Hold out tasks (groups or task datasets), or else classes, or else rows,
        for meta-validation; stop after ``n_iter_no_change`` meta-validations
        without improvement and restore the best weights, the random start
        (epoch 0) included. "auto" does so when the data allow it and warns when
        not.
    validation_fraction : float, default=0.2
        Fraction of tasks (classes, rows) held out when early stopping.
    n_iter_no_change : int, default=10
        Meta-validations without improvement of their score before stopping.
    standardize : {"auto", "global", "per-task", False}, default="auto"
        How the inputs, and a regressor's targets (its predictions are mapped
        back), are scaled. "global": by the mean and standard deviation of all
        the fit data, the same for every task and every support set at
        ``adapt``, so offsets and scales that differ between tasks stay
        information. "per-task" (or True): each task dataset, and each support
        set at ``adapt``, by its own statistics, zero-padded to the widest: for
        task datasets with different columns. "auto" is "per-task" when the
        task datasets differ in width, else "global". False leaves the data as
        they are: only for inputs and targets already on a unit scale.
    label_mode : {"auto", "shuffle", "fixed"}, default="auto"
        How episode labels map to the head's outputs. "shuffle": each training
        episode assigns its classes to outputs ``0..n_way-1`` at random, for
        classes as tasks (each episode's classes are new to it). "fixed": one
        output per class of the fit data, the same in every episode, for
        groups (stores, patients, sites) that share one label column, so a rule
        the groups share is learned once and adapted. "auto": "fixed" when
        episodes come from the groups of one dataset, else "shuffle".
    callbacks : list of skorch callbacks, default=None
        Passed to the skorch net (deep-copied), e.g. ``EarlyStopping``,
        ``Checkpoint``, ``LRScheduler``; they see ``valid_loss`` (and
        ``valid_acc`` for classifiers).
    verbose : int, default=0
        1 prints skorch's epoch table and progress bar.
    device : str, default="cpu"
        Torch device of the meta-parameters, e.g. "cuda".
    accelerator : accelerate.Accelerator, default=None
        Meta-train through Hugging Face accelerate (skorch's ``AccelerateMixin``):
        mixed precision, and several GPUs or machines with ``accelerate launch``
        (each process draws its own episodes; meta-gradients are averaged). The
        accelerator places the parameters; ``device`` is then not used.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the held-out split and the training episodes.
    compile : bool, default=False
        Meta-train through ``torch.compile`` (skorch's name for it): the
        meta-gradient of a meta-step (``torch.func.grad_and_value`` of the
        meta-loss, a pure function of the meta-parameters and one meta-batch;
        the forward meta-loss alone where that is not one graph) is compiled
        once per fit for the fit's fixed shapes, and meta-validation, ``adapt``
        and ``score`` stay eager. The time spent
        compiling is ``compile_seconds_``. Where compiling fails (no C++
        compiler, an operation torch.compile does not support) the fit warns
        and runs eagerly. Options of ``torch.compile`` go in
        ``compile__<name>``, e.g. ``compile__backend="aot_eager"``.
    **kwargs : dict
        Skorch's prefixed parameters, as skorch's ``NeuralNet`` takes them:
        ``optimizer__<name>`` reach the outer optimizer (e.g.
        ``optimizer__weight_decay=1e-4``; the optimizer is the algorithm's and
        its learning rate is ``meta_lr``), ``compile__<name>`` reach
        ``torch.compile``. ``get_params`` shows them, ``set_params`` and grid
        searches set them; any other keyword is a TypeError.

    Attributes
    ----------
    net_ : MetaNet
        The fitted skorch net (history, callbacks, optimizer); its ``module_``
        holds everything meta-learned.
    module_ : torch.nn.Module
        The meta-learned network.
    history_ : skorch.History
        Per-epoch ``train_loss``, ``valid_loss`` (and ``valid_acc``), durations.
    n_way_ : int
        Classes per training episode (``adapt`` takes any number).
    n_features_in_ : int
        Width of the (padded) inputs.
    feature_names_in_ : ndarray of str
        Column names, when fit on a DataFrame.
    standardize_ : bool
    early_stopping_ : bool
        Whether meta-validation episodes were held out.
    validation_split_ : dict or None
        What was held out for meta-validation: ``unit`` ("tasks", "groups",
        "classes" or "rows"), ``held_out`` (task indices, group or class labels,
        row indices) and ``n_kept`` (how many remain for meta-training). With few
        classes this is a real trade-off: digits 0-5 in 3-way episodes keep only 3
        classes for meta-training.
    best_epoch_ : int
        Epoch whose weights were kept; 0 is the random start.
    initial_valid_score_ : float or None
        Meta-validation score of the random start.
    ridge_lambda_ : float
        The meta-learned ridge penalty.
    logit_scale_, logit_bias_ : float
        The meta-learned map of the ridge outputs to logits.
    centroid_weight_ : float
        The meta-learned weight ``g`` of the squared distance to the class means.
    compile_seconds_ : float or None
        With ``compile=True``: wall-clock seconds the first compiled meta-step
        took beyond the second (tracing and compiling its forward and backward
        graphs); None when the fit did not compile.

    See Also
    --------
    MetaRidgeRegressor : The same head for regression, with predictive intervals.
    ProtoNetClassifier : Nearest class mean in a learned embedding.
    sklmeta.AdaptedClassifier : What ``adapt`` returns.

    References
    ----------
    Bertinetto, Henriques, Torr and Vedaldi, "Meta-learning with differentiable
    closed-form solvers", ICLR 2019.

    Examples
    --------
    >>> from sklmeta import MetaRidgeClassifier, TaskSplitter
    >>> from sklmeta.datasets import make_classification_tasks
    >>> tasks = make_classification_tasks(n_tasks=20, random_state=0)
    >>> splitter = TaskSplitter(n_way=2, k_shot=5, n_query=5, n_tasks=32, random_state=0)
    >>> meta = MetaRidgeClassifier(task_splitter=splitter, max_epochs=2, random_state=0)
    >>> X, y = tasks[0]
    >>> meta.fit(tasks).adapt(X[:10], y[:10]).predict_proba(X[10:13]).shape
    (3, 2)
    """

    _parameter_constraints = {**MetaClassifierBase._parameter_constraints, **_CONSTRAINTS}

    def __init__(self, *, task_splitter=None, hidden_layer_sizes=(), embedding_dim=100,
                 activation="relu", module=None, meta_lr=0.001, meta_batch_size=16,
                 max_meta_steps=2000, validation_interval=100, max_epochs=None,
                 early_stopping="auto", validation_fraction=0.2, n_iter_no_change=10,
                 standardize="auto", label_mode="auto", callbacks=None, verbose=0, device="cpu",
                 accelerator=None, random_state=None,
                 compile=False, **kwargs):
        self.task_splitter = task_splitter
        self.hidden_layer_sizes = hidden_layer_sizes
        self.embedding_dim = embedding_dim
        self.activation = activation
        self.module = module
        self.meta_lr = meta_lr
        self.meta_batch_size = meta_batch_size
        self.max_meta_steps = max_meta_steps
        self.validation_interval = validation_interval
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.standardize = standardize
        self.label_mode = label_mode
        self.callbacks = callbacks
        self.verbose = verbose
        self.device = device
        self.accelerator = accelerator
        self.random_state = random_state
        self.compile = compile
        self._set_skorch_params(kwargs)

    def __sklmeta_algorithm__(self):
        return closed_form.Ridge("classification")

    def _output_width(self, n_way):
        return self.embedding_dim if self.module is None else None


class MetaRidgeRegressor(MetaRegressorBase):
    """R2-D2 for regression: ridge regression in closed form on a learned embedding.

    ``fit`` meta-trains an embedding network ``f`` so that, in each episode, a
    ridge regression of the support targets on the support embeddings
    ``Z = f(X_support)``, solved in closed form (``W = Z^T (Z Z^T + lambda I)^-1
    y``), predicts the query targets with least squared error. The embedding
    and the penalty ``lambda`` (as ``exp(log lambda)``, initially 1) are
    meta-learned through the solve. ``adapt(X, y)`` solves for the head, with no
    gradient steps.

    ``predict(X, return_std=True)`` reads ridge as Bayesian linear regression
    on the embedding (prior ``w ~ N(0, sigma^2 / lambda I)``, noise
    ``sigma^2``), whose posterior mean is the ridge solution. The noise variance
    is not meta-learned: it is estimated from each support set by maximum
    marginal likelihood given ``lambda``, ``sigma^2 = lambda y^T (Z Z^T + lambda
    I)^-1 y / n_support``, and the standard deviation is that of ``y`` (noise
    included): ``sigma (1 + (|z|^2 - k^T (Z Z^T + lambda I)^-1 k) / lambda)^(1/2)``,
    ``k = Z f(x)``. With 5 support rows that estimate is rough, so with
    ``calibrate=True`` (the default) the spread is calibrated on the
    meta-validation episodes, as :class:`DeepKernelGPRegressor`'s: after
    meta-training ``fit`` measures ``std_scale_``, the factor that makes
    ``mean +/- 1.645 std`` cover 90% of the held-out episodes' query targets,
    and every predictive std is multiplied by it (``sigma^2`` by its square;
    the mean unchanged). ``sample_y`` draws from the joint predictive
    distribution.

    Parameters
    ----------
    task_splitter : TaskSplitter, default=None
        Draws the episodes: ``n_tasks`` training episodes per epoch from the
        fit data, and the episodes ``score`` averages over. None means
        ``TaskSplitter()`` (``k_shot=5`` support and ``n_query=15`` query rows
        per episode).
    hidden_layer_sizes : tuple of int, default=(40, 40)
        Hidden widths of the default MLP.
    embedding_dim : int, default=40
        Output width of the default MLP: the embedding the ridge head acts on.
    activation : {"relu", "tanh", "gelu"}, default="relu"
        Activation of the default MLP.
    module : torch.nn.Module, default=None
        A network to use instead of the MLP (deep-copied at fit). It maps
        ``[n, n_features]`` to an embedding of any width.
    meta_lr : float, default=0.001
        Adam's learning rate (the outer loop).
    meta_batch_size : int, default=16
        Tasks per meta-step.
    max_meta_steps : int, default=2000
        The meta-training budget: at most this many meta-steps, each on a
        meta-batch of ``meta_batch_size`` fresh episodes; early stopping usually
        ends sooner. Used when ``max_epochs`` is None; 0 keeps the random start.
    validation_interval : int, default=100
        Meta-steps between two meta-validations (each is one row of ``history_``).
    max_epochs : int or None, default=None
        Instead of the meta-step budget: epochs of ``task_splitter.n_tasks``
        training episodes, each followed by a meta-validation on as many
        episodes; 0 keeps the random start.
    early_stopping : {"auto", True, False}, default="auto"
        Hold out tasks (groups or task datasets), or else classes, or else rows,
        for meta-validation; stop after ``n_iter_no_change`` meta-validations
        without improvement and restore the best weights, the random start
        (epoch 0) included. "auto" does so when the data allow it and warns when
        not.
    validation_fraction : float, default=0.2
        Fraction of tasks (classes, rows) held out when early stopping.
    n_iter_no_change : int, default=10
        Meta-validations without improvement of their score before stopping.
    standardize : {"auto", "global", "per-task", False}, default="auto"
        How the inputs, and a regressor's targets (its predictions are mapped
        back), are scaled. "global": by the mean and standard deviation of all
        the fit data, the same for every task and every support set at
        ``adapt``, so offsets and scales that differ between tasks stay
        information. "per-task" (or True): each task dataset, and each support
        set at ``adapt``, by its own statistics, zero-padded to the widest: for
        task datasets with different columns. "auto" is "per-task" when the
        task datasets differ in width, else "global". False leaves the data as
        they are: only for inputs and targets already on a unit scale.
    callbacks : list of skorch callbacks, default=None
        Passed to the skorch net (deep-copied), e.g. ``EarlyStopping``,
        ``Checkpoint``, ``LRScheduler``; they see ``valid_loss`` (and
        ``valid_acc`` for classifiers).
    verbose : int, default=0
        1 prints skorch's epoch table and progress bar.
    device : str, default="cpu"
        Torch device of the meta-parameters, e.g. "cuda".
    accelerator : accelerate.Accelerator, default=None
        Meta-train through Hugging Face accelerate (skorch's ``AccelerateMixin``):
        mixed precision, and several GPUs or machines with ``accelerate launch``
        (each process draws its own episodes; meta-gradients are averaged). The
        accelerator places the parameters; ``device`` is then not used.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the held-out split and the training episodes.
    calibrate : bool, default=True
        Multiply every predictive std by ``std_scale_``, measured after
        meta-training on the held-out meta-validation episodes so that
        ``mean +/- 1.645 std`` covers 90% of their query targets (1 without
        held-out episodes). Read at ``adapt`` too: ``set_params(calibrate=False)``
        after ``fit`` gives the uncalibrated std, with no refit.
    compile : bool, default=False
        Meta-train through ``torch.compile`` (skorch's name for it): the
        meta-gradient of a meta-step (``torch.func.grad_and_value`` of the
        meta-loss, a pure function of the meta-parameters and one meta-batch;
        the forward meta-loss alone where that is not one graph) is compiled
        once per fit for the fit's fixed shapes, and meta-validation, ``adapt``
        and ``score`` stay eager. The time spent
        compiling is ``compile_seconds_``. Where compiling fails (no C++
        compiler, an operation torch.compile does not support) the fit warns
        and runs eagerly. Options of ``torch.compile`` go in
        ``compile__<name>``, e.g. ``compile__backend="aot_eager"``.
    **kwargs : dict
        Skorch's prefixed parameters, as skorch's ``NeuralNet`` takes them:
        ``optimizer__<name>`` reach the outer optimizer (e.g.
        ``optimizer__weight_decay=1e-4``; the optimizer is the algorithm's and
        its learning rate is ``meta_lr``), ``compile__<name>`` reach
        ``torch.compile``. ``get_params`` shows them, ``set_params`` and grid
        searches set them; any other keyword is a TypeError.

    Attributes
    ----------
    net_ : MetaNet
        The fitted skorch net (history, callbacks, optimizer); its ``module_``
        holds everything meta-learned.
    module_ : torch.nn.Module
        The meta-learned network.
    history_ : skorch.History
        Per-epoch ``train_loss``, ``valid_loss`` (the query MSE), durations.
    n_way_ : None
        Classes per training episode: None for a regressor.
    n_features_in_ : int
        Width of the (padded) inputs.
    feature_names_in_ : ndarray of str
        Column names, when fit on a DataFrame.
    standardize_ : bool
    early_stopping_ : bool
        Whether meta-validation episodes were held out.
    validation_split_ : dict or None
        What was held out for meta-validation: ``unit`` ("tasks", "groups",
        "classes" or "rows"), ``held_out`` (task indices, group or class labels,
        row indices) and ``n_kept`` (how many remain for meta-training). With few
        classes this is a real trade-off: digits 0-5 in 3-way episodes keep only 3
        classes for meta-training.
    best_epoch_ : int
        Epoch whose weights were kept; 0 is the random start.
    initial_valid_score_ : float or None
        Meta-validation score of the random start.
    ridge_lambda_ : float
        The meta-learned ridge penalty.
    std_scale_ : float
        The factor on the predictive std that makes the 90% intervals cover
        90% of the held-out episodes' query targets, with a finite-sample
        correction for the ``m`` held-out tasks (groups), the exchangeable
        units: the smallest factor that puts at least ``0.9 (m + 1) / m`` of
        the standardised residuals ``|y - mean| / std`` inside ``1.645``
        (conformal risk control; a fresh task then has at least 90% of its
        rows inside on average). With rows held out of one dataset the
        episodes are the units. 1 without held-out episodes.
        Applied when ``calibrate`` is True.
    compile_seconds_ : float or None
        With ``compile=True``: wall-clock seconds the first compiled meta-step
        took beyond the second (tracing and compiling its forward and backward
        graphs); None when the fit did not compile.

    See Also
    --------
    MetaRidgeClassifier : The same head for classification.
    DeepKernelGPRegressor : A Gaussian process on a learned embedding.
    sklmeta.AdaptedRegressor : What ``adapt`` returns.

    References
    ----------
    Bertinetto, Henriques, Torr and Vedaldi, "Meta-learning with differentiable
    closed-form solvers", ICLR 2019.

    Examples
    --------
    >>> from sklmeta import MetaRidgeRegressor, TaskSplitter
    >>> from sklmeta.datasets import make_sinusoid_tasks
    >>> tasks = make_sinusoid_tasks(n_tasks=50, random_state=0)
    >>> splitter = TaskSplitter(k_shot=5, n_query=5, n_tasks=50, random_state=0)
    >>> meta = MetaRidgeRegressor(task_splitter=splitter, max_epochs=2, random_state=0)
    >>> X, y = tasks[0]
    >>> mean, std = meta.fit(tasks).adapt(X[:5], y[:5]).predict(X[5:8], return_std=True)
    >>> mean.shape, bool((std > 0).all())
    ((3,), True)
    """

    _parameter_constraints = {**MetaRegressorBase._parameter_constraints, **_CONSTRAINTS,
                              "calibrate": ["boolean"]}

    def __init__(self, *, task_splitter=None, hidden_layer_sizes=(40, 40), embedding_dim=40,
                 activation="relu", module=None, meta_lr=0.001, meta_batch_size=16,
                 max_meta_steps=2000, validation_interval=100, max_epochs=None,
                 early_stopping="auto", validation_fraction=0.2, n_iter_no_change=10,
                 standardize="auto", callbacks=None, verbose=0, device="cpu", accelerator=None,
                 random_state=None, calibrate=True,
                 compile=False, **kwargs):
        self.task_splitter = task_splitter
        self.hidden_layer_sizes = hidden_layer_sizes
        self.embedding_dim = embedding_dim
        self.activation = activation
        self.module = module
        self.meta_lr = meta_lr
        self.meta_batch_size = meta_batch_size
        self.max_meta_steps = max_meta_steps
        self.validation_interval = validation_interval
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.standardize = standardize
        self.callbacks = callbacks
        self.verbose = verbose
        self.device = device
        self.accelerator = accelerator
        self.random_state = random_state
        self.calibrate = calibrate
        self.compile = compile
        self._set_skorch_params(kwargs)

    def __sklmeta_algorithm__(self):
        return closed_form.Ridge("regression", std_scale=closed_form.calibrated_std_scale(self))

    def _output_width(self, n_way):
        return self.embedding_dim if self.module is None else None
