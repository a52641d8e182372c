"""Parameter checks shared by the splitter, the estimators and the baselines."""

import numbers

import numpy as np


def check_int(value, name, minimum=1):
    """``value`` is an integer (not a bool) >= ``minimum``, or a ValueError naming it."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return value


def check_positive(value, name):
    """``value`` is a real number (not a bool) > 0, or a ValueError naming it."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{name} must be a positive number; got {value!r}.")
    return value


def check_hidden_layer_sizes(sizes):
    """``sizes`` is a tuple or list of positive integers, or a ValueError."""
    if not isinstance(sizes, (tuple, list)) or not all(
        isinstance(h, numbers.Integral) and not isinstance(h, bool) and h > 0 for h in sizes
    ):
        raise ValueError(f"hidden_layer_sizes must be a tuple of positive integers; got {sizes!r}.")
    return sizes


def unique_labels(values, name="y"):
    """``np.unique(values, return_inverse=True)``, or a ValueError naming ``name``.

    numpy cannot sort labels of different types (``[1, "a"]`` in an object array,
    or ``None`` among strings) and raises a bare TypeError from deep inside; this
    says which input mixes which types instead.
    """
    try:
        return np.unique(values, return_inverse=True)
    except TypeError:
        types = sorted({type(v).__name__ for v in np.asarray(values, dtype=object).ravel()})
        raise ValueError(
            f"{name} has labels of mixed types ({', '.join(types)}) that cannot be sorted; "
            "use labels of a single type (all int or all str)."
        ) from None
