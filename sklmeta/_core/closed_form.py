"""Closed-form adaptation: a ridge-regression head (R2-D2) and an exact GP (DKT).

Both meta-learn an embedding ``f`` and a few positive hyperparameters, and
adapt by solving a small linear system on the support embeddings instead of
taking gradient steps; the meta-gradient flows through the (Cholesky) solve.
Inputs are task-first, ``[task, shot, feature]``, as everywhere in the core.

- :class:`Ridge` (Bertinetto, Henriques, Torr and Vedaldi, ICLR 2019): the head
  is ``W = Z^T (Z Z^T + lambda I)^-1 Y`` (the Woodbury form: an ``S x S`` system
  for ``S`` support rows, whatever the embedding width). A classifier regresses
  the one-hot labels and maps ``Z_q W`` to logits with a learned scale and bias,
  plus a learned multiple of minus the squared distance to each class's mean
  support embedding, for any number of classes. A regressor predicts ``Z_q W`` and, reading ridge as
  the posterior mean of Bayesian linear regression (prior precision ``lambda``
  relative to the noise), a predictive standard deviation.
- :class:`DeepKernelGP` (Patacchiola, Turner, Crowley, O'Boyle and Storkey,
  NeurIPS 2020): a Gaussian process with a base kernel on ``f(x)``, meta-trained
  on the negative log marginal likelihood of each task's rows (support and query
  together); adapting is exact GP conditioning on the support set.

An adapted regressor is ``GaussianPredictor(f)`` with per-task buffers (the
support embeddings, ``alpha = K^-1 (y - m)``, the Cholesky factor of ``K`` and
the kernel's hyperparameters): its output is ``[n, 2]``, the predictive mean and
standard deviation of ``y`` (noise included); ``forward(x, full_cov=True)``
gives the joint predictive mean and covariance. The ridge regressor is that
same predictor with a linear kernel.

Both regressors calibrate that predictive distribution after meta-training
(``calibrate`` of :class:`_IntervalCalibration`, run by ``fit`` on the held-out
meta-validation episodes): :func:`interval_scale` of the standardised query
residuals is the factor ``std_scale`` their ``adapt`` then puts on every
predictive std, through the kernel's variances, so the mean is unchanged.
"""

import copy
import math
from statistics import NormalDist

import numpy as np
import torch
import torch.nn.functional as F

from . import FunctionalInnerLoop, select_inner_loop
from .algorithms import Learner, QueryObjective

__all__ = ["INTERVAL_LEVEL", "KERNELS", "ClosedFormLearner", "DeepKernelGP",
           "GaussianPredictor", "Ridge", "calibrated_std_scale", "condition", "gp_nll",
           "interval_scale", "kernel_matrix", "ridge_weights"]

KERNELS = ("rbf", "matern52", "linear")
JITTER = 1e-6  # added to the diagonal of K before its Cholesky factor (scikit-learn's alpha)
NOISE_FLOOR = 1e-4  # the smallest GP noise variance (gpytorch's GaussianLikelihood's)
HYPER_LR_SCALE = 10.0  # how much faster than the embedding DKT's kernel hyperparameters learn
INTERVAL_LEVEL = 0.9  # the coverage the held-out calibration of the predictive std matches
LOGIT_SCALE_START = 10.0  # the ridge classifier's initial logit scale (MetaOptNet's R2-D2 head: 1)


