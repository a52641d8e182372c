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

The format (version 2) is a dict with keys ``format`` (``"sklmeta"``),
``format_version``, ``sklmeta_version``, ``torch_version``, ``estimator`` and
``sha256``. A meta-estimator is ``{"class", "params", "custom_module", "state_dict",
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
and objects, a list) with their dtype. ``sha256`` is the SHA-256 of
``estimator`` (every tensor's dtype, shape and bytes, every parameter and
attribute, the history), so a flipped bit or an edit is refused.

:func:`save` to a path is atomic: it writes a temporary file in the same
folder, fsyncs it and renames it over ``path`` (``os.replace``). If it fails
part-way (a full disk) or the process dies, the previous file is intact; the
error (an ``OSError``) names the path.

What :func:`load` refuses, and when. Every check below runs before the
estimator is built, most before torch unpickles a byte; each raises a
``ValueError`` naming the problem:

- anything but a regular file (a folder, a FIFO, ``/dev/zero``, a socket),
  opened non-blocking and checked with ``fstat``; a file larger than
  ``max_bytes`` (default :data:`MAX_FILE_BYTES`, 1 GiB), which also bounds every
  tensor in it;
- a zip archive whose records are compressed, add up to more than the file,
  or fail their CRC (torch's own reader does not check CRCs);
- a pickle that names any global but torch's tensor-rebuilding functions,
  storage types, dtypes and ``OrderedDict`` (stricter than torch's
  ``weights_only`` allow-list, which lets ``bytearray(2e9)`` run), uses an
  opcode that builds other objects, refers twice to one list, tuple or dict
  (shared references turn kilobytes into gigabytes once walked), or nests
  deeper than :data:`MAX_DEPTH` (32); found by walking its opcodes with
  :mod:`pickletools`, building nothing;
- a tensor that is not contiguous (a stride of 0 makes four bytes stand for
  billions of elements), reaches past its storage, or whose storage is not the
  size of its record;
- a checksum that does not match (version 2); version 1 files, which have no
  checksum, load after all the other checks with a warning that corruption
  cannot be detected in them;
- a width (``hidden_layer_sizes``, ``n_way_``, ``embedding_dim``) above
  :data:`MAX_WIDTH` (65536), ``n_features_in_`` above :data:`MAX_FEATURES`
  (1048576), more than 32 hidden layers, stored arrays whose data do not fill
  their shape or whose dtype is wider than their data;
- weights whose names, shapes or dtypes are not those of the network the saved
  parameters describe, compared on torch's ``meta`` device (no memory) before
  the network is built, so the network built holds no more than the file does.

``load(path, device=...)`` loads on another device than the saved one; a file
saved with ``device="cuda"`` loads on a machine without CUDA on the CPU, with a
``skorch.exceptions.DeviceWarning``, as skorch's own loading does.

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

import copy
import hashlib
import io
import math
import os
import pickletools
import stat
import struct
import tempfile
import warnings
import zipfile

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from ._adaptation import predictor
from ._base import SAVED_ATTRIBUTES, build_learner, restore_fitted
from .adapted import AdaptedClassifier, AdaptedRegressor
from .estimators import META_ESTIMATORS
from .tasks import TaskSplitter

__all__ = ["save", "load", "FORMAT_VERSION", "MAX_FILE_BYTES", "MAX_DEPTH", "MAX_WIDTH",
           "MAX_FEATURES"]

FORMAT = "sklmeta"
FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)  # version 1: no checksum (read with a warning)

# Bounds on what load reads (documented in the module docstring).
MAX_FILE_BYTES = 2**30   # the file, and so every tensor in it
MAX_DEPTH = 32           # nesting of lists, tuples and dicts
MAX_WIDTH = 2**16        # a layer's width, n_way_, embedding_dim
MAX_FEATURES = 2**20     # n_features_in_, n_features_padded_
_MAX_RECORDS = 2**16     # records in the zip archive
_MAX_DIMS = 8            # dimensions of a tensor

