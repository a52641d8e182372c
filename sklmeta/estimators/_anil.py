"""ANIL: its meta-estimators, with their parameters and documentation."""

from .._base import GRADIENT_CONSTRAINTS, GradientBased, MetaClassifierBase, MetaRegressorBase
from .._core import algorithms

__all__ = ["ANILClassifier", "ANILRegressor"]


class ANILClassifier(GradientBased, MetaClassifierBase):
    """ANIL (Raghu et al., 2020) for few-shot classification: adapt only the head.

    Meta-training is MAML's, but the inner loop updates only the output layer
    (the last submodule with parameters); the body is meta-learned and then
    shared, unchanged, by every adapted model. Adaptation is cheaper: only the
    head is differentiated (with the plain MLP, ``input_skip=False``, the body's
    features are computed once per task; the default skip network goes through
    torch.func and recomputes them at each step, a few times slower).

    Parameters
    ----------
    task_splitter : TaskSplitter, default=None
        Draws the episodes: ``n_tasks`` training episodes per epoch from the
        fit data, and the episodes ``score`` averages over. None means
        ``TaskSplitter()`` (for a classifier: all classes of the data in each
        episode).
    hidden_layer_sizes : tuple of int, default=(40, 40)
        Hidden widths of the default MLP.
    activation : {"relu", "tanh", "gelu"}, default="relu"
        Activation of the default MLP.
    module : torch.nn.Module, default=None
        A network to use instead of the MLP (deep-copied at fit). It maps
        ``[n, n_features]`` to ``[n, n_way]`` (classifiers), ``[n, 1]``
        (regressors), or to an embedding of any width (ProtoNet). BatchNorm
        layers normalise by each task's own rows (their running buffers are
        never used) and predict with the support set's statistics; Dropout is
        on in meta-training only. See the user guide, "Your own network".
    input_skip : bool, default=True
        The default network's body is the MLP's hidden layers beside
        ``tanh(x)`` (the standardised inputs, bounded), and its head, the layer
        the inner loop adapts, starts at zero: adaptation starts as a linear
        model on the inputs and the body's features, so even a body that
        meta-training cannot improve (few training classes) leaves a linear
        model of the inputs. False: the plain MLP, its head drawn at random.
        Not used with ``module``.
    inner_lr : float, default=0.4
        Step size of the inner loop (training and adaptation). Read when
        adapting, so it can be changed with ``set_params`` after meta-training.
    inner_steps : int, default=5
        Inner gradient steps of each task during meta-training.
    adapt_steps : int, default=None
        Inner steps at adaptation time (``adapt``, ``score``, meta-validation);
        None means ``inner_steps``. Read when adapting, like ``inner_lr``.
    adapt_backtrack : bool, default=True
        When adapting (``adapt``, ``score``, meta-validation), undo a step that
        does not lower the task's support loss and halve its step size. False:
        plain SGD, as the papers evaluate. Meta-training is plain SGD either way.
        See the user guide, "Adapting".
    first_order : bool, default=False
        Drop the second-order terms of the meta-gradient (first-order MAML).
    meta_lr : float, default=0.001
        Learning rate of the outer loop: Adam's, or for Reptile the step size of
        its plain SGD outer loop.
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
    n_way_ : int or None
        Classes per training episode (None for regressors).
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
    compile_seconds_ : float or None
        With ``compile=True``: wall-clock seconds the first compiled meta-step
        took beyond the second (tracing and compiling its forward and backward
        graphs); None when the fit did not compile.

    See Also
    --------
    ANILRegressor : The same algorithm for regression.
    MAMLClassifier : Adapts every layer, not only the head.
    sklmeta.AdaptedClassifier : What ``adapt`` returns.

    References
    ----------
    Raghu, Raghu, Bengio and Vinyals, "Rapid Learning or Feature Reuse? Towards
    Understanding the Effectiveness of MAML", ICLR 2020.

    Examples
    --------
    >>> from sklmeta import ANILClassifier, TaskSplitter
    >>> from sklmeta.datasets import make_classification_tasks
    >>> tasks = make_classification_tasks(n_tasks=20, random_state=0)
    >>> splitter = TaskSplitter(n_way=2, k_shot=5, n_query=5, n_tasks=32, random_state=0)
    >>> meta = ANILClassifier(task_splitter=splitter, max_epochs=2, random_state=0).fit(tasks)
    >>> X, y = tasks[0]
    >>> clf = meta.adapt(X[:10], y[:10])
    >>> body = meta.module_[0].mlp[0].weight  # the skip network's first hidden layer
    >>> bool((clf.params_["0.mlp.0.weight"] == body).all())  # body unchanged
    True
    """

    _parameter_constraints = {**MetaClassifierBase._parameter_constraints,
                              **GRADIENT_CONSTRAINTS, "input_skip": ["boolean"]}


    def __init__(self, *, task_splitter=None, hidden_layer_sizes=(40, 40), activation="relu",
                 module=None, input_skip=True, inner_lr=0.4, inner_steps=5, adapt_steps=None,
                 adapt_backtrack=True, first_order=False,
                 meta_lr=0.001, meta_batch_size=16, max_meta_steps=2000,
                 validation_interval=100, max_epochs=None, early_stopping="auto",
                 validation_fraction=0.2, n_iter_no_change=10, standardize="auto",
                 label_mode="auto", callbacks=None, verbose=0, device="cpu", accelerator=None,
                 random_state=None,
                 compile=False, **kwargs):
        self.task_splitter = task_splitter
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.module = module
        self.input_skip = input_skip
        self.inner_lr = inner_lr
        self.inner_steps = inner_steps
        self.adapt_steps = adapt_steps
        self.adapt_backtrack = adapt_backtrack
        self.first_order = first_order
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

    def _default_skip(self):
        return "head" if self.input_skip else None

    def __sklmeta_algorithm__(self):
        return algorithms.anil(**self._inner_options(), first_order=self.first_order)