class ClosedFormLearner(Learner):
    """The embedding and a few scalar meta-parameters, in one module.

    Parameters
    ----------
    net : torch.nn.Module
        The embedding ``f``.
    n_features : int
        Input width of ``net``.
    hyper : dict of str to float
        Initial values of the unconstrained scalar meta-parameters.
    """

    def __init__(self, net, n_features, hyper):
        super().__init__(net, n_features, inner_loop=select_inner_loop(net))
        self.hyper = torch.nn.ParameterDict(
            {k: torch.nn.Parameter(torch.full((), float(v))) for k, v in hyper.items()})

    def embed(self, x):
        """Embeddings ``[T, n, E]`` of task-first inputs, through one forward pass."""
        return self(x.flatten(0, 1)).unflatten(0, x.shape[:2])

    def embedding_width(self):
        with torch.no_grad():
            device = next(self.parameters()).device
            return self(torch.zeros(1, self.n_features, device=device)).shape[-1]

    def expanded_params(self, n, prefix):
        """The embedding's parameters, detached, with a task axis of ``n``."""
        return {f"{prefix}{k}": v.detach().expand(n, *v.shape) for k, v in self.params().items()}


# ------------------------------------------------------------------ the solvers
def _cholesky(matrix, what):
    chol, info = torch.linalg.cholesky_ex(matrix)
    if bool((info != 0).any()):
        raise FloatingPointError(
            f"The {what} is not positive definite in {matrix.dtype} (its Cholesky "
            "factorisation failed): the embeddings or the hyperparameters have blown up. "
            "Lower meta_lr, or rescale the inputs (standardize=True).")
    return chol


def ridge_weights(z, y, lam):
    """The ridge head ``W = Z^T (Z Z^T + lambda I)^-1 Y`` of each task, differentiably.

    Parameters
    ----------
    z : Tensor [T, S, E]
        Support embeddings.
    y : Tensor [T, S, C]
        Targets (one-hot labels, or real targets with ``C = 1``).
    lam : Tensor, scalar
        The penalty (positive).

    Returns
    -------
    Tensor [T, E, C]
        The minimiser of ``||Z W - Y||^2 + lambda ||W||^2``, through an ``S x S``
        Cholesky solve.
    """
    gram = z @ z.transpose(1, 2)
    eye = torch.eye(z.shape[1], dtype=z.dtype, device=z.device)
    chol = _cholesky(gram + lam * eye, "ridge system Z Z^T + lambda I")
    return z.transpose(1, 2) @ torch.cholesky_solve(y, chol)


def _sq_dist(a, b):
    # exact differences, not |a|^2 + |b|^2 - 2ab: no cancellation, zero on the diagonal
    return (a.unsqueeze(-2) - b.unsqueeze(-3)).pow(2).sum(-1)


def kernel_matrix(kernel, a, b, lengthscale, outputscale):
    """``k(a_i, b_j)`` for ``a [..., n, E]``, ``b [..., m, E]``: ``[..., n, m]``.

    ``rbf``: ``s exp(-d^2 / (2 l^2))``; ``matern52``: ``s (1 + sqrt5 d/l + 5 d^2 /
    (3 l^2)) exp(-sqrt5 d/l)``; ``linear``: ``s a.b`` (``l`` unused). ``s`` is the
    output scale (a variance); ``lengthscale`` and ``outputscale`` broadcast
    against the leading dimensions.
    """
    if kernel == "linear":
        return _bcast(outputscale, a) * (a @ b.transpose(-1, -2))
    d2 = _sq_dist(a, b) / _bcast(lengthscale, a) ** 2
    if kernel == "rbf":
        k = torch.exp(-0.5 * d2)
    elif kernel == "matern52":
        # clamped before the root: its gradient at d = 0 is zero, not infinite
        d = torch.sqrt(5 * d2.clamp(min=1e-30))
        k = (1 + d + d**2 / 3) * torch.exp(-d)
    else:
        raise ValueError(f"kernel must be one of {KERNELS}; got {kernel!r}.")
    return _bcast(outputscale, a) * k


def _kernel_diag(kernel, a, outputscale):
    s = _bcast(outputscale, a[..., 0])
    if kernel == "linear":
        return s * a.pow(2).sum(-1)
    return s.expand(a.shape[:-1])


def _bcast(v, like):
    """A scalar, or one value per task ``[T]``, shaped to broadcast against ``like``."""
    v = (v.to(like.dtype) if torch.is_tensor(v)
         else torch.tensor(v, dtype=like.dtype, device=like.device))
    return v.reshape(v.shape + (1,) * (like.dim() - v.dim())) if v.dim() else v


