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

The format (version 4) is a dict with keys ``format`` (``"sklmeta"``),
``format_version``, ``sklmeta_version``, ``torch_version``, ``estimator`` and
``sha256``. A meta-estimator is ``{"class", "params", "custom_module", "state_dict",
"training", "attributes", "history"}``: ``params`` are ``get_params()`` with a
``TaskSplitter`` stored as its own parameters and a ``RandomState`` as its
state; ``state_dict`` is the Learner's (the network and, for Meta-SGD, the step
sizes); ``attributes`` the fitted attributes (``n_way_``, ``n_features_in_``,
``feature_names_in_``, ``standardize_``, ``early_stopping_``,
``validation_split_``, ``best_epoch_``, ``initial_valid_score_`` and, for the
closed-form regressors, ``std_scale_``; a file without it loads uncalibrated); ``history``
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
- a checksum that does not match (versions 2 to 4); version 1 files, which have no
  checksum, load after all the other checks with a warning that corruption
  cannot be detected in them;
- a version 1 or 2 file of ``DeepKernelGPRegressor``, ``MetaRidgeClassifier``,
  ``MetaRidgeRegressor`` or a neural process: version 3 stores their kernel,
  penalty and attention scalars scaled (they learn faster so), and their older
  weights would load wrong; and a file before version 4 of a
  ``MetaRidgeClassifier``, whose head has a nearest-class-mean term since
  (its weight ``centroid_weight`` is not in the older files). Refit and save
  again.
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

scikit-learn estimators (those :class:`~sklmeta.transfer.PerSupport` and
:class:`~sklmeta.transfer.PooledRegressor` hold, an AutoMeta's candidates) are
stored as ``{"__estimator__": class name, "params", "state"}``: their
parameters and fitted attributes, each a plain value or array. :func:`load`
builds only the classes scikit-learn lists as its public estimators
(``sklearn.utils.discovery.all_estimators``) and those two of sklmeta's,
looked up by name; a fitted attribute that is not a plain value (a
RandomForest's trees, a KD-tree) cannot be stored, and ``save`` raises a
``TypeError`` that says to use joblib.

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

import os
import warnings

import torch
from sklearn.utils.validation import check_is_fitted

from ._adaptation import predictor
from ._base import SAVED_ATTRIBUTES, build_learner, restore_fitted
from ._encoding import check_ndarrays, decode, encode, estimator_classes, history_values
from ._safe_io import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    atomic_write,
    damaged,
    digest,
    int_within,
    not_ours,
    read_torch,
)
from .adapted import AdaptedClassifier, AdaptedRegressor
from .estimators import META_ESTIMATORS

__all__ = ["save", "load", "FORMAT_VERSION", "MAX_FILE_BYTES", "MAX_DEPTH", "MAX_WIDTH",
           "MAX_FEATURES"]

FORMAT = "sklmeta"
FORMAT_VERSION = 4
_READABLE_VERSIONS = (1, 2, 3, 4)  # version 1: no checksum (read with a warning)
# Version 3 stores the kernel, penalty and attention scalars of these learners divided by
# sklmeta._core.closed_form.HYPER_LR_SCALE (they learn faster so): their version 1 and 2
# weights would load wrong, so such files are refused.
_RESCALED_IN_3 = ("DeepKernelGPRegressor", "MetaRidgeClassifier", "MetaRidgeRegressor",
                  "NeuralProcessClassifier", "NeuralProcessRegressor")
# The format version from which each class's weights mean what this sklmeta reads, and why:
# files of that class from before it are refused.
_CHANGED_IN = (
    (3, _RESCALED_IN_3, "kernel, penalty or attention parameters this sklmeta stores "
                        "differently"),
    (4, ("MetaRidgeClassifier",), "head this sklmeta extends with a nearest-class-mean "
                                  "term (its centroid_weight)"),
)

# Bounds on what load reads (documented in the module docstring).
MAX_WIDTH = 2**16        # a layer's width, n_way_, embedding_dim
MAX_FEATURES = 2**20     # n_features_in_, n_features_padded_

# The only classes load builds: looked up by name, never imported by name.
_META_CLASSES = {cls.__name__: cls for cls in META_ESTIMATORS}
_ADAPTED_CLASSES = {cls.__name__: cls for cls in (AdaptedClassifier, AdaptedRegressor)}
_AUTOMETA = ("AutoMetaClassifier", "AutoMetaRegressor")  # sklmeta.automl builds them
# sklmeta.transfer's learners that hold scikit-learn estimators and plain values only
_SUPPORT = ("PerSupport", "PooledRegressor")
_ADAPTED_ATTRIBUTES = ("params_", "classes_", "columns_", "mean_", "scale_", "y_mean_",
                       "y_scale_", "n_features_in_", "n_features_padded_",
                       "feature_names_in_")



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
        "params": encode(params, "params"),
        "custom_module": None if custom is None else type(custom).__qualname__,
        "state_dict": {k: v.detach().cpu().clone()
                       for k, v in meta.net_.module_.state_dict().items()},
        "training": bool(meta.net_.module_.training),
        "attributes": encode(attributes, "attributes"),
        "history": history_values(meta.history_),
    }