# The only classes load builds: looked up by name, never imported by name.
_META_CLASSES = {cls.__name__: cls for cls in META_ESTIMATORS}
_ADAPTED_CLASSES = {cls.__name__: cls for cls in (AdaptedClassifier, AdaptedRegressor)}
_AUTOMETA = ("AutoMetaClassifier", "AutoMetaRegressor")  # sklmeta.automl builds them
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
    attributes = _estimator_state(meta)
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

    The file holds tensors and plain values with a SHA-256 checksum; it is
    written to a temporary file in the same folder and renamed over ``path``,
    so a save that fails part-way leaves the previous file intact.

    Parameters
    ----------
    estimator : meta-estimator or AdaptedClassifier or AdaptedRegressor or AutoMeta
        Fitted. One of sklmeta's meta-estimators (``MAMLClassifier``, ...,
        ``ProtoNetClassifier``), an estimator they adapted (``meta.adapt(X, y)``,
        saved with its meta-estimator), or an ``AutoMetaClassifier`` /
        ``AutoMetaRegressor`` whose winner is a meta-estimator (saved with its
        leaderboard; its ``candidates`` are not saved). ``callbacks`` are not saved (a warning
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
    elif type(estimator).__name__ in _AUTOMETA and type(estimator).__module__ == "sklmeta.automl":
        from .automl import to_payload  # the winner (a meta-estimator) and plain values

        payload = to_payload(estimator, _meta_payload, _encode)
    else:
        payload = _meta_payload(estimator)
    _write(payload, path)


def _write(payload, path):
    """Write an estimator payload with its checksum: atomically for a path."""
    document = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "sklmeta_version": _version(), "torch_version": str(torch.__version__),
        "estimator": payload, "sha256": _digest(payload),
    }
    if hasattr(path, "write"):
        torch.save(document, path)
    else:
        atomic_write(os.fspath(path), lambda f: torch.save(document, f))


def atomic_write(path, write):
    """Call ``write(file)`` on a temporary file next to ``path``, then put it in place.

    The temporary file is in the same folder (so the rename cannot cross file
    systems), flushed and fsynced before ``os.replace``, and the folder fsynced
    after: a failure or a crash at any moment leaves either the previous file or
    the new one, never a mixture. A failure removes the temporary file and
    raises an OSError naming ``path``.
    """
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.",
                                   suffix=".tmp")
    except OSError as e:
        raise _write_error(path, e) from e
    try:
        if hasattr(os, "fchmod"):  # the mode open() would give a new file, not mkstemp's 0600
            os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with _suppress_os_error():
            os.unlink(tmp)
        if isinstance(e, OSError) or isinstance(e, RuntimeError) and "write" in str(e):
            raise _write_error(path, e) from e
        raise
    fsync_folder(folder)


def _umask():
    mask = os.umask(0o022)  # read once, at import: os.umask can only be read by setting it
    os.umask(mask)
    return mask


_UMASK = _umask()