def gp_nll(kernel, z, y, *, lengthscale, outputscale, noise, mean, jitter=JITTER):
    """Negative log marginal likelihood of each task, ``[T]``.

    ``-log N(y | m, K + (noise + jitter) I)`` with ``K = k(z, z)``:
    ``0.5 (y - m)^T K^-1 (y - m) + sum log diag L + n/2 log 2 pi``.
    """
    n = z.shape[-2]
    chol, alpha, r = _factor(kernel, z, y, lengthscale, outputscale, noise, mean, jitter)
    logdet = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    return 0.5 * (r * alpha).sum(-1) + logdet + 0.5 * n * math.log(2 * math.pi)


def _factor(kernel, z, y, lengthscale, outputscale, noise, mean, jitter):
    k = kernel_matrix(kernel, z, z, lengthscale, outputscale)
    eye = torch.eye(z.shape[-2], dtype=z.dtype, device=z.device)
    chol = _cholesky(k + (_bcast(noise, k) + jitter) * eye, "kernel matrix K + noise I")
    r = y - _bcast(mean, y)
    alpha = torch.cholesky_solve(r.unsqueeze(-1), chol).squeeze(-1)
    return chol, alpha, r


def condition(kernel, z, y, *, lengthscale, outputscale, noise, mean, jitter=JITTER):
    """Exact GP conditioning on support sets: the buffers of a :class:`GaussianPredictor`.

    Parameters
    ----------
    kernel : str
    z : Tensor [T, S, E]
        Support embeddings.
    y : Tensor [T, S]
        Support targets.
    lengthscale, outputscale, noise, mean : Tensor, scalar or [T]

    Returns
    -------
    dict of str to Tensor, each with a leading task axis
    """
    chol, alpha, _ = _factor(kernel, z, y, lengthscale, outputscale, noise, mean, jitter)
    t = len(z)

    def per_task(v):
        v = torch.as_tensor(v, dtype=z.dtype, device=z.device)
        return v.expand(t) if v.dim() == 0 else v

    # contiguous: Cholesky factors come column-major, and sklmeta.save stores row-major
    return {"support": z.contiguous(), "alpha": alpha, "chol": chol.contiguous(),
            "lengthscale": per_task(lengthscale), "outputscale": per_task(outputscale),
            "noise": per_task(noise), "mean": per_task(mean)}


def _predictive(kernel, zq, support, alpha, chol, lengthscale, outputscale, noise, mean,
                full_cov=False):
    """Predictive mean ``[..., n]`` and variance of y (``[..., n]``, or ``[..., n, n]``)."""
    ks = kernel_matrix(kernel, zq, support, lengthscale, outputscale)  # [..., n, S]
    mu = (ks @ alpha.unsqueeze(-1)).squeeze(-1) + _bcast(mean, zq[..., 0])
    v = torch.linalg.solve_triangular(chol, ks.transpose(-1, -2), upper=False)  # [..., S, n]
    if full_cov:
        eye = torch.eye(zq.shape[-2], dtype=zq.dtype, device=zq.device)
        kqq = kernel_matrix(kernel, zq, zq, lengthscale, outputscale)
        return mu, kqq + _bcast(noise, kqq) * eye - v.transpose(-1, -2) @ v
    var = _kernel_diag(kernel, zq, outputscale) + _bcast(noise, zq[..., 0]) - v.pow(2).sum(-2)
    return mu, var


