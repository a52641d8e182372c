"""Standardising, padding, tensors and target checks: what every path does to data."""

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["FLOAT32_MAX", "Scaling", "numeric_target", "scale_target", "standardiser",
           "to_tensor"]

FLOAT32_MAX = float(np.finfo(np.float32).max)


def standardiser(X):
    """Column means and standard deviations (1 for a constant column), in float64."""
    X = np.asarray(X, dtype=np.float64)
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale == 0] = 1.0
    return mean, scale


def to_tensor(X, width, mean, scale, device):
    """Standardise (when ``mean`` is given) and zero-pad ``X`` to ``width`` columns.

    Standardised in float64, then checked to fit float32 (the precision of the
    networks), so huge raw values do not overflow silently into inf or NaN.
    """
    X = np.asarray(X, dtype=np.float64)
    if mean is not None:
        X = (X - mean) / scale
    if X.size and np.abs(X).max() > FLOAT32_MAX:
        raise ValueError(
            f"X has values beyond float32's range (|x| > {FLOAT32_MAX:.3g}), the precision "
            "sklmeta computes in; rescale X or keep standardize='auto' (the default)."
        )
    X = X.astype(np.float32)
    if X.shape[1] < width:
        X = np.pad(X, ((0, 0), (0, width - X.shape[1])))
    return torch.as_tensor(X, device=device)


def numeric_target(y, where=""):
    """A regressor's target as float64, or a ValueError (not torch's TypeError) naming it."""
    try:
        return np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}y of a regressor must be numeric; got {y.dtype}: {e}") from None


def _target_stats(y):
    y = np.asarray(y, dtype=np.float64)
    scale = float(y.std())
    return float(y.mean()), scale if scale > 0 else 1.0


@dataclass(frozen=True)
class Scaling:
    """How a meta-estimator scales its inputs, and a regressor its targets.

    ``mode`` is ``"global"`` (one mean and scale from all the fit data, applied to
    every task and every support set, so a task's offsets and scales stay
    information), ``"per-task"`` (each task dataset, and each support set at
    ``adapt``, standardised by its own statistics: for task datasets that differ in
    their columns) or ``False`` (the data as given).

    Attributes
    ----------
    mode : {"global", "per-task", False}
    regression : bool
        Whether targets are scaled too.
    x_mean, x_scale : ndarray or None
        The global input statistics.
    y_mean, y_scale : float or None
        The global target statistics (regressors).
    """

    mode: object
    regression: bool = False
    x_mean: object = None
    x_scale: object = None
    y_mean: object = None
    y_scale: object = None

    @classmethod
    def fit(cls, mode, Xs, ys, regression):
        """The scaling of a fit: global statistics from all its task datasets."""
        if mode != "global":
            return cls(mode, regression)
        x_mean, x_scale = standardiser(np.concatenate(Xs))
        y_mean = y_scale = None
        if regression:
            y_mean, y_scale = _target_stats(np.concatenate(ys))
        return cls(mode, regression, x_mean, x_scale, y_mean, y_scale)

    @classmethod
    def of(cls, meta, regression):
        """The scaling a fitted meta-estimator was trained with (its fitted attributes)."""
        mode = getattr(meta, "standardize_", False)
        mode = "per-task" if mode is True else mode  # files saved before "global" existed
        return cls(mode, regression, getattr(meta, "x_mean_", None),
                   getattr(meta, "x_scale_", None), getattr(meta, "y_mean_", None),
                   getattr(meta, "y_scale_", None))

    def of_task(self, X, y=None):
        """``(x_mean, x_scale, y_mean, y_scale)`` of one task or support set (None: as is)."""
        if self.mode == "global":
            return self.x_mean, self.x_scale, self.y_mean, self.y_scale
        if self.mode == "per-task":
            x_mean, x_scale = standardiser(X)
            if self.regression and y is not None:
                return (x_mean, x_scale, *_target_stats(y))
            return x_mean, x_scale, None, None
        return None, None, None, None


def scale_target(y, y_mean, y_scale):
    """``y`` standardised (float64), or as given when there are no statistics."""
    y = np.asarray(y, dtype=np.float64)
    return y if y_mean is None else (y - y_mean) / y_scale