def fsync_folder(folder):
    """Make a rename in ``folder`` durable (where the platform allows opening folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: folders cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _suppress_os_error:
    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return kind is not None and issubclass(kind, OSError)


def _write_error(path, e):
    reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
    err = OSError(getattr(e, "errno", None) or 0,
                  f"could not write {path}: {reason}; the previous file there, if any, is "
                  "unchanged")
    err.filename = str(path)
    return err


# ---------------------------------------------------------------------- loading
def _version():
    from . import __version__

    return __version__


def read_bytes(path, max_bytes=MAX_FILE_BYTES):
    """The bytes of a regular file (or a binary file object), at most ``max_bytes``.

    A FIFO, a device (``/dev/zero``), a socket or a folder is refused before a
    byte is read: opened non-blocking (a FIFO without a writer would block
    ``open`` forever) and checked with ``fstat``.
    """
    if hasattr(path, "read"):
        data = path.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ValueError(f"{path} holds more than max_bytes={max_bytes} bytes; refusing "
                             "to read it (pass a larger max_bytes if you trust it).")
        return bytes(data)
    name = os.fspath(path)
    _check_regular(os.stat(name), name)  # before opening: opening a device can act on it
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(name, flags)
    except IsADirectoryError as e:  # Windows cannot open folders
        raise ValueError(f"{name} is a directory, not a file written by sklmeta.save.") from e
    try:
        info = os.fstat(fd)
        _check_regular(info, name)  # again: it may have been replaced in between
        if info.st_size > max_bytes:
            raise ValueError(f"{name} is {info.st_size} bytes, more than max_bytes="
                             f"{max_bytes}; refusing to read it (pass a larger max_bytes "
                             "if you trust it).")
        chunks, size = [], 0
        while True:  # the file may grow while it is read: never past the bound
            chunk = os.read(fd, min(1 << 24, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise ValueError(f"{name} grew past max_bytes={max_bytes} while it was read.")
    finally:
        os.close(fd)
    return b"".join(chunks)


def _check_regular(info, name):
    if stat.S_ISDIR(info.st_mode):
        raise ValueError(f"{name} is a directory, not a file written by sklmeta.save.")
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{name} is not a regular file (a FIFO, a device or a socket); "
                         "sklmeta reads regular files only.")


def _refuse_code(path, named):
    return ValueError(
        f"Refusing to load {path}: it holds objects other than tensors and plain "
        f"values{f' (it names {named})' if named else ''}, which only a pickle that runs code "
        "on load needs. sklmeta.save never writes such a file: it was tampered with, or "
        "written by pickle, joblib or torch.save of another object. Open it with pickle or "
        "joblib only if you trust its source."
    )


def _not_ours(path, why):
    return ValueError(f"{path} is not a file written by sklmeta.save ({why}; nothing in it "
                      "was run).")


def _damaged(path, why):
    return ValueError(f"{path} is a damaged sklmeta file ({why}).")


with warnings.catch_warnings():  # touching the typed storage classes warns
    warnings.simplefilter("ignore")
    _STORAGE_ITEMSIZE = {
        f"torch.{name}": getattr(torch, name).dtype.itemsize
        for name in dir(torch)
        if name.endswith("Storage") and name not in ("UntypedStorage", "TypedStorage")
        and hasattr(getattr(torch, name), "dtype")
    }
_STORAGE_ITEMSIZE["torch.storage.UntypedStorage"] = 1  # counted in bytes
_DTYPE_ITEMSIZE = {f"torch.{str(d).split('.')[-1]}": d.itemsize for d in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64,
    torch.complex128, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
    torch.uint16, torch.uint32, torch.uint64, torch.bool)}
_REBUILD_TENSOR = ("torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor_v3")
_ORDERED_DICT = "collections.OrderedDict"
_ALLOWED_GLOBALS = {*_REBUILD_TENSOR, _ORDERED_DICT, *_STORAGE_ITEMSIZE, *_DTYPE_ITEMSIZE}
_ATOMS = {"BININT", "BININT1", "BININT2", "INT", "LONG", "LONG1", "LONG4", "BINFLOAT",
          "FLOAT", "NONE", "NEWTRUE", "NEWFALSE", "BINUNICODE", "SHORT_BINUNICODE",
          "BINUNICODE8", "UNICODE"}


class _Item:
    """What the opcode walk knows of a value on the pickle stack."""

    __slots__ = ("kind", "depth", "value")

    def __init__(self, kind, depth=0, value=None):
        self.kind, self.depth, self.value = kind, depth, value


_MARK = _Item("mark")


def _check_pickle(data, path, records=None):
    """Walk the pickle's opcodes, building nothing; refuse what sklmeta never writes.

    Refuses any global but torch's tensor-rebuilding function, its storage types
    and ``OrderedDict``; any opcode that builds other objects; a second
    reference to a list, tuple or dict (shared references are how a few
    kilobytes expand into gigabytes once walked); nesting deeper than
    :data:`MAX_DEPTH`; and, with ``records`` (the archive's record sizes), a
    tensor that is not contiguous (stride 0) or reaches past its storage, or a
    storage that is not the size of its record.
    """
    stack, memo = [], {}

    def pop_mark():
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is _MARK:
                items = stack[i + 1:]
                del stack[i:]
                return items
        raise _damaged(path, "a pickle mark is missing")

    def container(children, kind="container"):
        depth = 1 + max((c.depth for c in children), default=0)
        if depth > MAX_DEPTH:
            raise ValueError(f"Refusing to load {path}: its values nest deeper than "
                             f"MAX_DEPTH={MAX_DEPTH}.")
        return _Item(kind, depth, children if kind == "tuple" else None)

    def add_to_top(children):
        if not stack or stack[-1].kind != "container":
            raise _damaged(path, "a pickle adds items to something that is not a container")
        top = stack[-1]
        grown = container(children)
        top.depth = max(top.depth, grown.depth)

    def global_name(module, name):
        full = f"{module}.{name}"
        if full not in _ALLOWED_GLOBALS:
            raise _refuse_code(path, full)
        return _Item("global", 0, full)

    try:
        for op, arg, _ in pickletools.genops(data):
            name = op.name
            if name in _ATOMS:
                stack.append(_Item("atom", 0, arg))
            elif name in ("PROTO", "FRAME"):
                continue
            elif name == "STOP":
                break
            elif name == "MARK":
                stack.append(_MARK)
            elif name in ("EMPTY_LIST", "EMPTY_DICT"):
                stack.append(_Item("container", 1))
            elif name == "EMPTY_TUPLE":
                stack.append(_Item("tuple", 1, []))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                if len(stack) < n:
                    raise _damaged(path, "the pickle stack underflows")
                children = stack[-n:]
                del stack[-n:]
                stack.append(container(children, "tuple"))
            elif name == "TUPLE":
                stack.append(container(pop_mark(), "tuple"))
            elif name in ("LIST", "DICT"):
                stack.append(container(pop_mark()))
            elif name in ("APPEND", "SETITEM"):
                n = 1 if name == "APPEND" else 2
                children = stack[-n:]
                del stack[-n:]
                add_to_top(children)
            elif name in ("APPENDS", "SETITEMS"):
                add_to_top(pop_mark())
            elif name in ("BINPUT", "LONG_BINPUT", "PUT", "MEMOIZE"):
                if not stack:
                    raise _damaged(path, "the pickle stack underflows")
                memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                item = memo.get(arg)
                if item is None:
                    raise _damaged(path, "a pickle memo reference is missing")
                if item.kind in ("container", "tuple"):
                    raise ValueError(
                        f"Refusing to load {path}: it refers to one list, tuple or dict "
                        "twice (sklmeta.save never shares them; shared references can "
                        "expand a small file into gigabytes)."
                    )
                stack.append(item)
            elif name == "GLOBAL":
                module, _, attr = arg.partition(" ")
                stack.append(global_name(module, attr))
            elif name == "STACK_GLOBAL":
                attr, module = stack.pop(), stack.pop()
                if not (isinstance(module.value, str) and isinstance(attr.value, str)):
                    raise _damaged(path, "a pickle global is not named by strings")
                stack.append(global_name(module.value, attr.value))
            elif name == "BINPERSID":
                stack.append(_storage(stack.pop(), records, path))
            elif name == "REDUCE":
                args, func = stack.pop(), stack.pop()
                stack.append(_reduce(func, args, path))
            elif name == "BUILD" and len(stack) > 1 and stack[-2].value == _ORDERED_DICT:
                add_to_top([stack.pop()])  # a state_dict's _metadata
            else:  # BUILD, NEWOBJ, INST, OBJ, EXT*, bytes, sets...
                raise _refuse_code(path, f"pickle opcode {name}")
    except IndexError as e:
        raise _damaged(path, "the pickle stack underflows") from e
    except ValueError as e:
        if str(e).startswith(("Refusing", f"{path}")):
            raise
        raise _not_ours(path, f"not a valid pickle: {e}") from e


def _storage(pid, records, path):
    """A persistent id ``('storage', StorageType, key, location, numel)``, checked."""
    parts = pid.value if pid.kind == "tuple" else None
    if (records is None or parts is None or len(parts) != 5
            or [p.kind for p in parts] != ["atom", "global", "atom", "atom", "atom"]
            or parts[0].value != "storage" or parts[1].value not in _STORAGE_ITEMSIZE
            or not isinstance(parts[2].value, str) or not isinstance(parts[4].value, int)):
        raise _damaged(path, "a tensor storage is not described as torch.save describes it")
    key, numel = parts[2].value, parts[4].value
    size = records.get(key)
    if size is None or numel < 0 or numel * _STORAGE_ITEMSIZE[parts[1].value] != size:
        raise _damaged(path, f"tensor storage {key!r} declares {numel} elements, but its "
                             f"record holds {size} bytes")
    return _Item("storage", 0, (size, _STORAGE_ITEMSIZE[parts[1].value]))


def _reduce(func, args, path):
    if func.kind != "global" or args.kind != "tuple":
        raise _refuse_code(path, "a call that is not to a global")
    if func.value == _ORDERED_DICT:
        if args.value:
            raise _damaged(path, "an OrderedDict built with arguments")
        return _Item("container", 1, _ORDERED_DICT)
    if func.value not in _REBUILD_TENSOR:
        raise _refuse_code(path, func.value)
    parts = args.value
    v3 = func.value.endswith("v3")
    if (len(parts) != (7 if v3 else 6) or parts[0].kind != "storage" or parts[1].kind != "atom"
            or parts[2].kind != "tuple" or parts[3].kind != "tuple"
            or v3 and (parts[6].kind != "global" or parts[6].value not in _DTYPE_ITEMSIZE)):
        raise _damaged(path, "a tensor is not described as torch.save describes it")
    nbytes, itemsize = parts[0].value
    if v3:
        itemsize = _DTYPE_ITEMSIZE[parts[6].value]
    capacity = nbytes // itemsize
    offset = parts[1].value
    size = [p.value for p in parts[2].value]
    stride = [p.value for p in parts[3].value]
    if (not isinstance(offset, int) or len(size) != len(stride) or len(size) > _MAX_DIMS
            or not all(isinstance(v, int) and v >= 0 for v in size + stride + [offset])):
        raise _damaged(path, f"a tensor has size {size} and stride {stride}")
    numel = math.prod(size)
    expected = 1
    for dim, step in zip(reversed(size), reversed(stride)):
        if dim != 1 and step != expected:
            raise ValueError(
                f"Refusing to load {path}: a tensor of size {tuple(size)} has stride "
                f"{tuple(stride)}; sklmeta.save writes contiguous tensors only (a stride of 0 "
                "makes a few bytes stand for billions of elements).")
        expected *= dim
    if numel and offset + numel > capacity:
        raise _damaged(path, f"a tensor of {numel} elements at offset {offset} reaches past "
                             f"its storage of {capacity}")
    return _Item("tensor")


def _check_archive(data, path):
    """Check a torch zip archive before torch reads it; return the pickle's record name.

    Every record stored uncompressed (as torch writes them), their sizes adding
    up to no more than the file, their CRCs verified (torch's reader skips
    them), and the pickle walked by :func:`_check_pickle`.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError):
        if data[:1] == b"\x80":  # a plain pickle (torch's legacy format, pickle, joblib)
            _check_pickle(data, path)
        raise _not_ours(path, "it is not a torch zip archive") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > _MAX_RECORDS:
            raise _damaged(path, f"{len(infos)} records, more than {_MAX_RECORDS}")
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise _damaged(path, "two records have the same name")
        total = 0
        for info in infos:
            if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
                raise _damaged(path, f"record {info.filename} is compressed; torch.save "
                                     "stores records as they are")
            total += info.file_size
        if total > len(data):
            raise _damaged(path, f"its records declare {total} bytes in a file of {len(data)}")
        prefix = names[0].split("/", 1)[0] if names else ""
        pickled = f"{prefix}/data.pkl"
        if pickled not in names or not all(n.startswith(prefix + "/") for n in names):
            raise _not_ours(path, "a zip archive but not a torch file")
        try:
            for info in infos:  # ZipFile.read checks each record's CRC
                archive.read(info)
        except zipfile.BadZipFile as e:
            raise _damaged(path, f"a record fails its CRC check: {e}") from e
        records = {i.filename[len(prefix) + 6:]: i.file_size for i in infos
                   if i.filename.startswith(prefix + "/data/")}
        _check_pickle(archive.read(pickled), path, records)


