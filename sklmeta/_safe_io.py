"""Reading and writing sklmeta's files safely: bounded, checked before unpickling, atomic.

What :mod:`sklmeta.persistence` and :mod:`sklmeta.callbacks` share: regular files
only, read within a size bound; the zip archive and the pickle inside a torch file
walked and checked (allowed globals, no shared references, bounded depth, tensors
within their storages) before ``torch.load(weights_only=True)`` runs; a SHA-256 of
tensors and plain values; writes to a temporary file in the same folder, fsynced
and renamed over the target. The bounds are documented in
:mod:`sklmeta.persistence`'s docstring.
"""

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

import torch

__all__ = ["MAX_DEPTH", "MAX_DIMS", "MAX_FILE_BYTES", "UMASK", "atomic_write", "damaged", "digest",
           "fsync_folder", "int_within", "not_ours", "read_bytes", "read_torch", "refuse_code"]

MAX_FILE_BYTES = 2**30   # the file, and so every tensor in it
MAX_DEPTH = 32           # nesting of lists, tuples and dicts
_MAX_RECORDS = 2**16     # records in the zip archive
MAX_DIMS = 8             # dimensions of a tensor

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
            os.fchmod(fd, 0o666 & ~UMASK)
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


UMASK = _umask()


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


def refuse_code(path, named):
    return ValueError(
        f"Refusing to load {path}: it holds objects other than tensors and plain "
        f"values{f' (it names {named})' if named else ''}, which only a pickle that runs code "
        "on load needs. sklmeta.save never writes such a file: it was tampered with, or "
        "written by pickle, joblib or torch.save of another object. Open it with pickle or "
        "joblib only if you trust its source."
    )


def not_ours(path, why):
    return ValueError(f"{path} is not a file written by sklmeta.save ({why}; nothing in it "
                      "was run).")


def damaged(path, why):
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
        raise damaged(path, "a pickle mark is missing")

    def container(children, kind="container"):
        depth = 1 + max((c.depth for c in children), default=0)
        if depth > MAX_DEPTH:
            raise ValueError(f"Refusing to load {path}: its values nest deeper than "
                             f"MAX_DEPTH={MAX_DEPTH}.")
        return _Item(kind, depth, children if kind == "tuple" else None)

    def add_to_top(children):
        if not stack or stack[-1].kind != "container":
            raise damaged(path, "a pickle adds items to something that is not a container")
        top = stack[-1]
        grown = container(children)
        top.depth = max(top.depth, grown.depth)

    def global_name(module, name):
        full = f"{module}.{name}"
        if full not in _ALLOWED_GLOBALS:
            raise refuse_code(path, full)
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
                    raise damaged(path, "the pickle stack underflows")
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
                    raise damaged(path, "the pickle stack underflows")
                memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                item = memo.get(arg)
                if item is None:
                    raise damaged(path, "a pickle memo reference is missing")
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
                    raise damaged(path, "a pickle global is not named by strings")
                stack.append(global_name(module.value, attr.value))
            elif name == "BINPERSID":
                stack.append(_storage(stack.pop(), records, path))
            elif name == "REDUCE":
                args, func = stack.pop(), stack.pop()
                stack.append(_reduce(func, args, path))
            elif name == "BUILD" and len(stack) > 1 and stack[-2].value == _ORDERED_DICT:
                add_to_top([stack.pop()])  # a state_dict's _metadata
            else:  # BUILD, NEWOBJ, INST, OBJ, EXT*, bytes, sets...
                raise refuse_code(path, f"pickle opcode {name}")
    except IndexError as e:
        raise damaged(path, "the pickle stack underflows") from e
    except ValueError as e:
        if str(e).startswith(("Refusing", f"{path}")):
            raise
        raise not_ours(path, f"not a valid pickle: {e}") from e


