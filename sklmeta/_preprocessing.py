"""Standardising, padding, tensors and target checks: what every path does to data."""

import numpy as np
import torch

__all__ = ["FLOAT32_MAX", "numeric_target", "standardiser", "to_tensor"]

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
            "sklmeta computes in; rescale X or use standardize=True."
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