def _check_tensors(value, path):
    """Every tensor contiguous and within its storage (refused, never copied, if not)."""
    if isinstance(value, torch.Tensor):
        if not value.is_contiguous() or (
                value.numel() and (value.storage_offset() + value.numel()) * value.element_size()
                > value.untyped_storage().nbytes()):
            raise _damaged(path, f"a tensor of shape {tuple(value.shape)} is not contiguous "
                                 "or reaches past its storage")
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_tensors(v, path)
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_tensors(k, path)
            _check_tensors(v, path)


def read_torch(path, max_bytes=MAX_FILE_BYTES):
    """``torch.load(weights_only=True)`` of a file checked first; ValueError if refused.

    The file is read whole (a regular file of at most ``max_bytes``), its zip
    records and pickle checked (:func:`_check_archive`) before torch unpickles
    a byte, its tensors checked after; the bytes read are what torch loads.
    Returns the loaded object and the file's bytes.
    """
    data = read_bytes(path, max_bytes)
    if not data:
        raise _not_ours(path, "it is empty")
    _check_archive(data, path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. on TypedStorage; the file is checked
            value = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # pickle.UnpicklingError, RuntimeError from the zip reader...
        raise _not_ours(path, f"{type(e).__name__}: {e}") from e
    _check_tensors(value, path)
    return value, data


def _read(path, max_bytes):
    """The file's estimator payload, checked and verified by its checksum."""
    document, _ = read_torch(path, max_bytes)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _not_ours(path, "it is a torch file without sklmeta's format marker")
    version = document.get("format_version")
    if version not in _READABLE_VERSIONS:
        raise ValueError(
            f"{path} is in sklmeta file format version {version!r} (written by sklmeta "
            f"{document.get('sklmeta_version', '?')}); this sklmeta ({_version()}) reads "
            f"versions {', '.join(map(str, _READABLE_VERSIONS))}. Load it with the sklmeta "
            "version that wrote it."
        )
    if "estimator" not in document:
        raise _damaged(path, "no estimator in it")
    if version == 1:
        warnings.warn(
            f"{path} is in sklmeta file format version 1, which has no checksum: a "
            "corrupted file cannot be told from a good one. It was checked for size and "
            "structure; save it again (sklmeta.save) to add a checksum.",
            UserWarning, stacklevel=3,
        )
    elif document.get("sha256") != _digest(document["estimator"]):
        raise _damaged(path, "its checksum does not match its contents: the file was "
                             "corrupted or edited after sklmeta.save wrote it")
    return document["estimator"]


# ------------------------------------------------------------------- checksum
def _digest(value):
    """SHA-256 of ``value`` (tensors and plain values), by type and content."""
    h = hashlib.sha256()
    _feed(h, value)
    return h.hexdigest()


def _feed(h, value):
    if value is None:
        h.update(b"N")
    elif isinstance(value, bool):
        h.update(b"T" if value else b"F")
    elif isinstance(value, int):
        text = str(value).encode()
        h.update(b"i%d:" % len(text) + text)
    elif isinstance(value, float):
        h.update(b"f" + struct.pack("<d", value))
    elif isinstance(value, str):
        text = value.encode("utf-8", "surrogatepass")
        h.update(b"s%d:" % len(text) + text)
    elif isinstance(value, torch.Tensor):
        header = f"t{value.dtype}{tuple(value.shape)}:".encode()
        h.update(header)
        flat = value.detach().cpu().contiguous().reshape(-1)
        if flat.numel():
            h.update(flat.view(torch.uint8).numpy())
    elif isinstance(value, (list, tuple)):
        h.update(b"%s%d:" % (b"l" if isinstance(value, list) else b"u", len(value)))
        for v in value:
            _feed(h, v)
    elif isinstance(value, dict):
        h.update(b"d%d:" % len(value))
        for k, v in value.items():
            _feed(h, k)
            _feed(h, v)
    else:
        raise TypeError(f"cannot checksum a {type(value).__name__}")


# ----------------------------------------------------------- schema and bounds
def _int_within(value, name, low, high, path):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"Refusing to load {path}: {name} is {value!r}; sklmeta loads "
                         f"integers from {low} to {high} there.")


