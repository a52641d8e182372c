"""Crash-safe checkpoints for resuming a meta-training: :class:`Checkpoint`, :class:`LoadInitState`.

skorch's own ``Checkpoint`` writes ``params.pt``, ``optimizer.pt`` and
``history.json`` one after the other, in place: a process killed between two of
them leaves files from two different epochs, which a resume loads without a
word (it runs an epoch twice, or crashes on every later try); a full or
read-only folder only reaches its ``sink`` (silent by default) while the
history records ``event_cp=True``; and skorch's ``LoadInitState`` starts from
fresh weights with the old epoch count when ``params.pt`` is missing, and
starts over when ``history.json`` is. These callbacks replace the pair.

:class:`Checkpoint` writes each checkpoint into a new temporary folder inside
``dirname``: ``params.pt`` (the Learner's state_dict: the network and
Meta-SGD's step sizes), ``optimizer.pt``, ``history.json`` and, last,
``manifest.json`` (the epoch and each file's SHA-256), every file fsynced. The
folder is then renamed to ``epoch-NNNNNN.<token>`` and the file ``latest``,
which names it, is replaced atomically (:func:`sklmeta._safe_io.atomic_write`).
Replacing ``latest`` is the commit: a process killed at any moment before it
leaves the previous checkpoint in force, after it the new one. (The first save
in a folder first writes a ``latest`` that names no checkpoint yet.) Only then
are older checkpoints (beyond ``keep``) and the leftovers of killed writes
removed. A failed write (a full disk, a folder that cannot be created) records
``event_cp=False`` and raises :class:`CheckpointError` (``on_error="raise"``,
the default) or warns (``on_error="warn"``).

:class:`LoadInitState` loads the checkpoint that ``latest`` names at train
begin: weights, optimizer state and history, after checking every file against
the manifest. A folder that does not exist, holds nothing but the leftovers of
a killed write, or whose ``latest`` names no checkpoint yet is a fresh start.
Anything else that is not a complete checkpoint (a file missing or changed,
``latest`` missing while checkpoints or other files are there, skorch's own
checkpoint files) raises a ``ValueError`` naming what is wrong: it never
starts over silently. The files are read by
:func:`sklmeta._safe_io.read_torch`: regular files only, within the size
bound, a strict pickle allow-list, ``torch.load(weights_only=True)``.

A resumed run trains exactly as an uninterrupted one: with the same data,
parameters and integer ``random_state``, 3 epochs and 3 resumed epochs give
bit-identical weights and optimizer state to 6 epochs (each epoch draws its
episodes from the fit's seed and its number, which the loaded history gives).
"""

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import tempfile
import warnings

import torch
from skorch.callbacks import Callback
from skorch.history import History

from ._safe_io import UMASK, atomic_write, fsync_folder, read_bytes, read_torch

__all__ = ["Checkpoint", "LoadInitState", "CheckpointError", "CheckpointWarning",
           "last_epoch"]

_FORMAT = "sklmeta-checkpoint"
_VERSION = 1
_FILES = ("params.pt", "optimizer.pt", "history.json")
_LATEST = "latest"
_FOLDER = re.compile(r"^epoch-(\d{6,})\.[0-9a-f]{8}$")
_TEMPORARY = ".tmp-"
_LEFTOVERS = (_TEMPORARY, f".{_LATEST}.")  # what a killed write leaves: ignored, then removed


class CheckpointError(OSError):
    """A checkpoint could not be written (the previous one, if any, is intact)."""


class CheckpointWarning(UserWarning):
    """A checkpoint could not be written and ``on_error="warn"``: training goes on."""


