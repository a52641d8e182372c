"""Baselines that a meta-learner should beat, as scikit-learn estimators.

- :class:`SkorchMLPClassifier`, :class:`SkorchMLPRegressor`: a small MLP trained
  from scratch (with skorch) on whatever it is fit on, typically one episode's
  support set of 5 to 50 samples.
- :class:`FineTunedRegressor`: a network pretrained on the pooled data of all
  training tasks, fine-tuned on each support set with a few SGD steps; the
  baseline of the MAML paper (Finn et al., 2017) for sinusoid regression.

All are ordinary estimators: :func:`sklearn.base.clone` gives an unfitted copy,
so :func:`sklmeta.model_selection.compare` and ``cross_val_score(...,
cv=TaskSplitter(...))`` fit a fresh one on every episode's support set.
"""

import copy

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from skorch import NeuralNetClassifier, NeuralNetRegressor

from ._doc_link import DocLinkMixin
from ._validation import check_hidden_layer_sizes, check_int, check_positive
from .estimators import make_mlp

__all__ = ["FineTunedRegressor", "SkorchMLPClassifier", "SkorchMLPRegressor"]




class _SkorchMLPBase(DocLinkMixin, BaseEstimator):
    """Shared fit logic: build an MLP for the data's width, train it with skorch."""

    _net_class = None
    _criterion = None

    def __init__(self, *, hidden_layer_sizes=(40, 40), activation="relu", lr=0.01,
                 max_epochs=100, batch_size=None, device="cpu", verbose=0, random_state=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.device = device
        self.verbose = verbose
        self.random_state = random_state

    def _check_params(self):
        check_hidden_layer_sizes(self.hidden_layer_sizes)
        check_positive(self.lr, "lr")
        check_int(self.max_epochs, "max_epochs", 0)
        if self.batch_size is not None:
            check_int(self.batch_size, "batch_size", 1)

    def _fit(self, X, y, n_outputs):
        """Train a fresh MLP on float32 ``X`` and encoded targets ``y``."""
        self._check_params()
        seed = check_random_state(self.random_state).randint(2**31)
        # Private generators for the weights and the shuffling: the same random_state
        # gives the same network, in any thread, and torch's global RNG is untouched.
        module = make_mlp(X.shape[1], self.hidden_layer_sizes, n_outputs, self.activation,
                          torch.Generator().manual_seed(int(seed)))
        self.net_ = self._net_class(
            module,
            criterion=self._criterion,
            optimizer=torch.optim.Adam,
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=-1 if self.batch_size is None else self.batch_size,
            iterator_train__shuffle=self.batch_size is not None,
            # every DataLoader iteration draws a base seed, shuffled or not
            iterator_train__generator=torch.Generator().manual_seed(int(seed) + 1),
            iterator_valid__generator=torch.Generator().manual_seed(int(seed) + 2),
            train_split=None,
            device=self.device,
            verbose=self.verbose,
            # PrintLog formats its table every epoch even when silent.
            **({} if self.verbose else {"callbacks__print_log": None}),
        )
        self.net_.fit(X, y)
        self.module_ = self.net_.module_
        return self


class SkorchMLPClassifier(ClassifierMixin, _SkorchMLPBase):
    """A small MLP classifier trained from scratch with skorch.

    A :class:`skorch.NeuralNetClassifier` around ``Linear -> activation`` hidden
    layers and a linear head with one output per class, trained with Adam on the
    cross-entropy, full batch by default. Sized for few-shot support sets: with
    5 to 50 samples, ``max_epochs=100`` full-batch steps at ``lr=0.01`` fit them.
    Labels may be anything scikit-learn accepts (strings included).

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(40, 40)
        Widths of the hidden layers.
    activation : {"relu", "tanh", "gelu"}, default="relu"
    lr : float, default=0.01
        Adam learning rate.
    max_epochs : int, default=100
        Passes over the training data (one Adam step each, full batch).
    batch_size : int, default=None
        Mini-batch size; None trains on the full batch.
    device : str, default="cpu"
        Torch device, e.g. "cuda".
    verbose : int, default=0
        The skorch net's verbosity: 1 prints its epoch table.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights (and the mini-batch order).

    Attributes
    ----------
    classes_ : ndarray
        The class labels.
    net_ : skorch.NeuralNetClassifier
        The fitted skorch net; ``net_.history`` holds the training loss.
    module_ : torch.nn.Module
        The trained network (outputs logits in the order of ``classes_``).
    n_features_in_ : int

    See Also
    --------
    SkorchMLPRegressor : The same network for regression.
    sklearn.neural_network.MLPClassifier : Scikit-learn's own MLP.

    Examples
    --------
    >>> import numpy as np
    >>> from sklmeta.baselines import SkorchMLPClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = rng.standard_normal((10, 4))
    >>> y = np.array(["a", "b"] * 5)
    >>> X[y == "b"] += 2.0
    >>> clf = SkorchMLPClassifier(max_epochs=50, random_state=0).fit(X, y)
    >>> clf.predict(X[:4]).tolist()
    ['a', 'b', 'a', 'b']
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """

    _net_class = NeuralNetClassifier
    _criterion = torch.nn.CrossEntropyLoss

    def fit(self, X, y):
        """Train a fresh network on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, typically one episode's support set.
        y : array-like of shape (n_samples,)
            Class labels, of any type scikit-learn accepts.

        Returns
        -------
        self : SkorchMLPClassifier
            The fitted classifier.
        """
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        return self._fit(X, y_enc.astype(np.int64), n_outputs=len(self.classes_))

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to classify.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            The softmax of the network's logits.
        """
        check_is_fitted(self, "net_")
        X = validate_data(self, X, reset=False, dtype=np.float32)
        return self.net_.predict_proba(X)

    def predict(self, X):
        """The most probable class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to classify.

        Returns
        -------
        ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]