def _check_ndarrays(value, path):
    """Stored arrays: a plain dtype, and a shape their data fills exactly."""
    if isinstance(value, (list, tuple)):
        for v in value:
            _check_ndarrays(v, path)
    elif isinstance(value, dict):
        if _NDARRAY in value:
            try:
                dtype = np.dtype(value[_NDARRAY])
            except (TypeError, ValueError) as e:
                raise _damaged(path, f"an array of dtype {value[_NDARRAY]!r}") from e
            shape, data = value.get("shape"), value.get("data")
            if (not isinstance(shape, tuple) or len(shape) > _MAX_DIMS
                    or not all(isinstance(s, int) and s >= 0 for s in shape)):
                raise _damaged(path, f"an array of shape {shape!r}")
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
                raise _damaged(path, f"an array of dtype {dtype} and shape {shape} that its "
                                     "data do not fill")
            if isinstance(data, list):
                _check_ndarrays(data, path)
            return
        for v in value.values():
            _check_ndarrays(v, path)


def _check_meta_payload(payload, path):
    """The stored parameters and attributes within bounds, before anything is built."""
    params, attributes = payload["params"], payload["attributes"]
    state = payload["state_dict"]
    if not (isinstance(params, dict) and isinstance(attributes, dict)
            and isinstance(state, dict) and isinstance(payload["history"], list)
            and all(isinstance(epoch, dict) for epoch in payload["history"])
            and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                    for k, v in state.items())):
        raise _damaged(path, "its parameters, attributes, weights or history have the wrong "
                             "type")
    _check_ndarrays(params, path)
    _check_ndarrays(attributes, path)
    hidden = params.get("hidden_layer_sizes")
    if isinstance(hidden, (list, tuple)):
        for i, h in enumerate(hidden):
            _int_within(h, f"hidden_layer_sizes[{i}]", 1, MAX_WIDTH, path)
        if len(hidden) > MAX_DEPTH:
            raise ValueError(f"Refusing to load {path}: {len(hidden)} hidden layers, more "
                             f"than {MAX_DEPTH}.")
    if "embedding_dim" in params and isinstance(params["embedding_dim"], int):
        _int_within(params["embedding_dim"], "embedding_dim", 1, MAX_WIDTH, path)
    _int_within(attributes.get("n_features_in_"), "n_features_in_", 1, MAX_FEATURES, path)
    if attributes.get("n_way_") is not None:
        _int_within(attributes["n_way_"], "n_way_", 1, MAX_WIDTH, path)


