"""Deep Kernel Transfer: a Gaussian process on a meta-learned feature map."""

import numbers

from sklearn.utils._param_validation import Interval, StrOptions

from .._base import MetaRegressorBase
from .._core import closed_form

__all__ = ["DeepKernelGPRegressor"]

_CONSTRAINTS = {"embedding_dim": [Interval(numbers.Integral, 1, None, closed="left")],
                "kernel": [StrOptions(set(closed_form.KERNELS))],
                "calibrate": ["boolean"]}



class DeepKernelGPRegressor(MetaRegressorBase):
    """Deep Kernel Transfer (Patacchiola et al., 2020): a GP on a meta-learned feature map.

    A Gaussian process whose kernel is a base kernel on learned features,
    ``k(x, x') = s f(x) . f(x')`` (the default, linear) or ``s * base(|f(x) -
    f(x')| / l)``, with noise variance ``sigma^2`` and a constant mean. ``fit``
    meta-trains the feature map ``f`` and the kernel's
    hyperparameters (length scale ``l``, output scale ``s``, ``sigma^2`` and the
    mean, ten times faster than the feature map) together by maximising the
    marginal likelihood of each task's rows:
    the meta-loss is the negative log marginal likelihood of an episode's support
    and query rows together, per row, averaged over the tasks of a meta-batch
    (``history_``'s ``train_loss``). ``adapt(X, y)`` conditions the GP exactly on
    the support set (a Cholesky factorisation, with ``1e-6`` added to the
    diagonal as scikit-learn's ``GaussianProcessRegressor`` adds ``alpha``), in
    float64; meta-validation scores the query MSE of that conditioning.

    ``predict(X, return_std=True)`` gives the predictive mean and standard
    deviation of ``y`` (the noise included, as scikit-learn's
    ``GaussianProcessRegressor`` with a ``WhiteKernel``), and ``sample_y`` draws
    from the joint predictive distribution. With ``calibrate=True`` (the
    default) that distribution's spread is calibrated on the meta-validation
    episodes: after meta-training, ``fit`` adapts to each held-out episode's
    support set, as ``adapt`` does, and measures the standardised residuals
    ``|y - mean| / std`` of its query rows; ``std_scale_`` is their conformal
    90% quantile (corrected for the number of held-out tasks) divided by
    1.645, and every predictive std (and covariance, so ``sample_y`` too) is
    multiplied by it (by its square), the mean unchanged. The marginal
    likelihood alone gives intervals too wide on noise-free tasks, where the
    learned noise sits at its floor (on the sinusoids, 98.5% / 99.2% of query
    points inside the 90% intervals at K=5 / 10 without calibration; see
    ``benchmarks/RESULTS.md``).

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
        Output width of the default MLP: the features the kernel acts on.
    activation : {"relu", "tanh", "gelu"}, default="relu"
        Activation of the default MLP.
    kernel : {"linear", "rbf", "matern52"}, default="linear"
        The base kernel on the features: the dot product (no length scale: a
        Bayesian linear regression on the learned features), ``exp(-d^2 / (2
        l^2))``, or Matern 5/2 ``(1 + sqrt(5) d / l + 5 d^2 / (3 l^2))
        exp(-sqrt(5) d / l)`` (``d`` the Euclidean distance of two feature
        vectors), each times the output scale. "linear" by default: with a few
        support rows a task's function is then a weighted sum of learned basis
        functions, fitted everywhere at once, while a stationary kernel reverts
        to the prior mean between and beyond the support rows (on the sinusoids
        at K=5, 2,000 meta-steps: query MSE 0.001 against 1.2 for "rbf"; see
        ``benchmarks/RESULTS.md``). "rbf" is DKT's paper's choice.
    calibrate : bool, default=True
        Multiply every predictive std by ``std_scale_``, measured after
        meta-training on the held-out meta-validation episodes so that
        ``mean +/- 1.645 std`` covers 90% of their query targets. Without
        held-out episodes (``early_stopping=False``, or data that allow none)
        ``std_scale_`` is 1. Read at ``adapt`` too: ``set_params(calibrate=False)``
        after ``fit`` gives the uncalibrated std, with no refit.
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
        Per-epoch ``train_loss`` (the negative log marginal likelihood per row),
        ``valid_loss`` (the query MSE after conditioning on the support), durations.
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
    lengthscale_, outputscale_, noise_ : float
        The meta-learned kernel hyperparameters (``noise_`` is a variance, at
        least ``1e-4``).
    constant_mean_ : float
        The meta-learned prior mean.
    std_scale_ : float
        The factor on the predictive std that makes the 90% intervals cover
        90% of the held-out episodes' query targets, with a finite-sample
        correction for the ``m`` held-out tasks (groups), the exchangeable
        units: the smallest factor that puts at least ``0.9 (m + 1) / m`` of
        the standardised residuals ``|y - mean| / std`` inside ``1.645``
        (conformal risk control; a fresh task then has at least 90% of its
        rows inside on average). With rows held out of one dataset the
        episodes are the units. 1 without held-out episodes.
        Applied when ``calibrate`` is True: ``adapt`` conditions with
        ``outputscale_ * std_scale_**2`` and ``noise_ * std_scale_**2``. Below 1
        means the meta-learned intervals were too wide.
    compile_seconds_ : float or None
        With ``compile=True``: wall-clock seconds the first compiled meta-step
        took beyond the second (tracing and compiling its forward and backward
        graphs); None when the fit did not compile.

    See Also
    --------
    MetaRidgeRegressor : Ridge regression on a learned embedding (a GP with a
        linear kernel whose noise is estimated per task).
    MAMLRegressor : Adapts by gradient steps instead.
    sklmeta.AdaptedRegressor : What ``adapt`` returns.

    References
    ----------
    Patacchiola, Turner, Crowley, O'Boyle and Storkey, "Bayesian Meta-Learning
    for the Few-Shot Setting via Deep Kernels", NeurIPS 2020.

    Examples
    --------
    >>> from sklmeta import DeepKernelGPRegressor, TaskSplitter
    >>> from sklmeta.datasets import make_sinusoid_tasks
    >>> tasks = make_sinusoid_tasks(n_tasks=50, random_state=0)
    >>> splitter = TaskSplitter(k_shot=5, n_query=5, n_tasks=50, random_state=0)
    >>> meta = DeepKernelGPRegressor(task_splitter=splitter, max_epochs=2, random_state=0)
    >>> X, y = tasks[0]
    >>> gp = meta.fit(tasks).adapt(X[:5], y[:5])
    >>> mean, std = gp.predict(X[5:8], return_std=True)
    >>> mean.shape, bool((std > 0).all()), gp.sample_y(X[5:8], n_samples=4).shape
    ((3,), True, (3, 4))
    >>> bool(meta.std_scale_ > 0)  # measured on the 10 held-out tasks
    True
    """

    _parameter_constraints = {**MetaRegressorBase._parameter_constraints, **_CONSTRAINTS}

    def __init__(self, *, task_splitter=None, hidden_layer_sizes=(40, 40), embedding_dim=40,
                 activation="relu", kernel="linear", calibrate=True, module=None, meta_lr=0.001,
                 meta_batch_size=16, max_meta_steps=2000, validation_interval=100,
                 max_epochs=None, early_stopping="auto", validation_fraction=0.2,
                 n_iter_no_change=10, standardize="auto", callbacks=None, verbose=0,
                 device="cpu", accelerator=None, random_state=None,
                 compile=False, **kwargs):
        self.task_splitter = task_splitter
        self.hidden_layer_sizes = hidden_layer_sizes
        self.embedding_dim = embedding_dim
        self.activation = activation
        self.kernel = kernel
        self.calibrate = calibrate
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
        self.compile = compile
        self._set_skorch_params(kwargs)

    def __sklmeta_algorithm__(self):
        return closed_form.DeepKernelGP(self.kernel,
                                        std_scale=closed_form.calibrated_std_scale(self))

    def _output_width(self, n_way):
        return self.embedding_dim if self.module is None else None