def _storage(pid, records, path):
    """A persistent id ``('storage', StorageType, key, location, numel)``, checked."""
    parts = pid.value if pid.kind == "tuple" else None
    if (records is None or parts is None or len(parts) != 5
            or [p.kind for p in parts] != ["atom", "global", "atom", "atom", "atom"]
            or parts[0].value != "storage" or parts[1].value not in _STORAGE_ITEMSIZE
            or not isinstance(parts[2].value, str) or not isinstance(parts[4].value, int)):
        raise damaged(path, "a tensor storage is not described as torch.save describes it")
    key, numel = parts[2].value, parts[4].value
    size = records.get(key)
    if size is None or numel < 0 or numel * _STORAGE_ITEMSIZE[parts[1].value] != size:
        raise damaged(path, f"tensor storage {key!r} declares {numel} elements, but its "
                             f"record holds {size} bytes")
    return _Item("storage", 0, (size, _STORAGE_ITEMSIZE[parts[1].value]))


def _reduce(func, args, path):
    if func.kind != "global" or args.kind != "tuple":
        raise refuse_code(path, "a call that is not to a global")
    if func.value == _ORDERED_DICT:
        if args.value:
            raise damaged(path, "an OrderedDict built with arguments")
        return _Item("container", 1, _ORDERED_DICT)
    if func.value not in _REBUILD_TENSOR:
        raise refuse_code(path, func.value)
    parts = args.value
    v3 = func.value.endswith("v3")
    if (len(parts) != (7 if v3 else 6) or parts[0].kind != "storage" or parts[1].kind != "atom"
            or parts[2].kind != "tuple" or parts[3].kind != "tuple"
            or v3 and (parts[6].kind != "global" or parts[6].value not in _DTYPE_ITEMSIZE)):
        raise damaged(path, "a tensor is not described as torch.save describes it")
    nbytes, itemsize = parts[0].value
    if v3:
        itemsize = _DTYPE_ITEMSIZE[parts[6].value]
    capacity = nbytes // itemsize
    offset = parts[1].value
    size = [p.value for p in parts[2].value]
    stride = [p.value for p in parts[3].value]
    if (not isinstance(offset, int) or len(size) != len(stride) or len(size) > MAX_DIMS
            or not all(isinstance(v, int) and v >= 0 for v in size + stride + [offset])):
        raise damaged(path, f"a tensor has size {size} and stride {stride}")
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
        raise damaged(path, f"a tensor of {numel} elements at offset {offset} reaches past "
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
        raise not_ours(path, "it is not a torch zip archive") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > _MAX_RECORDS:
            raise damaged(path, f"{len(infos)} records, more than {_MAX_RECORDS}")
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise damaged(path, "two records have the same name")
        total = 0
        for info in infos:
            if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
                raise damaged(path, f"record {info.filename} is compressed; torch.save "
                                     "stores records as they are")
            total += info.file_size
        if total > len(data):
            raise damaged(path, f"its records declare {total} bytes in a file of {len(data)}")
        prefix = names[0].split("/", 1)[0] if names else ""
        pickled = f"{prefix}/data.pkl"
        if pickled not in names or not all(n.startswith(prefix + "/") for n in names):
            raise not_ours(path, "a zip archive but not a torch file")
        try:
            for info in infos:  # ZipFile.read checks each record's CRC
                archive.read(info)
        except zipfile.BadZipFile as e:
            raise damaged(path, f"a record fails its CRC check: {e}") from e
        records = {i.filename[len(prefix) + 6:]: i.file_size for i in infos
                   if i.filename.startswith(prefix + "/data/")}
        _check_pickle(archive.read(pickled), path, records)


def _check_tensors(value, path):
    """Every tensor contiguous and within its storage (refused, never copied, if not)."""
    if isinstance(value, torch.Tensor):
        if not value.is_contiguous() or (
                value.numel() and (value.storage_offset() + value.numel()) * value.element_size()
                > value.untyped_storage().nbytes()):
            raise damaged(path, f"a tensor of shape {tuple(value.shape)} is not contiguous "
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
        raise not_ours(path, "it is empty")
    _check_archive(data, path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. on TypedStorage; the file is checked
            value = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # pickle.UnpicklingError, RuntimeError from the zip reader...
        raise not_ours(path, f"{type(e).__name__}: {e}") from e
    _check_tensors(value, path)
    return value, data


# ------------------------------------------------------------------- checksum
def digest(value):
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
def int_within(value, name, low, high, path):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"Refusing to load {path}: {name} is {value!r}; sklmeta loads "
                         f"integers from {low} to {high} there.")