def _check_adapted_attributes(attributes, path):
    if not isinstance(attributes, dict):
        raise _damaged(path, "its attributes are not a dict")
    _check_ndarrays(attributes, path)
    for name in ("n_features_in_", "n_features_padded_"):
        if name in attributes and attributes[name] is not None:
            _int_within(attributes[name], name, 1, MAX_FEATURES, path)
    params = attributes.get("params_")
    if not isinstance(params, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in params.items()):
        raise _damaged(path, "the adapted parameters are not a dict of tensors")


def _device(params, device):
    """The device to load on: ``device``, or the saved one (CPU if CUDA is missing)."""
    if device is not None:
        return str(device)
    saved = params.get("device", "cpu")
    try:
        place = torch.device(saved)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"The file says device={saved!r}, which torch does not know; "
                         "pass load(path, device=...).") from e
    if place.type == "cuda" and not torch.cuda.is_available():
        from skorch.exceptions import DeviceWarning

        warnings.warn(  # as skorch's own loading does
            f"The estimator was saved with device={saved!r} but CUDA is not available; "
            "loading it on device 'cpu' instead (pass load(path, device=...) to choose).",
            DeviceWarning, stacklevel=4,
        )
        return "cpu"
    return saved


# ----------------------------------------------------- the estimator's interface
def _estimator_state(meta):
    """The attributes :func:`save` stores (``sklmeta._base.SAVED_ATTRIBUTES``)."""
    return {name: getattr(meta, name) for name in SAVED_ATTRIBUTES if hasattr(meta, name)}


