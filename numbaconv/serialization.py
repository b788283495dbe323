"""save / load: checkpoints as ``.npz`` files that hold only arrays and JSON -- never pickled code.

``save(obj, path)`` accepts a state dict (or any nesting of dicts, lists and tuples) whose leaves are
Tensors, numpy arrays, numbers, strings, booleans or None: a model's ``state_dict()``, an optimizer's, or a
checkpoint such as ``{"model": ..., "optimizer": ..., "epoch": 3}``. Each array is stored under its path
(``conv1.weight``, ``optimizer/state/0/exp_avg``), so ``numpy.load`` reads a model's weights by their
PyTorch names; the tree's shape is stored as JSON in the ``__numbaconv__`` entry.

``load(path)`` reads with ``allow_pickle=False``: an untrusted file cannot run anything. A file that is
not a valid checkpoint raises ValueError naming the path. Arrays come back as Tensors.
"""

from __future__ import annotations

import io
import json
import os
import uuid
import zipfile

import numpy as np

from .autograd import Tensor

__all__ = ["load", "save"]

_META = "__numbaconv__"
_FORMAT = 1


def _escape(key: str) -> str:
    return key.replace("%", "%25").replace("/", "%2F")


def _encode(obj, path: str, arrays: dict[str, np.ndarray]):
    """The JSON description of ``obj``; arrays are moved into ``arrays`` under unique path-like names."""
    if isinstance(obj, Tensor | np.ndarray):
        array = obj._array if isinstance(obj, Tensor) else obj
        if array.dtype.kind not in "biufc":
            raise TypeError(f"cannot save an array of dtype {array.dtype} at {path or '<root>'!r}")
        name = path or "array"
        while name in arrays or name == _META:
            name += "_"
        arrays[name] = array
        return {"tensor" if isinstance(obj, Tensor) else "ndarray": name}
    if isinstance(obj, dict):
        items = []
        for key, value in obj.items():
            if isinstance(key, bool) or not isinstance(key, str | int):
                raise TypeError(f"cannot save a dict key of type {type(key).__name__} ({key!r})")
            sub = (path + "/" if path else "") + _escape(str(key))
            items.append([key, _encode(value, sub, arrays)])
        return {"dict": items}
    if isinstance(obj, list | tuple):
        encoded = [_encode(v, (path + "/" if path else "") + str(i), arrays) for i, v in enumerate(obj)]
        return {"tuple" if isinstance(obj, tuple) else "list": encoded}
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, bool | int | float | str):
        return {"value": obj}
    raise TypeError(f"cannot save an object of type {type(obj).__name__} at {path or '<root>'!r}")


def save(obj, f) -> None:
    """Write ``obj`` (a state dict or a nesting of dicts/lists/tuples of arrays and plain values) to ``f``.

    ``f`` is a path (written exactly as given, through a temporary file and an atomic rename, so an
    existing checkpoint is never left half-written) or a binary file object.
    """
    arrays: dict[str, np.ndarray] = {}
    tree = _encode(obj, "", arrays)
    meta = json.dumps({"format": _FORMAT, "tree": tree}, allow_nan=True)
    arrays[_META] = np.array(meta)
    if not isinstance(f, str | os.PathLike):
        np.savez(f, **arrays)
        return
    path = os.fspath(f)
    tmp = f"{path}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"  # same directory, so the rename is atomic
    try:
        with open(tmp, "xb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


class _Invalid(Exception):
    pass


def _decode(node, arrays: dict[str, np.ndarray]):
    if not isinstance(node, dict) or len(node) != 1:
        raise _Invalid(f"malformed entry {node!r:.80}")
    ((kind, value),) = node.items()
    if kind in ("tensor", "ndarray"):
        if not isinstance(value, str) or value not in arrays:
            raise _Invalid(f"missing array {value!r}")
        array = arrays[value]
        return Tensor(array) if kind == "tensor" else array
    if kind == "dict" and isinstance(value, list):
        out = {}
        for item in value:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str | int)):
                raise _Invalid(f"malformed dict item {item!r:.80}")
            out[item[0]] = _decode(item[1], arrays)
        return out
    if kind in ("list", "tuple") and isinstance(value, list):
        items = [_decode(v, arrays) for v in value]
        return tuple(items) if kind == "tuple" else items
    if kind == "value" and (value is None or isinstance(value, bool | int | float | str)):
        return value
    raise _Invalid(f"unknown entry kind {kind!r}")


def load(f):
    """Read a file written by :func:`save` (Tensors where Tensors were saved).

    A plain ``.npz`` of arrays (e.g. from ``numpy.savez``) loads as a flat ``{name: Tensor}`` dict. Anything
    else -- a truncated or corrupt file, a file holding pickled objects, a malformed index -- raises
    ValueError naming the path; nothing is executed.
    """
    name = os.fspath(f) if isinstance(f, str | os.PathLike) else getattr(f, "name", repr(f))
    if isinstance(f, str | os.PathLike):
        with open(f, "rb") as handle:  # a missing or unreadable file raises FileNotFoundError / OSError
            data = handle.read()
    else:
        data = f.read()
    try:
        npz = np.load(io.BytesIO(data), allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise _Invalid("an .npy array, not an .npz archive")
        with npz:
            arrays = {key: npz[key] for key in npz.files}
        if _META not in arrays:
            return {key: Tensor(array) for key, array in arrays.items()}
        meta = json.loads(str(arrays.pop(_META)[()]))
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT or "tree" not in meta:
            raise _Invalid("unsupported checkpoint format")
        for key, array in arrays.items():
            if array.dtype.kind not in "biufc":
                raise _Invalid(f"array {key!r} has unsupported dtype {array.dtype}")
        return _decode(meta["tree"], arrays)
    except (_Invalid, ValueError, OSError, EOFError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise ValueError(f"{name}: not a valid numbaconv checkpoint ({type(e).__name__}: {e})") from e