class SkorchMLPRegressor(RegressorMixin, _SkorchMLPBase):
    """A small MLP regressor trained from scratch with skorch.

    A :class:`skorch.NeuralNetRegressor` around ``Linear -> activation`` hidden
    layers and one linear output, trained with Adam on the squared error, full
    batch by default. On a few-shot support set it is the "no meta-learning"
    baseline; fit on the pooled data of many tasks (with ``batch_size`` set) it
    is the pretrained network that :class:`FineTunedRegressor` starts from.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(40, 40)
        Widths of the hidden layers.
    activation : {"relu", "tanh", "gelu"}, default="relu"
    lr : float, default=0.01
        Adam learning rate.
    max_epochs : int, default=100
        Passes over the training data.
    batch_size : int, default=None
        Mini-batch size; None trains on the full batch (one step per epoch).
    device : str, default="cpu"
        Torch device, e.g. "cuda".
    verbose : int, default=0
        The skorch net's verbosity: 1 prints its epoch table.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights (and the mini-batch order).

    Attributes
    ----------
    net_ : skorch.NeuralNetRegressor
        The fitted skorch net; ``net_.history`` holds the training loss.
    module_ : torch.nn.Module
        The trained network, mapping ``[n, n_features]`` to ``[n, 1]``.
    n_features_in_ : int

    See Also
    --------
    SkorchMLPClassifier : The same network for classification.
    FineTunedRegressor : Fine-tunes a pretrained network on each support set.

    Examples
    --------
    >>> import numpy as np
    >>> from sklmeta.baselines import SkorchMLPRegressor
    >>> X = np.linspace(-1, 1, 20)[:, None]
    >>> reg = SkorchMLPRegressor(max_epochs=200, random_state=0).fit(X, 2 * X[:, 0])
    >>> bool(reg.score(X, 2 * X[:, 0]) > 0.9)
    True
    """

    _net_class = NeuralNetRegressor
    _criterion = torch.nn.MSELoss

    def fit(self, X, y):
        """Train a fresh network on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data: one episode's support set, or the pooled data of
            many tasks.
        y : array-like of shape (n_samples,)
            Numeric targets.

        Returns
        -------
        self : SkorchMLPRegressor
            The fitted regressor.
        """
        X, y = validate_data(self, X, y, dtype=np.float32, y_numeric=True)
        return self._fit(X, y.astype(np.float32).reshape(-1, 1), n_outputs=1)

    def predict(self, X):
        """Predicted targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to predict.

        Returns
        -------
        ndarray of shape (n_samples,)
            The network's output, as float64.
        """
        check_is_fitted(self, "net_")
        X = validate_data(self, X, reset=False, dtype=np.float32)
        return self.net_.predict(X)[:, 0].astype(np.float64)