def _rebuild(meta, payload, attributes, module, path):
    """Check the saved weights' shapes against ``meta``'s architecture, then restore.

    Returns the fitted ``meta`` and the module its adapted estimators predict with.

    The architecture is built on torch's ``meta`` device (shapes, no memory) by
    the estimator's own construction (:func:`sklmeta._base.build_learner`), so
    the check allocates nothing; only weights of exactly those shapes reach
    :func:`sklmeta._base.restore_fitted`, which builds the network as ``fit`` does.
    """
    n_way = attributes.get("n_way_")  # the widths were bounded before (_check_sizes)
    try:
        learner = build_learner(meta, n_way, attributes["n_features_in_"], device="meta")
    except (RuntimeError, OverflowError, ValueError) as e:
        raise _damaged(path, f"its parameters describe no network: {e}") from e
    expected = {k: (tuple(v.shape), v.dtype) for k, v in learner.state_dict().items()}
    state = payload["state_dict"]
    found = {k: (tuple(v.shape), v.dtype) for k, v in state.items()}
    if found != expected:
        wrong = sorted(k for k in expected.keys() | found.keys()
                       if expected.get(k) != found.get(k))
        first = wrong[0]
        raise ValueError(
            f"The saved weights do not fit the network built from the saved parameters"
            f"{' and the module given' if module is not None else ''}: {first!r} is "
            f"{_describe(found.get(first))} in the file but "
            f"{_describe(expected.get(first))} in the network ({len(wrong)} tensors differ)."
        )
    try:
        restore_fitted(meta, state, _decode(payload["history"]), attributes,
                       training=bool(payload["training"]))
        return meta, predictor(meta)
    except RuntimeError as e:  # load_state_dict: anything the shape check missed
        raise ValueError(
            f"The saved weights do not fit the network built from the saved parameters"
            f"{' and the module given' if module is not None else ''}: {e}"
        ) from e