class GaussianPredictor(torch.nn.Module):
    """An adapted Gaussian regressor: the embedding, then GP prediction from buffers.

    ``forward(x)`` is ``[n, 2]``: the predictive mean and standard deviation of
    ``y`` at ``x`` (the noise variance included), as scikit-learn's
    ``GaussianProcessRegressor`` gives them with a ``WhiteKernel``.
    ``forward(x, full_cov=True)`` is the joint predictive ``(mean [n], cov [n, n])``.
    The buffers here are placeholders: the adapted ones replace them through
    ``functional_call``.
    """

    joint_predictive = True

    def __init__(self, net, kernel, width):
        super().__init__()
        self.net, self.kernel = net, kernel
        self.register_buffer("support", torch.zeros(1, width))
        self.register_buffer("alpha", torch.zeros(1))
        self.register_buffer("chol", torch.ones(1, 1))
        for name in ("lengthscale", "outputscale", "noise"):
            self.register_buffer(name, torch.ones(()))
        self.register_buffer("mean", torch.zeros(()))

    def forward(self, x, full_cov=False):
        z = self.net(x).to(self.support.dtype)
        mu, var = _predictive(self.kernel, z, self.support, self.alpha, self.chol,
                              self.lengthscale, self.outputscale, self.noise, self.mean,
                              full_cov=full_cov)
        if full_cov:
            return mu, var
        return torch.stack([mu, var.clamp(min=0).sqrt()], dim=-1)


def _gaussian_predictor(learner, kernel):
    module = GaussianPredictor(learner.net, kernel, learner.embedding_width())
    return module, FunctionalInnerLoop(module)


def _check_finite(params):
    if not all(torch.isfinite(v).all() for v in params.values()):
        raise FloatingPointError(
            "Adaptation diverged: the adapted parameters are not finite. Rescale the "
            "inputs (standardize=True).")
    return params


def _n_way(loss, ys):
    return loss.n_classes if loss.n_classes is not None else int(ys.max()) + 1


# ------------------------------------------------- calibrating the predictive std
def interval_scale(z, level=INTERVAL_LEVEL, n_units=None):
    """The factor on a predictive std that makes ``mean +/- q std`` cover ``level``.

    ``z`` are the standardised absolute residuals ``|y - mean| / std`` of
    held-out rows and ``q`` the two-sided normal quantile of ``level`` (1.645
    for 0.9). The factor is the smallest ``s`` at which the share of ``z``
    within ``q s`` is at least ``level (m + 1) / m``, capped at 1, for ``m``
    exchangeable units: the ``ceil(n level (m + 1) / m)``-th smallest of the
    ``n`` values of ``z``, divided by ``q``. With rows as the units (``m = n``,
    the default) this is split conformal prediction's quantile, the
    ``ceil((n + 1) level)``-th smallest. With ``m`` held-out tasks, each giving
    as many rows (rows of one task are not exchangeable with another's), it is
    conformal risk control (Angelopoulos, Bates, Fisch, Lei and Schuster,
    ICLR 2024) of the share of a task's rows left outside: a fresh task
    exchangeable with the held-out ones then has on average at least
    ``level`` of its rows inside. 1 for Gaussian residuals whose std is right
    and many units.

    Parameters
    ----------
    z : array-like of shape (n,)
        Non-negative standardised residuals, at least one, all finite.
    level : float, default=0.9
        The coverage to match, in (0, 1).
    n_units : int, default=None
        ``m``, the exchangeable units ``z`` comes from, in equal shares; None
        means ``n`` (every row its own).

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> z = np.abs(np.random.RandomState(0).normal(scale=2.0, size=100_000))
    >>> round(interval_scale(z), 2)  # the std was half the residuals' spread
    2.0
    """
    z = np.asarray(z, dtype=np.float64).ravel()
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}.")
    if len(z) == 0 or not np.isfinite(z).all() or (z < 0).any():
        raise ValueError("interval_scale needs at least one standardised residual, all "
                         "finite and non-negative.")
    m = len(z) if n_units is None else int(n_units)
    if m < 1:
        raise ValueError(f"n_units must be at least 1; got {n_units!r}.")
    # ceil of n * level * (m + 1) / m, computed in integers where m divides n (no rounding up
    # of 9.000000000000002 to 10)
    share = min(1.0, level * (m + 1) / m)
    rank = min(len(z), max(1, math.ceil(round(len(z) * share, 9))))
    q = NormalDist().inv_cdf(0.5 + level / 2)
    return float(np.partition(z, rank - 1)[rank - 1] / q)