def _is_support(estimator):
    name = type(estimator).__name__
    return name in _SUPPORT and estimator_classes()[name] is type(estimator)


def _support_payload(learner):
    check_is_fitted(learner, "n_features_in_", msg=(
        f"This {type(learner).__name__} is not fitted yet: sklmeta.save saves fitted "
        "estimators; call fit first."))
    try:
        encoded = encode(learner, type(learner).__name__)
    except ValueError as e:
        raise TypeError(str(e)) from None
    return {"class": type(learner).__name__, "learner": encoded}


def _winner_payload(estimator):
    """An AutoMeta winner's payload: a meta-estimator's, or a support learner's."""
    return _support_payload(estimator) if _is_support(estimator) else _meta_payload(estimator)


def _load_support(payload, path):
    check_ndarrays(payload["learner"], path)
    learner = decode(payload["learner"])
    if type(learner).__name__ != payload["class"]:
        raise damaged(path, f"a {payload['class']} that holds a {type(learner).__name__}")
    return learner


def _adapted_payload(adapted):
    check_is_fitted(adapted, "params_", msg=(
        f"This {type(adapted).__name__} is not fitted (adapted) yet: sklmeta.save saves "
        "fitted estimators; call fit (or the meta-estimator's adapt) first."))
    attributes = {name: getattr(adapted, name) for name in _ADAPTED_ATTRIBUTES
                  if hasattr(adapted, name)}
    return {
        "class": type(adapted).__name__,
        "meta_estimator": _meta_payload(adapted.meta_estimator),
        "attributes": encode(attributes, "attributes"),
    }


def save(estimator, path):
    """Save a fitted sklmeta estimator to a file that :func:`load` reads without running code.

    The file holds tensors and plain values with a SHA-256 checksum; it is
    written to a temporary file in the same folder and renamed over ``path``,
    so a save that fails part-way leaves the previous file intact.

    Parameters
    ----------
    estimator : meta-estimator, AdaptedClassifier, AdaptedRegressor, PerSupport, \
PooledRegressor or AutoMeta
        Fitted. One of sklmeta's meta-estimators (``MAMLClassifier``, ...,
        ``ProtoNetClassifier``), an estimator they adapted (``meta.adapt(X, y)``,
        saved with its meta-estimator), a :class:`~sklmeta.transfer.PerSupport`
        or :class:`~sklmeta.transfer.PooledRegressor` of scikit-learn's own
        estimators, or an ``AutoMetaClassifier`` / ``AutoMetaRegressor`` whose
        winner is one of those (saved with its leaderboard; its ``candidates``
        only if they are scikit-learn's estimators). ``callbacks`` are not saved
        (a warning says so); a custom ``module`` is saved as its weights only,
        and :func:`load` then needs ``module=``.
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

        payload = to_payload(estimator, _winner_payload, encode)
    elif _is_support(estimator):
        payload = _support_payload(estimator)
    else:
        payload = _meta_payload(estimator)
    _write(payload, path)


def _write(payload, path):
    """Write an estimator payload with its checksum: atomically for a path."""
    document = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "sklmeta_version": _version(), "torch_version": str(torch.__version__),
        "estimator": payload, "sha256": digest(payload),
    }
    if hasattr(path, "write"):
        torch.save(document, path)
    else:
        atomic_write(os.fspath(path), lambda f: torch.save(document, f))


# ---------------------------------------------------------------------- loading
def _version():
    from . import __version__

    return __version__


def _read(path, max_bytes):
    """The file's estimator payload, checked and verified by its checksum."""
    document, _ = read_torch(path, max_bytes)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise not_ours(path, "it is a torch file without sklmeta's format marker")
    version = document.get("format_version")
    if version not in _READABLE_VERSIONS:
        raise ValueError(
            f"{path} is in sklmeta file format version {version!r} (written by sklmeta "
            f"{document.get('sklmeta_version', '?')}); this sklmeta ({_version()}) reads "
            f"versions {', '.join(map(str, _READABLE_VERSIONS))}. Load it with the sklmeta "
            "version that wrote it."
        )
    if "estimator" not in document:
        raise damaged(path, "no estimator in it")
    if version == 1:
        warnings.warn(
            f"{path} is in sklmeta file format version 1, which has no checksum: a "
            "corrupted file cannot be told from a good one. It was checked for size and "
            "structure; save it again (sklmeta.save) to add a checksum.",
            UserWarning, stacklevel=3,
        )
    elif document.get("sha256") != digest(document["estimator"]):
        raise damaged(path, "its checksum does not match its contents: the file was "
                             "corrupted or edited after sklmeta.save wrote it")
    payload = document["estimator"]
    if isinstance(payload, dict):
        inner = [payload] + [payload.get(k) for k in ("meta_estimator", "winner")]
        names = {p.get("class") for p in inner if isinstance(p, dict)}
        for since, classes, why in _CHANGED_IN:
            old = sorted(n for n in names if n in classes)
            if version < since and old:
                raise ValueError(
                    f"{path} holds a {old[0]} in sklmeta file format version {version}, "
                    f"whose {why} (format version {since}): its weights would load wrong. "
                    "Refit it and save it again.")
    return payload