def _describe(spec):
    return "absent" if spec is None else f"{spec[1]} of shape {spec[0]}"


def _load_meta(payload, module, device, path):
    name = payload["class"]
    cls = _META_CLASSES.get(name) if isinstance(name, str) else None
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
    _check_meta_payload(payload, path)
    params = _decode(payload["params"])
    params["device"] = _device(params, device)
    meta = cls(**params, module=module)
    return _rebuild(meta, payload, _decode(payload["attributes"]), module, path)


def load(path, *, module=None, device=None, max_bytes=MAX_FILE_BYTES):
    """Load an estimator saved by :func:`save`, running no code from the file.

    The file is read with ``torch.load(path, weights_only=True)``; anything but
    tensors and plain values is refused. The estimator is rebuilt by sklmeta:
    its class chosen by name among sklmeta's public estimators, its network
    built as ``fit`` builds it, the saved weights loaded into it. Its
    ``adapt``, ``score`` and adapted ``predict`` are identical to the saved one's.

    Parameters
    ----------
    path : str, path-like or binary file object
        The file :func:`save` wrote (a regular file; folders, FIFOs and devices
        are refused).
    module : torch.nn.Module, default=None
        Only for an estimator saved with a custom ``module``: an instance of the
        same architecture (the saved weights replace its own).
    device : str or torch.device, default=None
        Where to load the estimator (its ``device`` parameter): overrides the
        saved one. None keeps the saved device, except that a ``"cuda"`` one
        on a machine without CUDA loads on the CPU with a
        ``skorch.exceptions.DeviceWarning``, as skorch's own loading does.
    max_bytes : int, default=MAX_FILE_BYTES (1 GiB)
        Larger files are refused before they are read.

    Returns
    -------
    estimator : meta-estimator or AdaptedClassifier or AdaptedRegressor
        Fitted. Its ``callbacks`` are None (they are not saved).

    Raises
    ------
    ValueError
        The file holds objects other than tensors and plain values (a pickle
        that would run code: refused, nothing of it runs), is not an sklmeta
        file, is in another format version, fails its checksum, is out of the
        module's bounds (see the module docstring), is not a regular file
        (a folder, a FIFO, a device), or needs ``module=``.

    See Also
    --------
    save : Write a file that load reads.

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
    payload = _read(path, max_bytes)
    try:
        name = payload["class"]
        if name in _AUTOMETA:
            from .automl import from_payload

            return from_payload(payload, lambda p: _load_meta(p, module, device, path)[0],
                                _decode)
        if name in _ADAPTED_CLASSES:
            attributes = payload["attributes"]
            _check_adapted_attributes(attributes, path)
            meta, predict_module = _load_meta(payload["meta_estimator"], module, device, path)
            return _adapted(_ADAPTED_CLASSES[name], meta, predict_module, _decode(attributes))
        return _load_meta(payload, module, device, path)[0]
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        raise _damaged(path, f"{type(e).__name__}: {e}") from e


def _adapted(cls, meta, predict_module, attributes):
    """The adapted estimator ``meta`` had adapted, from its saved attributes."""
    adapted = cls(meta_estimator=meta)
    for key in _ADAPTED_ATTRIBUTES:
        if key in attributes:
            setattr(adapted, key, attributes[key])
    device = meta.net_.device
    adapted.params_ = {k: v.to(device) for k, v in adapted.params_.items()}
    adapted.module_ = predict_module
    return adapted