def calibrated_std_scale(est):
    """The factor an estimator's ``adapt`` puts on the predictive std: ``std_scale_``, or 1.

    ``std_scale_`` when ``est.calibrate`` is True and ``est`` is fitted (a file
    saved before ``std_scale_`` existed has none: 1). ``calibrate`` is checked
    here too, as ``adapt`` reads it.
    """
    if not isinstance(est.calibrate, (bool, np.bool_)):
        raise TypeError(f"The 'calibrate' parameter of {type(est).__name__} must be a bool; "
                        f"got {est.calibrate!r}.")
    return float(getattr(est, "std_scale_", 1.0)) if est.calibrate else 1.0


def _positive_scale(value):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"std_scale must be a positive finite number; got {value!r}.")
    return float(value)


class _IntervalCalibration:
    """The held-out calibration of a Gaussian regressor's predictive std.

    A strategy with ``std_scale`` (the factor its ``adapt`` puts on every
    predictive std; 1 until calibrated) and ``adapt``/``predictor`` giving a
    :class:`GaussianPredictor`. :meth:`calibrate` adapts to held-out episodes'
    support sets exactly as ``adapt`` does, predicts their query rows, and
    returns :func:`interval_scale` of their standardised residuals.
    """

    std_scale = 1.0

    def calibrate(self, learner, episodes, *, loss, n_units=None):
        """``{"std_scale_": factor}`` from held-out episodes (1.0 when there are none).

        Parameters
        ----------
        learner : ClosedFormLearner
        episodes : iterable of (xs, ys, xq, yq) tensors, task-first, or None
            Episodes of one shape.
        loss : EpisodeLoss
        n_units : int, default=None
            The held-out tasks the episodes come from (:func:`interval_scale`'s
            ``n_units``); None: the episodes are the exchangeable units.
        """
        if episodes is None:
            return {"std_scale_": 1.0}
        raw = copy.copy(self)
        raw.std_scale = 1.0  # the residuals of the std as meta-learned
        _, loop = raw.predictor(learner)
        z, n_episodes = [], 0
        with torch.no_grad():
            for xs, ys, xq, yq in episodes:
                out = loop.predict_many(raw.adapt(learner, xs, ys, loss=loss), xq).double()
                resid = (yq.to(out.dtype) - out[..., 0]).abs()
                z.append((resid / out[..., 1].clamp(min=1e-150)).flatten().cpu().numpy())
                n_episodes += len(xs)
        if not z:
            return {"std_scale_": 1.0}
        # more held-out tasks than episodes: each episode is a unit of its own
        units = min(n_units, n_episodes) if n_units else n_episodes
        return {"std_scale_": interval_scale(np.concatenate(z), n_units=units)}


