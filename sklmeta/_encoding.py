"""How :func:`sklmeta.save` encodes parameters and fitted attributes as plain values.

NumPy arrays become a tensor (or, for strings and objects, a list) with their
dtype, a ``TaskSplitter`` its own parameters, a ``RandomState`` its state, a
scikit-learn estimator (or one of sklmeta's support learners, see
:func:`estimator_classes`) its class name, its parameters and its fitted
attributes, each encoded in turn; the rest must already be ``str``, ``int``,
``float``, ``bool``, ``None``, lists, tuples and dicts of them. :func:`decode`
inverts :func:`encode`, building estimators only of the classes
:func:`estimator_classes` names (an allow-list: a file cannot name another
callable); :func:`check_ndarrays` bounds what a file's arrays may declare before
anything is built.
"""

import functools
import math

import numpy as np
import torch
from sklearn.base import BaseEstimator

from ._safe_io import MAX_DIMS, damaged
from .tasks import TaskSplitter

__all__ = ["ESTIMATOR", "NDARRAY", "RANDOM_STATE", "SPLITTER", "check_ndarrays", "decode",
           "encode", "estimator_classes", "history_values"]

# Markers of the values stored as dicts (a user dict with these keys is not plausible).
NDARRAY, RANDOM_STATE, SPLITTER = "__ndarray__", "__random_state__", "__task_splitter__"
ESTIMATOR = "__estimator__"


@functools.cache
def estimator_classes():
    """The estimators :func:`encode` stores and :func:`decode` builds, by class name.

    scikit-learn's public estimators (``sklearn.utils.discovery.all_estimators``:
    their names are unique) and sklmeta's learners that hold only such
    estimators and plain values: :class:`~sklmeta.transfer.PerSupport` and
    :class:`~sklmeta.transfer.PooledRegressor`. sklmeta's meta-estimators are
    not here: :mod:`sklmeta.persistence` stores their networks itself.
    """
    from sklearn.utils.discovery import all_estimators

    from .transfer import PerSupport, PooledRegressor

    return {**dict(all_estimators()), "PerSupport": PerSupport,
            "PooledRegressor": PooledRegressor}


def _encode_estimator(value, where):
    params = value.get_params(deep=False)
    state = {k: v for k, v in vars(value).items() if k not in params}
    return {ESTIMATOR: type(value).__name__,
            "params": encode(params, f"{where}.get_params()"),
            "state": {k: encode(v, f"{where}.{k}") for k, v in state.items()}}


def _decode_estimator(value):
    name = value[ESTIMATOR]
    cls = estimator_classes().get(name) if isinstance(name, str) else None
    if cls is None:
        raise TypeError(f"{name!r} is not an estimator sklmeta.load builds")
    estimator = cls(**decode(value["params"]))
    for key, attribute in value["state"].items():
        if not (isinstance(key, str) and key.isidentifier() and not key.startswith("__")):
            raise TypeError(f"{name} has an attribute named {key!r}")
        setattr(estimator, key, decode(attribute))
    return estimator

def encode(value, where):
    """``value`` as tensors and plain Python values; a ValueError naming ``where`` if not."""
    if value is None:
        return value
    for plain in (bool, int, float, str):  # subclasses (np.float64, TorchVersion) to the base
        if isinstance(value, plain):
            return plain(value)
    if isinstance(value, np.generic):
        return encode(value.item(), where)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, np.ndarray):
        try:
            if value.dtype.kind not in "biuf":
                raise TypeError
            data = torch.from_numpy(np.ascontiguousarray(value)).clone()
        except TypeError:  # strings, objects (column names), dtypes torch lacks: plain values
            data = [encode(v, where) for v in value.ravel().tolist()]
        return {NDARRAY: value.dtype.str, "shape": tuple(value.shape), "data": data}
    if isinstance(value, np.random.RandomState):
        return {RANDOM_STATE: encode(value.get_state(), where)}
    if isinstance(value, TaskSplitter):
        return {SPLITTER: encode(value.get_params(deep=False), where)}
    if isinstance(value, tuple):
        return tuple(encode(v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(value, list):
        return [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {encode(k, where): encode(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, BaseEstimator) and (
            estimator_classes().get(type(value).__name__) is type(value)):
        return _encode_estimator(value, where)
    raise ValueError(
        f"sklmeta.save stores tensors, plain values and scikit-learn estimators only; {where} "
        f"is a {type(value).__name__}. Use pickle or joblib for such estimators (trusted "
        "files only)."
    )


def decode(value):
    if isinstance(value, tuple):
        return tuple(decode(v) for v in value)
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if NDARRAY in value:
        data = value["data"]
        dtype = np.dtype(value[NDARRAY])
        if isinstance(data, torch.Tensor):
            return data.numpy().astype(dtype, copy=False).reshape(value["shape"])
        out = np.empty(len(data), dtype=dtype)
        out[:] = [decode(v) for v in data]
        return out.reshape(value["shape"])
    if RANDOM_STATE in value:
        rng = np.random.RandomState()
        rng.set_state(decode(value[RANDOM_STATE]))
        return rng
    if SPLITTER in value:
        return TaskSplitter(**decode(value[SPLITTER]))
    if ESTIMATOR in value:
        return _decode_estimator(value)
    return {decode(k): decode(v) for k, v in value.items()}


def history_values(history):
    """skorch's history as a list of per-epoch dicts; values that are not plain are dropped."""
    epochs = []
    for i, epoch in enumerate(history):
        kept = {}
        for key, value in epoch.items():
            try:
                kept[key] = encode(value, f"history[{i}][{key!r}]")
            except ValueError:
                continue  # e.g. an object a user callback recorded
        epochs.append(kept)
    return epochs


def check_ndarrays(value, path):
    """Stored arrays: a plain dtype, and a shape their data fills exactly."""
    if isinstance(value, (list, tuple)):
        for v in value:
            check_ndarrays(v, path)
    elif isinstance(value, dict):
        if NDARRAY in value:
            try:
                dtype = np.dtype(value[NDARRAY])
            except (TypeError, ValueError) as e:
                raise damaged(path, f"an array of dtype {value[NDARRAY]!r}") from e
            shape, data = value.get("shape"), value.get("data")
            if (not isinstance(shape, tuple) or len(shape) > MAX_DIMS
                    or not all(isinstance(s, int) and s >= 0 for s in shape)):
                raise damaged(path, f"an array of shape {shape!r}")
            if isinstance(data, torch.Tensor):  # numbers: the dtype the tensor has
                ok = dtype.kind in "biuf" and dtype.itemsize == data.element_size() and (
                    data.numel() == math.prod(shape))
            elif isinstance(data, list):  # strings, objects: no wider than the longest
                longest = max((len(v) for v in data if isinstance(v, (str, bytes))), default=0)
                width = {"U": 4 * max(longest, 1), "S": max(longest, 1), "O": dtype.itemsize}
                ok = dtype.kind in width and dtype.itemsize <= width[dtype.kind] and (
                    len(data) == math.prod(shape))
            else:
                ok = False
            if not ok:
                raise damaged(path, f"an array of dtype {dtype} and shape {shape} that its "
                                     "data do not fill")
            if isinstance(data, list):
                check_ndarrays(data, path)
            return
        for v in value.values():
            check_ndarrays(v, path)