class FineTunedRegressor(DocLinkMixin, RegressorMixin, BaseEstimator):
    """Fine-tune a pretrained network on a (small) training set with a few SGD steps.

    ``fit(X, y)`` deep-copies ``module`` and takes ``n_steps`` full-batch SGD
    steps on the squared error of ``(X, y)``; ``module`` itself is never changed.
    With a network pretrained on the pooled data of all training tasks, this is
    the baseline of the MAML paper: what transfer by pretraining achieves,
    against MAML's learned initialisation adapted by the same kind of steps.

    Parameters
    ----------
    module : torch.nn.Module
        The pretrained network, mapping ``[n, n_features]`` float32 inputs to
        ``[n, 1]`` (e.g. ``SkorchMLPRegressor(...).fit(X_pool, y_pool).module_``).
        Read only.
    lr : float, default=0.01
        SGD step size.
    n_steps : int, default=10
        SGD steps on the training set; 0 predicts with the pretrained network.
    device : str, default="cpu"
        Torch device of the fine-tuned copy.

    Attributes
    ----------
    module_ : torch.nn.Module
        The fine-tuned copy of ``module``.
    n_features_in_ : int

    See Also
    --------
    sklmeta.MAMLRegressor : Meta-learns the initialisation instead.

    References
    ----------
    Finn, Abbeel and Levine, "Model-Agnostic Meta-Learning for Fast Adaptation of
    Deep Networks", ICML 2017, section 5.1.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.base import clone
    >>> from sklmeta.baselines import FineTunedRegressor, SkorchMLPRegressor
    >>> X = np.linspace(-1, 1, 40)[:, None]
    >>> pretrained = SkorchMLPRegressor(max_epochs=50, random_state=0).fit(X, X[:, 0]).module_
    >>> reg = FineTunedRegressor(module=pretrained, lr=0.05, n_steps=20)
    >>> reg = clone(reg).fit(X[:5], X[:5, 0] + 1.0)  # a new task: shifted by 1
    >>> reg.predict(X[:2]).shape
    (2,)
    """

    def __init__(self, module, *, lr=0.01, n_steps=10, device="cpu"):
        self.module = module
        self.lr = lr
        self.n_steps = n_steps
        self.device = device

    def fit(self, X, y):
        """Fine-tune a copy of ``module`` on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, typically one episode's support set.
        y : array-like of shape (n_samples,)
            Numeric targets.

        Returns
        -------
        self : FineTunedRegressor
            The fitted regressor; ``module_`` is the fine-tuned copy.
        """
        if not isinstance(self.module, torch.nn.Module):
            raise ValueError(
                f"module must be a torch.nn.Module; got {type(self.module).__name__}."
            )
        check_positive(self.lr, "lr")
        check_int(self.n_steps, "n_steps", 0)
        X, y = validate_data(self, X, y, dtype=np.float32, y_numeric=True)
        x = torch.as_tensor(X, device=self.device)
        target = torch.as_tensor(y, dtype=torch.float32, device=self.device)
        self.module_ = copy.deepcopy(self.module).to(self.device)
        self.module_.train()
        optimizer = torch.optim.SGD(self.module_.parameters(), lr=self.lr)
        for _ in range(self.n_steps):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(self.module_(x)[:, 0], target).backward()
            optimizer.step()
        if not all(torch.isfinite(p).all() for p in self.module_.parameters()):
            raise ValueError(
                f"Fine-tuning diverged (non-finite weights after {self.n_steps} SGD steps); "
                f"use a smaller lr than {self.lr}."
            )
        self.module_.eval()
        return self

    def predict(self, X):
        """Predicted targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to predict.

        Returns
        -------
        ndarray of shape (n_samples,)
            The fine-tuned network's output, as float64.
        """
        check_is_fitted(self, "module_")
        X = validate_data(self, X, reset=False, dtype=np.float32)
        with torch.no_grad():
            out = self.module_(torch.as_tensor(X, device=self.device))
        return out[:, 0].cpu().numpy().astype(np.float64)