# --------------------------------------------------------------- the strategies
class Ridge(_IntervalCalibration, QueryObjective):
    """R2-D2: a meta-learned embedding with a closed-form ridge-regression head.

    Meta-learned: the embedding, the penalty ``lambda = exp(log_lambda)``
    (initially 1) and, for classification, the output scale and bias that map
    the ridge outputs to logits and the weight ``g`` of a nearest-class-mean
    term (``logits = scale * Z_q W + bias - g |z_q - mu_c|^2``, ``mu_c`` the
    class's mean support embedding; initially :data:`LOGIT_SCALE_START` (10), 0
    and 0: MetaOptNet's R2-D2 head starts the scale at 1, which on the leaves
    had only reached 4-5 when early stopping ended the fits). Like DKT's
    hyperparameters the penalty, scale and bias learn :data:`HYPER_LR_SCALE`
    times faster than the embedding (stored divided by it): at ``meta_lr`` per
    Adam step, 2,000 steps could move ``log_lambda`` by at most 2; ``g`` learns
    at the embedding's rate. The meta-loss is the query loss
    (cross-entropy, or squared error), back-propagated through the solve.

    A regressor's predictive standard deviation reads ridge as Bayesian linear
    regression on the embedding: ``w ~ N(0, sigma^2 / lambda I)``, noise
    ``sigma^2``. The noise variance is estimated from each support set by
    maximum marginal likelihood given ``lambda``, in closed form:
    ``sigma^2 = lambda y^T (Z Z^T + lambda I)^-1 y / S``. The predictive variance
    is then ``sigma^2 (1 + (|z|^2 - k^T (Z Z^T + lambda I)^-1 k) / lambda)``,
    ``k = Z z``: a GP with the linear kernel ``sigma^2 / lambda z.z'``. A
    regressor's ``adapt`` multiplies ``sigma^2`` by ``std_scale ** 2``
    (``std_scale_``, measured by :meth:`calibrate` on held-out episodes): the
    mean is unchanged, every std scaled by ``std_scale``.

    Parameters
    ----------
    task : {"classification", "regression"}
    std_scale : float, default=1.0
        A regressor's factor on the predictive std at ``adapt``.
    """

    optimizer = torch.optim.Adam
    any_number_of_classes = True

    def __init__(self, task, std_scale=1.0):
        if task not in ("classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression'; got {task!r}")
        self.task, self.std_scale = task, _positive_scale(std_scale)

    def calibrate(self, learner, episodes, *, loss, n_units=None):
        """A regressor's ``{"std_scale_": factor}`` (see :class:`_IntervalCalibration`)."""
        if self.task == "classification":
            return {}
        return super().calibrate(learner, episodes, loss=loss, n_units=n_units)

    def learner(self, net, n_features):
        hyper = {"log_lambda": 0.0}
        if self.task == "classification":
            # the centroid weight learns at the embedding's rate: at ten times it
            # grows, at 5 shots, past what the unseen classes reward
            hyper.update(scale=LOGIT_SCALE_START / HYPER_LR_SCALE, bias=0.0,
                         centroid_weight=0.0)
        return ClosedFormLearner(net, n_features, hyper)

    def _head(self, learner, zs, ys, lam, loss):
        """A classifier's linear head of each task: logits ``zq @ w + b``.

        ``w [T, E, C]`` is the scaled ridge solution plus ``2 g mu_c`` and ``b
        [T, C]`` the bias minus ``g |mu_c|^2``, ``mu_c`` the class's mean support
        embedding: the ridge logits plus ``-g |zq - mu_c|^2`` up to its
        class-independent ``-g |zq|^2``, which softmax ignores.
        """
        y = self._targets(ys, loss, zs.dtype)
        scale = HYPER_LR_SCALE * learner.hyper["scale"].to(zs.dtype)
        bias = HYPER_LR_SCALE * learner.hyper["bias"].to(zs.dtype)
        g = learner.hyper["centroid_weight"].to(zs.dtype)
        # a class absent from a support set (adapt with more labels) has mu_c = 0
        mu = (y.transpose(1, 2) @ zs) / y.sum(1).clamp(min=1).unsqueeze(-1)  # [T, C, E]
        w = scale * ridge_weights(zs, y, lam) + 2 * g * mu.transpose(1, 2)
        return w, bias - g * mu.pow(2).sum(-1)

    @staticmethod
    def penalty(learner):
        return (HYPER_LR_SCALE * learner.hyper["log_lambda"]).exp()

    def _targets(self, ys, loss, dtype):
        if self.task == "classification":
            return F.one_hot(ys, _n_way(loss, ys)).to(dtype)
        return ys.unsqueeze(-1).to(dtype)

    def query_outputs(self, learner, xs, ys, xq, *, loss, training):
        zs, zq = learner.embed(xs), learner.embed(xq)
        lam = self.penalty(learner)
        if self.task == "classification":
            w, b = self._head(learner, zs, ys, lam, loss)
            return zq @ w + b.unsqueeze(1)
        w = ridge_weights(zs, self._targets(ys, loss, zs.dtype), lam)
        out = zq @ w
        if training:
            return out
        mu, var = _predictive("linear", zq, **self._bayes(zs, ys, lam))
        return torch.stack([mu, var.clamp(min=0).sqrt()], dim=-1)

    @staticmethod
    def _bayes(zs, ys, lam, variance_scale=1.0):
        """The GP-form buffers of the Bayesian reading, the noise estimated from ``ys``.

        ``variance_scale`` multiplies the noise and prior variances (the
        predictive covariance; the mean does not change).
        """
        n = zs.shape[1]
        lam = lam.to(zs.dtype)
        gram = zs @ zs.transpose(1, 2) + lam * torch.eye(n, dtype=zs.dtype, device=zs.device)
        a = torch.cholesky_solve(ys.to(zs.dtype).unsqueeze(-1),
                                 _cholesky(gram, "ridge system Z Z^T + lambda I")).squeeze(-1)
        # maximum marginal likelihood of sigma^2 given lambda; floored so that an
        # exactly fitted support set (y = 0) still gives a positive-definite system
        sigma2 = variance_scale * (lam * (ys.to(zs.dtype) * a).sum(-1) / n).clamp(min=1e-12)
        return condition("linear", zs, ys.to(zs.dtype), lengthscale=torch.ones_like(sigma2),
                         outputscale=sigma2 / lam, noise=sigma2, mean=torch.zeros_like(sigma2),
                         jitter=0.0)

    def adapt(self, learner, xs, ys, *, loss):
        with torch.no_grad():
            zs = learner.embed(xs).double()
            lam = self.penalty(learner).double()
            n = len(xs)
            if self.task == "regression":
                buffers = self._bayes(zs, ys.double(), lam, self.std_scale ** 2)
                return _check_finite({**learner.expanded_params(n, "net."), **buffers})
            w, b = self._head(learner, zs, ys, lam, loss)  # [T, E, C], [T, C]
            # solved in float64, stored in the embedding's dtype (its outputs meet them)
            dtype = learner.hyper["scale"].dtype
            head = {"1.weight": w.transpose(1, 2).to(dtype).contiguous(),
                    "1.bias": b.to(dtype).contiguous()}
        return _check_finite({**learner.expanded_params(n, "0."), **head})

    def predictor(self, learner):
        if self.task == "regression":
            return _gaussian_predictor(learner, "linear")
        # a placeholder head: the adapted parameters (one row per class) replace it
        module = torch.nn.Sequential(learner.net,
                                     torch.nn.Linear(learner.embedding_width(), 1))
        return module, FunctionalInnerLoop(module)

    def fitted_attributes(self, learner):
        values = {"ridge_lambda_": self.penalty(learner).detach().item()}
        if self.task == "classification":
            values.update(logit_scale_=HYPER_LR_SCALE * learner.hyper["scale"].detach().item(),
                          logit_bias_=HYPER_LR_SCALE * learner.hyper["bias"].detach().item(),
                          centroid_weight_=learner.hyper["centroid_weight"].detach().item())
        return values


