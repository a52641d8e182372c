"""Conditional Neural Processes: their meta-estimators, with their parameters and documentation."""

import numbers

from sklearn.utils._param_validation import Interval, StrOptions

from .._base import MetaClassifierBase, MetaRegressorBase
from .._core.neural_process import AGGREGATIONS, NeuralProcess

__all__ = ["NeuralProcessClassifier", "NeuralProcessRegressor"]

_CONSTRAINTS = {"embedding_dim": [Interval(numbers.Integral, 1, None, closed="left")],
                "aggregation": [StrOptions(set(AGGREGATIONS))]}


class _NeuralProcessMixin:
    """What both neural-process estimators share besides their parameters."""

    def _output_width(self, n_way):
        return self.embedding_dim if self.module is None else None


class NeuralProcessRegressor(_NeuralProcessMixin, MetaRegressorBase):
    """Conditional Neural Process (Garnelo et al., 2018) for few-shot regression.

    ``fit`` meta-trains a network that maps a support set to a Gaussian
    predictive distribution: each support row ``(x, y)`` is encoded by an MLP,
    the codes are aggregated into a representation ``r`` of the task (their mean,
    or attention from each query), and a decoder predicts each query row's mean
    and standard deviation from its x-embedding and ``r``. Meta-training
    minimises the Gaussian negative log-likelihood of the query targets.

    ``adapt(X, y)`` is one forward pass through the encoder, with no gradient
    steps: instant, and for a support set of any size (one row included). The
    :class:`~sklmeta.AdaptedRegressor` it returns predicts the mean, and with
    ``predict(X, return_std=True)`` the standard deviation, bounded below as in
    the CNP paper, ``std = 0.1 + 0.9 softplus(raw)``, in the target's units (for
    targets whose noise is far below 0.1, rescale them).

    Parameters
    ----------
    task_splitter : TaskSplitter, default=None
        Draws the episodes: ``n_tasks`` training episodes per epoch from the
        fit data, and the episodes ``score`` averages over. None means
        ``TaskSplitter()``.
    hidden_layer_sizes : tuple of int, default=(40, 40)
        Hidden widths of each of the three MLPs: the x-embedding (the default
        network), the encoder and the decoder.
    embedding_dim : int, default=40
        Width of the x-embedding and of each support row's code (the
        representation ``r``).
    activation : {"relu", "tanh", "gelu"}, default="relu"
        Activation of the three MLPs.
    module : torch.nn.Module, default=None
        A network to use instead of the default x-embedding MLP (deep-copied at
        fit): it maps ``[n, n_features]`` to an embedding ``[n, E]`` of any
        width ``E``; the encoder and decoder MLPs are built around it at that
        width (``embedding_dim`` is then not used).
    aggregation : {"mean", "attention"}, default="mean"
        How the support rows' codes are aggregated: their mean (the CNP), or
        dot-product cross-attention from each query's x-embedding to the
        support rows' embeddings (the deterministic path of Attentive NPs),
        which lets the prediction depend most on the support rows near the query.
        Both have the same parameters; the aggregation the network was
        meta-trained with is the one it adapts with (a change takes effect at
        the next ``fit``).
    meta_lr : float, default=0.001
        Adam's learning rate.
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
        for meta-validation; stop after ``n_iter_no_change`` meta-validations without
        improvement of the query MSE of the mean and restore the best weights, the
        random start (epoch 0) included. "auto" does so when the data allow it
        and warns when not.
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
        ``Checkpoint``, ``LRScheduler``; they see ``valid_loss``.
    verbose : int, default=0
        1 prints skorch's epoch table and progress bar.
    device : str, default="cpu"
        Torch device of the meta-parameters, e.g. "cuda".
    accelerator : accelerate.Accelerator, default=None
        Meta-train through Hugging Face accelerate (skorch's ``AccelerateMixin``);
        the accelerator places the parameters and ``device`` is then not used.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights (the encoder and decoder are seeded from the
        embedding's), the held-out split and the training episodes.
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
        The meta-learned neural process: its ``embed``, ``encoder`` and
        ``decoder`` submodules.
    history_ : skorch.History
        Per-epoch ``train_loss`` (the query MSE of the mean, beside the
        Gaussian negative log-likelihood that is minimised), ``valid_loss``
        (the query MSE of the mean), durations.
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
        What was held out for meta-validation: ``unit``, ``held_out`` and ``n_kept``.
    best_epoch_ : int
        Epoch whose weights were kept; 0 is the random start.
    initial_valid_score_ : float or None
        Meta-validation score of the random start.
    inner_loop_ : str
        ``"forward-pass"``: a neural process adapts with no inner loop.
    compile_seconds_ : float or None
        With ``compile=True``: wall-clock seconds the first compiled meta-step
        took beyond the second (tracing and compiling its forward and backward
        graphs); None when the fit did not compile.

    See Also
    --------
    NeuralProcessClassifier : The same model for few-shot classification.
    MAMLRegressor : Adapts by gradient steps instead of a forward pass.
    sklmeta.AdaptedRegressor : What ``adapt`` returns.

    References
    ----------
    Garnelo, Rosenbaum, Maddison, Ramalho, Saxton, Shanahan, Teh, Rezende and
    Eslami, "Conditional Neural Processes", ICML 2018.

    Kim, Mnih, Schwarz, Garnelo, Eslami, Rosenbaum, Vinyals and Teh, "Attentive
    Neural Processes", ICLR 2019.

    Examples
    --------
    >>> from sklmeta import NeuralProcessRegressor, TaskSplitter
    >>> from sklmeta.datasets import make_sinusoid_tasks
    >>> tasks = make_sinusoid_tasks(n_tasks=50, random_state=0)
    >>> meta = NeuralProcessRegressor(task_splitter=TaskSplitter(k_shot=5, n_query=5, n_tasks=50),
    ...                               max_epochs=1, random_state=0).fit(tasks)
    >>> X, y = tasks[0]
    >>> mean, std = meta.adapt(X[:5], y[:5]).predict(X[5:8], return_std=True)
    >>> mean.shape, bool((std >= 0.1).all())
    ((3,), True)
    """

    _parameter_constraints = {**MetaRegressorBase._parameter_constraints, **_CONSTRAINTS}

    def __init__(self, *, task_splitter=None, hidden_layer_sizes=(40, 40), embedding_dim=40,
                 activation="relu", module=None, aggregation="mean", meta_lr=0.001,
                 meta_batch_size=16, max_meta_steps=2000, validation_interval=100,
                 max_epochs=None, early_stopping="auto", validation_fraction=0.2,
                 n_iter_no_change=10, standardize="auto", callbacks=None, verbose=0,
                 device="cpu", accelerator=None, random_state=None,
                 compile=False, **kwargs):
        self.task_splitter = task_splitter
        self.hidden_layer_sizes = hidden_layer_sizes
        self.embedding_dim = embedding_dim
        self.activation = activation
        self.module = module
        self.aggregation = aggregation
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

    def __sklmeta_algorithm__(self):
        return NeuralProcess(regression=True, aggregation=self.aggregation,
                             hidden_layer_sizes=self.hidden_layer_sizes,
                             activation=self.activation)


