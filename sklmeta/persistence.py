"""Saving and loading fitted estimators without running code on load.

``pickle`` and ``joblib`` (which scikit-learn documents, and which work for
every sklmeta estimator) rebuild objects by calling whatever functions the file
names: loading a file from an untrusted source can run arbitrary code. They are
for files you wrote yourself or otherwise trust.

:func:`save` writes a plain dictionary with :func:`torch.save`: tensors (the
meta-learned weights, Meta-SGD's step sizes, adapted parameters), and ``str``,
``int``, ``float``, ``bool``, ``None``, lists, tuples and dicts of them, nothing
else. :func:`load` reads it with ``torch.load(path, weights_only=True)``, whose
unpickler refuses any other type, so no code from the file runs; the estimator
is then rebuilt by sklmeta's own code: its class looked up by name among
sklmeta's public estimators (an allow-list), its parameters set, its network
built as ``fit`` builds it and the saved weights loaded into it. ``adapt``,
``score`` and the adapted estimators' ``predict`` give identical results before
and after.

The format (version 1) is a dict with keys ``format`` (``"sklmeta"``),
``format_version``, ``sklmeta_version``, ``torch_version`` and ``estimator``.
A meta-estimator is ``{"class", "params", "custom_module", "state_dict",
"training", "attributes", "history"}``: ``params`` are ``get_params()`` with a
``TaskSplitter`` stored as its own parameters and a ``RandomState`` as its
state; ``state_dict`` is the Learner's (the network and, for Meta-SGD, the step
sizes); ``attributes`` the fitted attributes (``n_way_``, ``n_features_in_``,
``feature_names_in_``, ``standardize_``, ``early_stopping_``,
``validation_split_``, ``best_epoch_``, ``initial_valid_score_``); ``history``
skorch's history, one dict per epoch. Attributes derived from the network
(``module_``, ``inner_lrs_``) are recomputed from it. An adapted estimator is
``{"class", "meta_estimator", "attributes"}`` with ``params_``, ``classes_``,
``mean_``, ``scale_``, ``n_features_in_``, ``n_features_padded_`` and
``feature_names_in_``. NumPy arrays are stored as a tensor (or, for strings
and objects, a list) with their dtype.

Two parameters hold code and are not saved:

- ``module`` (a network of your own): its *weights* are saved; the file records
  the class name, and :func:`load` needs ``module=`` an instance of the same
  architecture (its weights are replaced).
- ``callbacks`` (skorch callbacks): dropped with a warning; the loaded estimator
  has ``callbacks=None``. Set them again (``set_params(callbacks=[...])``)
  before refitting it.

skops (``skops.io``), scikit-learn's other safe format, does not help here:
with skops 0.16 and torch 2.13, ``skops.io.dumps`` fails on any torch tensor or
module (``RuntimeError: Cannot directly construct TensorBase``), and a format
that stored modules by ``__reduce__`` would need their types (and torch's
tensor-rebuilding functions) passed as ``trusted`` to load, which is trusting
the file. Use this module for files from elsewhere.
"""

import io
import pickle
import re
import warnings

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from ._adaptation import predictor
from ._base import SAVED_ATTRIBUTES, restore_fitted
from .adapted import AdaptedClassifier, AdaptedRegressor
from .estimators import META_ESTIMATORS
from .tasks import TaskSplitter

__all__ = ["save", "load", "FORMAT_VERSION"]

FORMAT = "sklmeta"
FORMAT_VERSION = 1

# The only classes load builds: looked up by name, never imported by name.
_META_CLASSES = {cls.__name__: cls for cls in META_ESTIMATORS}
_ADAPTED_CLASSES = {cls.__name__: cls for cls in (AdaptedClassifier, AdaptedRegressor)}
_ADAPTED_ATTRIBUTES = ("params_", "classes_", "mean_", "scale_", "n_features_in_",
                       "n_features_padded_", "feature_names_in_")

# Markers of the values stored as dicts (a user dict with these keys is not plausible).
_NDARRAY, _RANDOM_STATE, _SPLITTER = "__ndarray__", "__random_state__", "__task_splitter__"