def _write_file(path, data):
    """Write ``data`` to a new file and fsync it."""
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _torch_bytes(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _point(latest, name, epoch):
    """Replace the file ``latest`` atomically: it names the checkpoint in force."""
    pointer = json.dumps({"checkpoint": name, "epoch": epoch}).encode()
    atomic_write(latest, lambda f: f.write(pointer))


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _read_latest(dirname):
    """The checkpoint ``latest`` names (a ValueError if it is not one), or None."""
    latest = os.path.join(dirname, _LATEST)
    if not os.path.lexists(latest):
        if not os.path.isdir(dirname):
            return None
        others = [n for n in os.listdir(dirname) if not n.startswith(_LEFTOVERS)]
        if not others:
            return None  # nothing, or only the leftovers of a write that was killed
        raise ValueError(
            f"{dirname} holds {sorted(others)[:5]} but no {_LATEST!r} file naming a complete "
            "sklmeta checkpoint; refusing to start over from fresh weights. Remove the "
            "folder (or use another dirname) to start a new run."
        )
    try:
        pointer = json.loads(read_bytes(latest, 4096))
        name = pointer["checkpoint"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{latest} is damaged ({e}); it should name the last complete "
                         "checkpoint.") from e
    if name is None:
        return None  # the folder was started, no checkpoint committed yet
    if not isinstance(name, str) or not _FOLDER.match(name):
        raise ValueError(f"{latest} names {name!r}, which is not a checkpoint folder.")
    return os.path.join(dirname, name)


def _verified(folder):
    """The manifest and the bytes of each file of a checkpoint folder, all checked."""
    try:
        manifest = json.loads(read_bytes(os.path.join(folder, "manifest.json"), 1 << 16))
    except FileNotFoundError as e:
        raise ValueError(f"The checkpoint {folder} is incomplete: manifest.json is missing.") \
            from e
    except ValueError as e:
        raise ValueError(f"The checkpoint {folder} is damaged: manifest.json ({e}).") from e
    if (not isinstance(manifest, dict) or manifest.get("format") != _FORMAT
            or manifest.get("version") != _VERSION
            or not isinstance(manifest.get("files"), dict)
            or not isinstance(manifest.get("epoch"), int)):
        raise ValueError(f"The checkpoint {folder} has a manifest.json sklmeta did not write.")
    data = {}
    for name in _FILES:
        path = os.path.join(folder, name)
        try:
            data[name] = read_bytes(path)
        except FileNotFoundError as e:
            raise ValueError(f"The checkpoint {folder} is incomplete: {name} is missing; "
                             "refusing to resume from part of a checkpoint.") from e
        if _sha256(data[name]) != manifest["files"].get(name):
            raise ValueError(f"The checkpoint file {path} does not match its checksum in "
                             "manifest.json: it was corrupted or changed after it was written.")
    return manifest, data


def last_epoch(dirname):
    """The number of epochs in the checkpoint a resume would load (0 if none).

    Parameters
    ----------
    dirname : str or path-like
        The folder given to :class:`Checkpoint`.

    Returns
    -------
    epochs : int
        To train ``N`` epochs in all, resume with ``max_epochs=N - last_epoch(dirname)``.

    Raises
    ------
    ValueError
        As :class:`LoadInitState` does, when the folder holds no complete checkpoint
        but is not empty.

    Examples
    --------
    >>> import tempfile
    >>> from sklmeta.callbacks import last_epoch
    >>> last_epoch(tempfile.mkdtemp())
    0
    """
    folder = _read_latest(os.fspath(dirname))
    return 0 if folder is None else _verified(folder)[0]["epoch"]


class Checkpoint(Callback):
    """Save the weights, optimizer state and history, atomically, after each epoch.

    See the module docstring for the layout and what survives a crash. Use it
    with :class:`LoadInitState` to resume.

    Parameters
    ----------
    dirname : str or path-like
        The checkpoint folder (created if missing). One run per folder.
    monitor : None, str or callable, default=None
        None: save after every epoch. A str: save when that history key is true
        for the epoch (e.g. ``"valid_loss_best"``). A callable: save when
        ``monitor(net)`` is true.
    keep : int, default=1
        How many complete checkpoints to keep (the newest).
    on_error : {"raise", "warn"}, default="raise"
        What a failed write does (the epoch records ``event_cp=False`` either way):
        raise :class:`CheckpointError`, which stops the fit, or warn with a
        :class:`CheckpointWarning` and train on.
    event_name : str, default="event_cp"
        The history key recording whether the epoch was saved.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklmeta import MAMLRegressor, TaskSplitter
    >>> from sklmeta.callbacks import Checkpoint, LoadInitState, last_epoch
    >>> from sklmeta.datasets import make_sinusoid_tasks
    >>> tasks = make_sinusoid_tasks(n_tasks=20, random_state=0)
    >>> run = os.path.join(tempfile.mkdtemp(), "run")
    >>> def maml(max_epochs):
    ...     cp = Checkpoint(run)
    ...     return MAMLRegressor(
    ...         task_splitter=TaskSplitter(k_shot=5, n_query=5, n_tasks=8, random_state=0),
    ...         hidden_layer_sizes=(8,), max_epochs=max_epochs, early_stopping=False,
    ...         random_state=0, callbacks=[cp, LoadInitState(cp)])
    >>> len(maml(2).fit(tasks).history_), last_epoch(run)
    (2, 2)
    >>> len(maml(1).fit(tasks).history_)  # resumed: epoch 3
    3
    """

    def __init__(self, dirname, monitor=None, keep=1, on_error="raise", event_name="event_cp"):
        self.dirname = dirname
        self.monitor = monitor
        self.keep = keep
        self.on_error = on_error
        self.event_name = event_name

    def initialize(self):
        if self.on_error not in ("raise", "warn"):
            raise ValueError(f"on_error must be 'raise' or 'warn'; got {self.on_error!r}.")
        if isinstance(self.keep, bool) or not isinstance(self.keep, int) or self.keep < 1:
            raise ValueError(f"keep must be an integer >= 1; got {self.keep!r}.")
        return self

    def _wanted(self, net):
        if self.monitor is None:
            return True
        if callable(self.monitor):
            return bool(self.monitor(net))
        try:
            return bool(net.history[-1, self.monitor])
        except KeyError as e:
            raise ValueError(f"Checkpoint monitors {self.monitor!r}, which the history does "
                             f"not record (it has {sorted(net.history[-1])}).") from e

    def on_epoch_end(self, net, **kwargs):
        if not self._wanted(net):
            if self.event_name is not None:
                net.history.record(self.event_name, False)
            return
        if self.event_name is not None:  # the saved history records this epoch as saved
            net.history.record(self.event_name, True)
        accelerator = getattr(net, "accelerator", None)
        if accelerator is not None and not accelerator.is_main_process:
            return  # in a distributed fit, the main process writes the checkpoints
        try:
            self.save(net)
        except OSError as e:
            if self.event_name is not None:
                net.history.record(self.event_name, False)
            message = (
                f"Checkpoint could not save epoch {len(net.history)} in {self.dirname}: "
                f"{e}. A resume starts from the last complete checkpoint "
                f"(epoch {self._last_saved()})."
            )
            if self.on_error == "raise":
                raise CheckpointError(getattr(e, "errno", None) or 0, message) from e
            warnings.warn(message, CheckpointWarning, stacklevel=2)

    def _last_saved(self):
        try:
            return last_epoch(self.dirname)
        except (ValueError, OSError):
            return "none readable"

    def save(self, net):
        """Write a checkpoint of ``net`` now; return its folder. OSError on failure."""
        dirname = os.fspath(self.dirname)
        epoch = len(net.history)
        try:
            history = json.dumps(net.history.to_list()).encode()
        except TypeError as e:  # e.g. an object a user callback recorded
            raise TypeError(f"Checkpoint saves the history as JSON, and epoch {epoch} holds a "
                            f"value JSON cannot store: {e}.") from e
        contents = {
            "params.pt": _torch_bytes(net.module_.state_dict()),
            "optimizer.pt": _torch_bytes(net.optimizer_.state_dict()),
            "history.json": history,
        }
        os.makedirs(dirname, exist_ok=True)
        latest = os.path.join(dirname, _LATEST)
        if not os.path.lexists(latest):  # claim the folder: "no checkpoint committed yet"
            _point(latest, None, 0)
        temporary = tempfile.mkdtemp(prefix=_TEMPORARY, dir=dirname)
        try:
            os.chmod(temporary, 0o777 & ~UMASK)  # as makedirs would, not mkdtemp's 0700
            for name in _FILES:
                _write_file(os.path.join(temporary, name), contents[name])
            manifest = {"format": _FORMAT, "version": _VERSION, "epoch": epoch,
                        "files": {n: _sha256(contents[n]) for n in _FILES}}
            _write_file(os.path.join(temporary, "manifest.json"),
                        json.dumps(manifest, indent=1).encode())
            fsync_folder(temporary)
            name = f"epoch-{epoch:06d}.{secrets.token_hex(4)}"
            os.rename(temporary, os.path.join(dirname, name))
        except OSError:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        fsync_folder(dirname)
        _point(latest, name, epoch)  # the commit
        self._prune(dirname, name)
        return os.path.join(dirname, name)

    def _prune(self, dirname, current):
        """Remove older checkpoints beyond ``keep``, and leftovers of killed writes."""
        epoch = int(_FOLDER.match(current).group(1))
        older = sorted((n for n in os.listdir(dirname)
                        if _FOLDER.match(n) and n != current
                        and int(_FOLDER.match(n).group(1)) < epoch), reverse=True)
        kept = set(older[: self.keep - 1])
        for name in os.listdir(dirname):
            if name == current or name in kept:
                continue
            path = os.path.join(dirname, name)
            if _FOLDER.match(name) or name.startswith(_TEMPORARY):
                shutil.rmtree(path, ignore_errors=True)
            elif name.startswith(_LEFTOVERS):
                with contextlib.suppress(OSError):
                    os.unlink(path)


class LoadInitState(Callback):
    """At train begin, load the last complete checkpoint :class:`Checkpoint` wrote.

    Loads the weights (Meta-SGD's step sizes included), the optimizer state and
    the history, after checking every file against the checkpoint's manifest. A
    missing or empty folder is a fresh start; a folder that holds anything but a
    complete checkpoint raises a ``ValueError`` (see the module docstring).

    Parameters
    ----------
    checkpoint : Checkpoint
        The callback that writes the checkpoints (its ``dirname`` is read).

    Attributes
    ----------
    loaded_epoch_ : int
        The epochs in the checkpoint loaded (0: nothing loaded, a fresh start).
    """

    def __init__(self, checkpoint):
        self.checkpoint = checkpoint

    def initialize(self):
        if not isinstance(self.checkpoint, Checkpoint):
            raise TypeError("LoadInitState needs a sklmeta.callbacks.Checkpoint; got "
                            f"{type(self.checkpoint).__name__}.")
        self.did_load_ = False
        self.loaded_epoch_ = 0
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        if self.did_load_:
            return
        self.did_load_ = True
        folder = _read_latest(os.fspath(self.checkpoint.dirname))
        if folder is None:
            return
        manifest, data = _verified(folder)
        params, _ = read_torch(io.BytesIO(data["params.pt"]))
        optimizer, _ = read_torch(io.BytesIO(data["optimizer.pt"]))
        try:
            history = json.loads(data["history.json"])
        except ValueError as e:
            raise ValueError(f"The checkpoint {folder} has a damaged history.json: {e}") from e
        if not isinstance(history, list) or len(history) != manifest["epoch"]:
            raise ValueError(f"The checkpoint {folder} has a history of "
                             f"{len(history) if isinstance(history, list) else '?'} epochs "
                             f"for epoch {manifest['epoch']}.")
        try:
            net.module_.load_state_dict(params)
            net.optimizer_.load_state_dict(optimizer)
        except (RuntimeError, ValueError, KeyError) as e:
            raise ValueError(f"The checkpoint {folder} does not fit this estimator (another "
                             f"architecture or algorithm?): {e}") from e
        net.history = History(history)
        self.loaded_epoch_ = manifest["epoch"]