class NeuralProcessClassifier(_NeuralProcessMixin, MetaClassifierBase):
    """Conditional Neural Process (Garnelo et al., 2018) for few-shot classification.

    ``fit`` meta-trains a network that maps a support set to a classifier. Each
    support row's x-embedding is encoded by an MLP, and its one-hot label routes
    the code to its class: each class's codes are aggregated into a class
    representation ``r_c`` (their mean, or attention from the query to that
    class's rows). A decoder scores the query against each class,
    ``logit_c = decoder([e(x), r_c])``; meta-training minimises the query
    cross-entropy.

    ``adapt(X, y)`` is one forward pass, with no gradient steps, and takes any
    number of classes (not limited to ``n_way``): the same decoder scores every
    class's representation, so relabelling the classes only permutes the
    logits.

    Parameters
    ----------
    task_splitter : TaskSplitter, default=None
        Draws the episodes: ``n_tasks`` training episodes per epoch from the
        fit data, and the episodes ``score`` averages over. None means
        ``TaskSplitter()`` (all classes of the data in each episode).
    hidden_layer_sizes : tuple of int, default=(40, 40)
        Hidden widths of each of the three MLPs: the x-embedding (the default
        network), the encoder and the decoder.
    embedding_dim : int, default=40
        Width of the x-embedding and of each support row's code (the
        representation ``r``).
    activation : {"relu", "tanh", "gelu"}, default="relu"
        Activation of the three MLPs.
    module : torch.nn.Module, default=None
        A network to use instead of the default x-embedding MLP (deep-copied at
        fit): it maps ``[n, n_features]`` to an embedding ``[n, E]`` of any
        width ``E``; the encoder and decoder MLPs are built around it at that
        width (``embedding_dim`` is then not used).
    aggregation : {"mean", "attention"}, default="mean"
        How the support rows' codes are aggregated: their mean (the CNP), or
        dot-product cross-attention from each query's x-embedding to the
        support rows' embeddings (the deterministic path of Attentive NPs),
        within each class's rows.
        Both have the same parameters; the aggregation the network was
        meta-trained with is the one it adapts with (a change takes effect at
        the next ``fit``).
    meta_lr : float, default=0.001
        Adam's learning rate.
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
        for meta-validation; stop after ``n_iter_no_change`` meta-validations without
        improvement of the query accuracy and restore the best weights, the
        random start (epoch 0) included. "auto" does so when the data allow it
        and warns when not.
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
        ``Checkpoint``, ``LRScheduler``; they see ``valid_loss`` and ``valid_acc``.
    verbose : int, default=0
        1 prints skorch's epoch table and progress bar.
    device : str, default="cpu"
        Torch device of the meta-parameters, e.g. "cuda".
    accelerator : accelerate.Accelerator, default=None
        Meta-train through Hugging Face accelerate (skorch's ``AccelerateMixin``);
        the accelerator places the parameters and ``device`` is then not used.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights (the encoder and decoder are seeded from the
        embedding's), the held-out split and the training episodes.
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
        The meta-learned neural process: its ``embed``, ``encoder`` and
        ``decoder`` submodules.
    history_ : skorch.History
        Per-epoch ``train_loss`` (the query cross-entropy, which is what is
        minimised), ``valid_loss`` and ``valid_acc``, durations.
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
        What was held out for meta-validation: ``unit``, ``held_out`` and ``n_kept``.
    best_epoch_ : int
        Epoch whose weights were kept; 0 is the random start.
    initial_valid_score_ : float or None
        Meta-validation score of the random start.
    inner_loop_ : str
        ``"forward-pass"``: a neural process adapts with no inner loop.
    compile_seconds_ : float or None
        With ``compile=True``: wall-clock seconds the first compiled meta-step
        took beyond the second (tracing and compiling its forward and backward
        graphs); None when the fit did not compile.

    See Also
    --------
    NeuralProcessRegressor : The same model for few-shot regression, with a std.
    ProtoNetClassifier : Also adapts in one pass: nearest class mean, no decoder.
    sklmeta.AdaptedClassifier : What ``adapt`` returns.

    References
    ----------
    Garnelo, Rosenbaum, Maddison, Ramalho, Saxton, Shanahan, Teh, Rezende and
    Eslami, "Conditional Neural Processes", ICML 2018.

    Kim, Mnih, Schwarz, Garnelo, Eslami, Rosenbaum, Vinyals and Teh, "Attentive
    Neural Processes", ICLR 2019.

    Examples
    --------
    >>> from sklmeta import NeuralProcessClassifier, TaskSplitter
    >>> from sklmeta.datasets import make_classification_tasks
    >>> tasks = make_classification_tasks(n_tasks=20, random_state=0)
    >>> splitter = TaskSplitter(n_way=2, k_shot=5, n_query=5, n_tasks=32, random_state=0)
    >>> meta = NeuralProcessClassifier(task_splitter=splitter, max_epochs=2, random_state=0)
    >>> X, y = tasks[0]
    >>> meta.fit(tasks).adapt(X[:10], y[:10]).predict_proba(X[10:13]).shape
    (3, 2)
    """

    _parameter_constraints = {**MetaClassifierBase._parameter_constraints, **_CONSTRAINTS}

    def __init__(self, *, task_splitter=None, hidden_layer_sizes=(40, 40), embedding_dim=40,
                 activation="relu", module=None, aggregation="mean", meta_lr=0.001,
                 meta_batch_size=16, max_meta_steps=2000, validation_interval=100,
                 max_epochs=None, early_stopping="auto", validation_fraction=0.2,
                 n_iter_no_change=10, standardize="auto", label_mode="auto", callbacks=None,
                 verbose=0, device="cpu", accelerator=None, random_state=None,
                 compile=False, **kwargs):
        self.task_splitter = task_splitter
        self.hidden_layer_sizes = hidden_layer_sizes
        self.embedding_dim = embedding_dim
        self.activation = activation
        self.module = module
        self.aggregation = aggregation
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
        return NeuralProcess(regression=False, aggregation=self.aggregation,
                             hidden_layer_sizes=self.hidden_layer_sizes,
                             activation=self.activation)