# --------------------------------------------------------------------- encoding
def _encode(value, where):
    """``value`` as tensors and plain Python values; a ValueError naming ``where`` if not."""
    if value is None:
        return value
    for plain in (bool, int, float, str):  # subclasses (np.float64, TorchVersion) to the base
        if isinstance(value, plain):
            return plain(value)
    if isinstance(value, np.generic):
        return _encode(value.item(), where)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, np.ndarray):
        try:
            if value.dtype.kind not in "biuf":
                raise TypeError
            data = torch.from_numpy(np.ascontiguousarray(value)).clone()
        except TypeError:  # strings, objects (column names), dtypes torch lacks: plain values
            data = [_encode(v, where) for v in value.ravel().tolist()]
        return {_NDARRAY: value.dtype.str, "shape": tuple(value.shape), "data": data}
    if isinstance(value, np.random.RandomState):
        return {_RANDOM_STATE: _encode(value.get_state(), where)}
    if isinstance(value, TaskSplitter):
        return {_SPLITTER: _encode(value.get_params(deep=False), where)}
    if isinstance(value, tuple):
        return tuple(_encode(v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(value, list):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {_encode(k, where): _encode(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise ValueError(
        f"sklmeta.save stores tensors and plain values only; {where} is a "
        f"{type(value).__name__}. Use pickle or joblib for such estimators (trusted files only)."
    )


def _decode(value):
    if isinstance(value, tuple):
        return tuple(_decode(v) for v in value)
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if _NDARRAY in value:
        data = value["data"]
        dtype = np.dtype(value[_NDARRAY])
        if isinstance(data, torch.Tensor):
            return data.numpy().astype(dtype, copy=False).reshape(value["shape"])
        out = np.empty(len(data), dtype=dtype)
        out[:] = [_decode(v) for v in data]
        return out.reshape(value["shape"])
    if _RANDOM_STATE in value:
        rng = np.random.RandomState()
        rng.set_state(_decode(value[_RANDOM_STATE]))
        return rng
    if _SPLITTER in value:
        return TaskSplitter(**_decode(value[_SPLITTER]))
    return {_decode(k): _decode(v) for k, v in value.items()}


def _history(history):
    """skorch's history as a list of per-epoch dicts; values that are not plain are dropped."""
    epochs = []
    for i, epoch in enumerate(history):
        kept = {}
        for key, value in epoch.items():
            try:
                kept[key] = _encode(value, f"history[{i}][{key!r}]")
            except ValueError:
                continue  # e.g. an object a user callback recorded
        epochs.append(kept)
    return epochs


def _unsupported(estimator):
    return TypeError(
        f"sklmeta.save saves sklmeta's meta-estimators and adapted estimators; got "
        f"{type(estimator).__name__}. Save other objects (a Pipeline, a subclass) with joblib "
        "or pickle, which run code on load: load them only from trusted sources."
    )


def _meta_payload(meta):
    if _META_CLASSES.get(type(meta).__name__) is not type(meta):
        raise _unsupported(meta)
    check_is_fitted(meta, "net_", msg=(
        f"This {type(meta).__name__} is not fitted yet: sklmeta.save saves fitted "
        "estimators; call fit first."))
    params = meta.get_params(deep=False)
    custom = params.pop("module")
    for name in ("callbacks", "accelerator"):
        if params.pop(name):
            warnings.warn(
                f"sklmeta.save does not save {name} (they are code or hold processes); the "
                f"loaded estimator has {name}=None. Set them again with "
                f"set_params({name}=...) before refitting.",
                UserWarning, stacklevel=3,
            )
    attributes = {name: getattr(meta, name) for name in SAVED_ATTRIBUTES
                  if hasattr(meta, name)}
    return {
        "class": type(meta).__name__,
        "params": _encode(params, "params"),
        "custom_module": None if custom is None else type(custom).__qualname__,
        "state_dict": {k: v.detach().cpu().clone()
                       for k, v in meta.net_.module_.state_dict().items()},
        "training": bool(meta.net_.module_.training),
        "attributes": _encode(attributes, "attributes"),
        "history": _history(meta.history_),
    }


def _adapted_payload(adapted):
    check_is_fitted(adapted, "params_", msg=(
        f"This {type(adapted).__name__} is not fitted (adapted) yet: sklmeta.save saves "
        "fitted estimators; call fit (or the meta-estimator's adapt) first."))
    attributes = {name: getattr(adapted, name) for name in _ADAPTED_ATTRIBUTES
                  if hasattr(adapted, name)}
    return {
        "class": type(adapted).__name__,
        "meta_estimator": _meta_payload(adapted.meta_estimator),
        "attributes": _encode(attributes, "attributes"),
    }


def save(estimator, path):
    """Save a fitted sklmeta estimator to a file that :func:`load` reads without running code.

    Parameters
    ----------
    estimator : meta-estimator or AdaptedClassifier or AdaptedRegressor
        Fitted. One of sklmeta's meta-estimators (``MAMLClassifier``, ...,
        ``ProtoNetClassifier``) or an estimator they adapted (``meta.adapt(X, y)``,
        saved with its meta-estimator). ``callbacks`` are not saved (a warning
        says so); a custom ``module`` is saved as its weights only, and
        :func:`load` then needs ``module=``.
    path : str, path-like or binary file object
        Where to write (a ``torch.save`` file; ``.pt`` is the convention).

    Raises
    ------
    sklearn.exceptions.NotFittedError
        The estimator is not fitted.
    TypeError
        It is not an sklmeta estimator (save a Pipeline with joblib, trusted files only).

    See Also
    --------
    load : Rebuild the estimator from the file.

    Examples
    --------
    >>> import os, tempfile
    >>> import sklmeta
    >>> from sklmeta import MAMLRegressor, TaskSplitter
    >>> from sklmeta.datasets import make_sinusoid_tasks
    >>> tasks = make_sinusoid_tasks(n_tasks=20, random_state=0)
    >>> splitter = TaskSplitter(k_shot=5, n_query=5, n_tasks=16, random_state=0)
    >>> meta = MAMLRegressor(task_splitter=splitter, hidden_layer_sizes=(8,), max_epochs=1,
    ...                      random_state=0).fit(tasks)
    >>> path = os.path.join(tempfile.mkdtemp(), "maml.pt")
    >>> sklmeta.save(meta, path)
    >>> X, y = tasks[0]
    >>> before = meta.adapt(X[:5], y[:5]).predict(X[5:])
    >>> bool((sklmeta.load(path).adapt(X[:5], y[:5]).predict(X[5:]) == before).all())
    True
    """
    if _ADAPTED_CLASSES.get(type(estimator).__name__) is type(estimator):
        payload = _adapted_payload(estimator)
    else:
        payload = _meta_payload(estimator)
    torch.save({
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "sklmeta_version": _version(), "torch_version": str(torch.__version__),
        "estimator": payload,
    }, path)


# ---------------------------------------------------------------------- loading
def _version():
    from . import __version__

    return __version__


def _read(path):
    """The file's payload, through torch's weights-only unpickler; ValueError if refused."""
    if hasattr(path, "read"):
        data = path.read()
    else:
        with open(path, "rb") as f:
            data = f.read()
    try:
        with warnings.catch_warnings():  # torch's note on a plain pickle: it is refused anyway
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        named = re.search(r"(?i)unsupported global:?\s+(?:GLOBAL\s+)?(\S+)", str(e))
        # a torch file (a zip) or a pickle (protocol 2+) that the safe loader refuses
        if named or data[:2] == b"PK" or data[:1] == b"\x80":
            raise ValueError(
                f"Refusing to load {path}: it holds objects other than tensors and plain "
                f"values{f' (it names {named.group(1)})' if named else ''}, which only a "
                "pickle that runs code on load needs. sklmeta.save never writes such a file: "
                "it was tampered with, or written by pickle, joblib or torch.save of another "
                "object. Open it with pickle or joblib only if you trust its source."
            ) from e
        raise ValueError(
            f"{path} is not a file written by sklmeta.save (torch's weights-only loader "
            "cannot read it; nothing in it was run)."
        ) from e
    except Exception as e:  # text, a truncated file, another archive...
        raise ValueError(
            f"{path} is not a file written by sklmeta.save ({type(e).__name__}: {e})."
        ) from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not a file written by sklmeta.save (it is a torch file without "
            "sklmeta's format marker)."
        )
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path} is in sklmeta file format version {version!r} (written by sklmeta "
            f"{payload.get('sklmeta_version', '?')}); this sklmeta ({_version()}) reads "
            f"version {FORMAT_VERSION}. Load it with the sklmeta version that wrote it."
        )
    return payload["estimator"]


def _load_meta(payload, module):
    name = payload["class"]
    cls = _META_CLASSES.get(name)
    if cls is None:
        raise ValueError(
            f"The file holds a {name!r}, which is not one of sklmeta's meta-estimators "
            f"({sorted(_META_CLASSES)})."
        )
    custom = payload["custom_module"]
    if custom is not None and module is None:
        raise ValueError(
            f"This {name} was saved with a custom module ({custom}); its weights are in the "
            f"file but its code is not: pass load(path, module=...) an instance of {custom} "
            "with the same architecture."
        )
    if custom is None and module is not None:
        raise ValueError(f"This {name} was saved with the default network; module= is only "
                         "for files saved with a custom module.")
    meta = cls(**_decode(payload["params"]), module=module)
    try:
        return restore_fitted(meta, payload["state_dict"], _decode(payload["history"]),
                             _decode(payload["attributes"]), training=payload["training"])
    except RuntimeError as e:  # load_state_dict: missing keys or other shapes
        raise ValueError(
            f"The saved weights do not fit the network built from the saved parameters"
            f"{' and the module given' if module is not None else ''}: {e}"
        ) from e


def load(path, *, module=None):
    """Load an estimator saved by :func:`save`, running no code from the file.

    The file is read with ``torch.load(path, weights_only=True)``; anything but
    tensors and plain values is refused. The estimator is rebuilt by sklmeta:
    its class chosen by name among sklmeta's public estimators, its network
    built as ``fit`` builds it, the saved weights loaded into it. Its
    ``adapt``, ``score`` and adapted ``predict`` are identical to the saved one's.

    Parameters
    ----------
    path : str, path-like or binary file object
    module : torch.nn.Module, default=None
        Only for an estimator saved with a custom ``module``: an instance of the
        same architecture (the saved weights replace its own).

    Returns
    -------
    estimator : meta-estimator or AdaptedClassifier or AdaptedRegressor
        Fitted. Its ``callbacks`` are None (they are not saved).

    Raises
    ------
    ValueError
        The file holds objects other than tensors and plain values (a pickle
        that would run code: refused, nothing of it runs), is not an sklmeta
        file, is in another format version, or needs ``module=``.

    See Also
    --------
    save

    Examples
    --------
    >>> import os, tempfile
    >>> import sklmeta
    >>> from sklmeta import ProtoNetClassifier, TaskSplitter
    >>> from sklmeta.datasets import make_classification_tasks
    >>> tasks = make_classification_tasks(n_tasks=10, random_state=0)
    >>> splitter = TaskSplitter(n_way=2, k_shot=5, n_query=5, n_tasks=16, random_state=0)
    >>> meta = ProtoNetClassifier(task_splitter=splitter, hidden_layer_sizes=(8,),
    ...                           max_epochs=1, random_state=0).fit(tasks)
    >>> X, y = tasks[0]
    >>> clf = meta.adapt(X[:10], y[:10])
    >>> path = os.path.join(tempfile.mkdtemp(), "adapted.pt")
    >>> sklmeta.save(clf, path)
    >>> loaded = sklmeta.load(path)
    >>> type(loaded).__name__, type(loaded.meta_estimator).__name__
    ('AdaptedClassifier', 'ProtoNetClassifier')
    >>> bool((loaded.predict_proba(X[10:]) == clf.predict_proba(X[10:])).all())
    True
    """
    payload = _read(path)
    try:
        name = payload["class"]
        if name in _ADAPTED_CLASSES:
            meta = _load_meta(payload["meta_estimator"], module)
            adapted = _ADAPTED_CLASSES[name](meta_estimator=meta)
            attributes = _decode(payload["attributes"])
            device = meta.net_.device
            for key in _ADAPTED_ATTRIBUTES:
                if key in attributes:
                    setattr(adapted, key, attributes[key])
            adapted.params_ = {k: v.to(device) for k, v in adapted.params_.items()}
            adapted.module_ = predictor(meta)
            return adapted
        return _load_meta(payload, module)
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{path} is a damaged sklmeta file ({type(e).__name__}: {e}).") from e