def _check_meta_payload(payload, path):
    """The stored parameters and attributes within bounds, before anything is built."""
    params, attributes = payload["params"], payload["attributes"]
    state = payload["state_dict"]
    if not (isinstance(params, dict) and isinstance(attributes, dict)
            and isinstance(state, dict) and isinstance(payload["history"], list)
            and all(isinstance(epoch, dict) for epoch in payload["history"])
            and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                    for k, v in state.items())):
        raise damaged(path, "its parameters, attributes, weights or history have the wrong "
                             "type")
    check_ndarrays(params, path)
    check_ndarrays(attributes, path)
    hidden = params.get("hidden_layer_sizes")
    if isinstance(hidden, (list, tuple)):
        for i, h in enumerate(hidden):
            int_within(h, f"hidden_layer_sizes[{i}]", 1, MAX_WIDTH, path)
        if len(hidden) > MAX_DEPTH:
            raise ValueError(f"Refusing to load {path}: {len(hidden)} hidden layers, more "
                             f"than {MAX_DEPTH}.")
    if "embedding_dim" in params and isinstance(params["embedding_dim"], int):
        int_within(params["embedding_dim"], "embedding_dim", 1, MAX_WIDTH, path)
    int_within(attributes.get("n_features_in_"), "n_features_in_", 1, MAX_FEATURES, path)
    if attributes.get("n_way_") is not None:
        int_within(attributes["n_way_"], "n_way_", 1, MAX_WIDTH, path)


def _check_adapted_attributes(attributes, path):
    if not isinstance(attributes, dict):
        raise damaged(path, "its attributes are not a dict")
    check_ndarrays(attributes, path)
    for name in ("n_features_in_", "n_features_padded_"):
        if name in attributes and attributes[name] is not None:
            int_within(attributes[name], name, 1, MAX_FEATURES, path)
    params = attributes.get("params_")
    if not isinstance(params, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in params.items()):
        raise damaged(path, "the adapted parameters are not a dict of tensors")


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
        raise damaged(path, f"its parameters describe no network: {e}") from e
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
        restore_fitted(meta, state, decode(payload["history"]), attributes,
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
    params = decode(payload["params"])
    params["device"] = _device(params, device)
    meta = cls(**params, module=module)
    return _rebuild(meta, payload, decode(payload["attributes"]), module, path)


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
    estimator : meta-estimator, adapted estimator, PerSupport, PooledRegressor or AutoMeta
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

            def winner(p):
                if p["class"] in _SUPPORT:
                    return _load_support(p, path)
                return _load_meta(p, module, device, path)[0]

            return from_payload(payload, winner, decode)
        if name in _SUPPORT:
            return _load_support(payload, path)
        if name in _ADAPTED_CLASSES:
            attributes = payload["attributes"]
            _check_adapted_attributes(attributes, path)
            meta, predict_module = _load_meta(payload["meta_estimator"], module, device, path)
            return _adapted(_ADAPTED_CLASSES[name], meta, predict_module, decode(attributes))
        return _load_meta(payload, module, device, path)[0]
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        raise damaged(path, f"{type(e).__name__}: {e}") from e


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