class ANILRegressor(GradientBased, MetaRegressorBase):
    """ANIL (Raghu et al., 2020) for few-shot regression: adapt only the head.

    Meta-training is MAML's, but the inner loop updates only the output layer;
    the body is meta-learned and then shared, unchanged, by every adapted model.

    Parameters
    ----------
    task_splitter : TaskSplitter, default=None
        Draws the episodes: ``n_tasks`` training episodes per epoch from the
        fit data, and the episodes ``score`` averages over. None means
        ``TaskSplitter()`` (for a classifier: all classes of the data in each
        episode).
    hidden_layer_sizes : tuple of int, default=(40, 40)
        Hidden widths of the default MLP.
    activation : {"relu", "tanh", "gelu"}, default="relu"
        Activation of the default MLP.
    module : torch.nn.Module, default=None
        A network to use instead of the MLP (deep-copied at fit). It maps
        ``[n, n_features]`` to ``[n, n_way]`` (classifiers), ``[n, 1]``
        (regressors), or to an embedding of any width (ProtoNet). BatchNorm
        layers normalise by each task's own rows (their running buffers are
        never used) and predict with the support set's statistics; Dropout is
        on in meta-training only. See the user guide, "Your own network".
    input_skip : bool, default=False
        True: the body is the MLP's hidden layers beside ``tanh(x)`` and the
        head starts at zero, as ``ANILClassifier``'s default. Off by default
        for regression: on the sinusoids and gapminder it changed nothing
        beyond noise (MSE/Var 1.03 against 0.93, 0.079 against 0.078; defaults
        sweep, 2026-12-01) at twice the fit time. Not used with ``module``.
    inner_lr : float, default=0.1
        Step size of the inner loop (training and adaptation). Read when
        adapting, so it can be changed with ``set_params`` after meta-training.
    inner_steps : int, default=5
        Inner gradient steps of each task during meta-training.
    adapt_steps : int, default=None
        Inner steps at adaptation time (``adapt``, ``score``, meta-validation);
        None means ``inner_steps``. Read when adapting, like ``inner_lr``.
    adapt_backtrack : bool, default=True
        When adapting (``adapt``, ``score``, meta-validation), undo a step that
        does not lower the task's support loss and halve its step size. False:
        plain SGD, as the papers evaluate. Meta-training is plain SGD either way.
        See the user guide, "Adapting".
    first_order : bool, default=False
        Drop the second-order terms of the meta-gradient (first-order MAML).
    meta_lr : float, default=0.001
        Learning rate of the outer loop: Adam's, or for Reptile the step size of
        its plain SGD outer loop.
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
    n_way_ : int or None
        Classes per training episode (None for regressors).
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
    compile_seconds_ : float or None
        With ``compile=True``: wall-clock seconds the first compiled meta-step
        took beyond the second (tracing and compiling its forward and backward
        graphs); None when the fit did not compile.

    See Also
    --------
    ANILClassifier : The same algorithm for classification.
    MAMLRegressor : Adapts every layer, not only the head.
    sklmeta.AdaptedRegressor : What ``adapt`` returns.

    References
    ----------
    Raghu, Raghu, Bengio and Vinyals, "Rapid Learning or Feature Reuse? Towards
    Understanding the Effectiveness of MAML", ICLR 2020.

    Examples
    --------
    >>> from sklmeta import ANILRegressor, TaskSplitter
    >>> from sklmeta.datasets import make_sinusoid_tasks
    >>> tasks = make_sinusoid_tasks(n_tasks=100, random_state=0)
    >>> splitter = TaskSplitter(k_shot=5, n_query=5, n_tasks=100, random_state=0)
    >>> reg = ANILRegressor(task_splitter=splitter, max_epochs=2, random_state=0).fit(tasks)
    >>> x, y = tasks[0]
    >>> reg.adapt(x[:5], y[:5]).predict(x[5:8]).shape
    (3,)
    """

    _parameter_constraints = {**MetaRegressorBase._parameter_constraints,
                              **GRADIENT_CONSTRAINTS, "input_skip": ["boolean"]}


    def __init__(self, *, task_splitter=None, hidden_layer_sizes=(40, 40), activation="relu",
                 module=None, input_skip=False, inner_lr=0.1, inner_steps=5, adapt_steps=None,
                 adapt_backtrack=True, first_order=False,
                 meta_lr=0.001, meta_batch_size=16, max_meta_steps=2000,
                 validation_interval=100, max_epochs=None, early_stopping="auto",
                 validation_fraction=0.2, n_iter_no_change=10, standardize="auto",
                 callbacks=None, verbose=0, device="cpu", accelerator=None, random_state=None,
                 compile=False, **kwargs):
        self.task_splitter = task_splitter
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.module = module
        self.input_skip = input_skip
        self.inner_lr = inner_lr
        self.inner_steps = inner_steps
        self.adapt_steps = adapt_steps
        self.adapt_backtrack = adapt_backtrack
        self.first_order = first_order
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
        self.compile = compile
        self._set_skorch_params(kwargs)

    def _default_skip(self):
        return "head" if self.input_skip else None

    def __sklmeta_algorithm__(self):
        return algorithms.anil(**self._inner_options(), first_order=self.first_order)