class DeepKernelGP(_IntervalCalibration):
    """Deep Kernel Transfer: a GP whose kernel acts on a meta-learned embedding.

    Meta-learned with the embedding: the kernel's length scale and output scale,
    the noise variance and a constant mean (the length scale, output scale and
    noise through softplus, the noise at least ``1e-4``; initially 0.69, 0.69,
    0.69 and 0, gpytorch's defaults, which DKT uses). These four scalars learn
    :data:`HYPER_LR_SCALE` (10) times faster than the embedding: they are stored
    divided by it (Adam's steps do not depend on the scale of a gradient, so
    ``softplus(10 r)`` moves ten times as fast as ``softplus(r)``). At one
    learning rate for all, Adam moves each raw value by about ``meta_lr`` a step:
    2,000 steps at ``1e-3`` cannot take the noise variance from its start of 0.69
    (in units of the standardised target) down to the few hundredths that the
    tasks' residuals call for, which inflated the intervals and the smoothing.
    The meta-loss is the mean over the tasks of a meta-batch of the negative log
    marginal likelihood of the task's rows (support and query together),
    divided by their number (as gpytorch's ``ExactMarginalLogLikelihood``).
    Validation and adaptation condition on the support set only.

    ``adapt`` multiplies the output scale, the noise variance (and the jitter)
    by ``std_scale ** 2``: the posterior mean is unchanged and the predictive
    covariance, so every std and ``sample_y``'s draws, is scaled by
    ``std_scale`` (``std_scale_``, measured by :meth:`calibrate` on held-out
    episodes after meta-training).

    Parameters
    ----------
    kernel : {"rbf", "matern52", "linear"}
    std_scale : float, default=1.0
        The factor on the predictive std at ``adapt``.
    """

    optimizer = torch.optim.Adam

    def __init__(self, kernel="rbf", std_scale=1.0):
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}; got {kernel!r}.")
        self.kernel, self.std_scale = kernel, _positive_scale(std_scale)

    def learner(self, net, n_features):
        hyper = {"raw_lengthscale": 0.0, "raw_outputscale": 0.0, "raw_noise": 0.0,
                 "mean": 0.0}
        return ClosedFormLearner(net, n_features, hyper)

    @staticmethod
    def hyperparameters(learner):
        """The positive hyperparameters: ``{lengthscale, outputscale, noise, mean}``."""
        h, c = learner.hyper, HYPER_LR_SCALE
        return {"lengthscale": F.softplus(c * h["raw_lengthscale"]),
                "outputscale": F.softplus(c * h["raw_outputscale"]),
                "noise": NOISE_FLOOR + F.softplus(c * h["raw_noise"]), "mean": c * h["mean"]}

    def query_outputs(self, learner, xs, ys, xq, *, loss, training):
        zs, zq = learner.embed(xs), learner.embed(xq)
        mu, var = _predictive(self.kernel, zq, **condition(
            self.kernel, zs, ys.to(zs.dtype), **self.hyperparameters(learner)))
        return torch.stack([mu, var.clamp(min=0).sqrt()], dim=-1)

    def meta_loss(self, learner, xs, ys, xq, yq, *, loss):
        x, y = torch.cat([xs, xq], dim=1), torch.cat([ys, yq], dim=1)
        z = learner.embed(x)
        hyper = self.hyperparameters(learner)
        nll = gp_nll(self.kernel, z, y.to(z.dtype), **hyper).mean() / x.shape[1]
        with torch.no_grad():  # what skorch records as y_pred: the query given the support
            s = xs.shape[1]
            mu, var = _predictive(self.kernel, z[:, s:], **condition(
                self.kernel, z[:, :s], ys.to(z.dtype), **hyper))
            out = torch.stack([mu, var.clamp(min=0).sqrt()], dim=-1)
        return nll, nll.detach(), out

    def adapt(self, learner, xs, ys, *, loss):
        with torch.no_grad():
            zs = learner.embed(xs).double()
            hyper = {k: v.double() for k, v in self.hyperparameters(learner).items()}
            c = self.std_scale ** 2  # the covariance's factor; the mean stays as it is
            hyper.update(outputscale=c * hyper["outputscale"], noise=c * hyper["noise"])
            buffers = condition(self.kernel, zs, ys.double(), **hyper, jitter=c * JITTER)
        return _check_finite({**learner.expanded_params(len(xs), "net."), **buffers})

    def predictor(self, learner):
        return _gaussian_predictor(learner, self.kernel)

    def fitted_attributes(self, learner):
        names = {"lengthscale": "lengthscale_", "outputscale": "outputscale_",
                 "noise": "noise_", "mean": "constant_mean_"}
        return {names[k]: v.detach().item() for k, v in self.hyperparameters(learner).items()}
