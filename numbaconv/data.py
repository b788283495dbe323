"""Datasets and a DataLoader: ``for inputs, targets in DataLoader(dataset, batch_size=32, shuffle=True)``.

Bundled readers, all returning ``(train, test)`` or one dataset of ``(image, label)`` pairs with images as
float32 ``(C, H, W)`` scaled to [0, 1] and labels int64:

- :func:`digits` -- scikit-learn's 8x8 handwritten digits (1797 images, shipped with scikit-learn: offline);
- :func:`mnist` -- the standard IDX files (``train-images-idx3-ubyte`` ..., optionally ``.gz``);
- :func:`cifar10` -- the CIFAR-10 "python version" batches (``data_batch_1`` ... ``test_batch``), read with
  an unpickler that can only rebuild numpy arrays and plain containers, never run code.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
from collections.abc import Iterator, Sequence

import numpy as np

from . import autograd
from .autograd import Tensor

__all__ = ["DataLoader", "Dataset", "TensorDataset", "cifar10", "digits", "mnist"]


class Dataset:
    """The protocol: ``__len__`` and ``__getitem__(i)`` returning a sample, e.g. an ``(input, target)`` pair.

    A dataset may also define ``_batch(indices) -> tuple`` to hand a DataLoader whole batches at once.
    """

    def __getitem__(self, index):
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


def _array(x) -> np.ndarray:
    return x._array if isinstance(x, Tensor) else np.asarray(x)


class TensorDataset(Dataset):
    """Samples are the ``i``-th rows of each tensor: ``TensorDataset(images, labels)[i] -> (image, label)``."""

    def __init__(self, *tensors) -> None:
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        self.tensors = tuple(t if isinstance(t, Tensor) else Tensor(np.asarray(t)) for t in tensors)
        n = self.tensors[0].shape[0] if self.tensors[0].ndim else None
        if n is None or any(t.ndim == 0 or t.shape[0] != n for t in self.tensors):
            raise ValueError(f"Size mismatch between tensors: first dimensions {[t.shape[:1] for t in self.tensors]}")

    def __getitem__(self, index):
        return tuple(Tensor(t._array[index]) for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def _batch(self, indices: np.ndarray) -> tuple[Tensor, ...]:
        return tuple(Tensor(t._array[indices]) for t in self.tensors)


class _ImageDataset(Dataset):
    """uint8 images kept as stored; converted to float32 / 255 per sample or per batch (saves memory)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels.astype(np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def _convert(self, images: np.ndarray) -> np.ndarray:
        return images.astype(np.float32) / np.float32(255)

    def __getitem__(self, index):
        return Tensor(self._convert(self.images[index])), Tensor(self.labels[index])

    def _batch(self, indices: np.ndarray) -> tuple[Tensor, Tensor]:
        return Tensor(self._convert(self.images[indices])), Tensor(self.labels[indices])


def _collate(samples: list):
    """Stack a list of samples: tuples field by field; Tensors/arrays stacked; ints -> int64, floats -> float64
    (PyTorch's ``default_collate``)."""
    first = samples[0]
    if isinstance(first, tuple | list):
        return tuple(_collate([s[i] for s in samples]) for i in range(len(first)))
    if isinstance(first, Tensor | np.ndarray | np.generic):
        return Tensor(np.stack([_array(s) for s in samples]))
    if isinstance(first, bool):
        return Tensor(np.array(samples, dtype=bool))
    if isinstance(first, int):
        return Tensor(np.array(samples, dtype=np.int64))
    if isinstance(first, float):
        return Tensor(np.array(samples, dtype=np.float64))
    raise TypeError(f"cannot collate samples of type {type(first).__name__}")


class DataLoader:
    """Batches of a dataset: each iteration is one epoch yielding stacked ``(inputs, targets)`` Tensors.

    ``shuffle=True`` draws a new permutation per epoch from a generator seeded with ``seed`` (so runs
    repeat exactly), or from numbaconv's global generator (``numbaconv.manual_seed``) when ``seed`` is None.
    ``drop_last=True`` drops a final batch smaller than ``batch_size``.
    """

    def __init__(
        self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False, seed: int | None = None
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, batch_size, shuffle, drop_last
        self.seed = seed
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _order(self) -> np.ndarray:
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        rng = self._rng if self._rng is not None else autograd.generator()
        return rng.permutation(n)

    def __iter__(self) -> Iterator:
        order = self._order()
        batched = getattr(self.dataset, "_batch", None)
        for start in range(0, len(order), self.batch_size):
            indices = order[start : start + self.batch_size]
            if self.drop_last and len(indices) < self.batch_size:
                return
            if batched is not None:
                yield batched(indices)
            else:
                yield _collate([self.dataset[int(i)] for i in indices])


# ------------------------------------------------------------------------------------------------ digits


def digits(test_size: float = 0.2, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """scikit-learn's 8x8 digits as ``(train, test)``: images float32 ``(N, 1, 8, 8)`` in [0, 1], int64 labels.

    The split is a fixed permutation (``seed``) with ``test_size`` of the 1797 images held out: 1438 / 359
    with the defaults. Needs scikit-learn (``pip install "numbaconv[demo]"``).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError(
            'numbaconv.data.digits() needs scikit-learn, which bundles the digits: pip install "numbaconv[demo]"'
        ) from e
    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    n_test = int(round(len(labels) * test_size))
    test, train = order[:n_test], order[n_test:]
    return TensorDataset(images[train], labels[train]), TensorDataset(images[test], labels[test])


# ------------------------------------------------------------------------------------------------- MNIST

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_maybe_gz(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def read_idx(path: str) -> np.ndarray:
    """One IDX file (the MNIST format: magic ``0 0 type ndim``, big-endian sizes, then the data)."""
    data = _read_maybe_gz(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {data[:4].hex()})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = math.prod(shape) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"{path}: IDX size mismatch: header says {shape} ({expected} bytes), found {len(data) - header}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(root: str, names: Sequence[str], subdirs: Sequence[str], dataset: str) -> list[str]:
    """Paths of ``names`` (each also accepted with ``.gz``) in ``root`` or one of its ``subdirs``."""
    for sub in subdirs:
        base = os.path.join(root, sub)
        found = []
        for name in names:
            for candidate in (name, name + ".gz"):
                if os.path.isfile(os.path.join(base, candidate)):
                    found.append(os.path.join(base, candidate))
                    break
        if len(found) == len(names):
            return found
    where = " or ".join(repr(os.path.join(root, s) if s else root) for s in subdirs)
    raise FileNotFoundError(f"{dataset} files not found: expected {', '.join(names)} in {where}")


def mnist(root: str, train: bool = True) -> Dataset:
    """MNIST (or any IDX-format set, e.g. Fashion-MNIST) from ``root`` (or ``root/MNIST/raw``).

    Files: ``train-images-idx3-ubyte``/``train-labels-idx1-ubyte`` (``train=True``) or ``t10k-images-idx3-ubyte``/
    ``t10k-labels-idx1-ubyte``, each optionally gzipped. Samples: float32 ``(1, 28, 28)`` in [0, 1], int64 label.
    """
    prefix = "train" if train else "t10k"
    names = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
    image_path, label_path = _find(os.fspath(root), names, ["", os.path.join("MNIST", "raw")], "MNIST")
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"MNIST files disagree: images {images.shape} from {image_path}, labels {labels.shape}")
    return _ImageDataset(images[:, None, :, :].astype(np.uint8, copy=False), labels)


# ---------------------------------------------------------------------------------------------- CIFAR-10


def _reconstruct(subtype, shape, dtype_code):
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError("only plain numpy arrays may be unpickled")
    return np.ndarray.__new__(np.ndarray, shape, dtype_code)


def _frombuffer(buffer, dtype, shape, order, axis_order=None):
    array = np.frombuffer(buffer, dtype=_dtype(dtype) if not isinstance(dtype, np.dtype) else dtype)
    array = array.reshape(shape, order=order)
    return (array if axis_order is None else array.transpose(axis_order)).copy()


def _codecs_encode(text, encoding="utf-8"):
    """Protocol-2 pickles written by Python 3 spell bytes as ``_codecs.encode(str, "latin1")``."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("only latin1 byte strings may be unpickled")
    return text.encode(encoding)


def _dtype(obj, align=False, copy=False):
    if not isinstance(obj, str) or "O" in obj:
        raise pickle.UnpicklingError(f"dtype {obj!r} is not allowed")
    return np.dtype(obj, align, copy)


class _ArrayUnpickler(pickle.Unpickler):
    """Resolves only the globals a pickled numpy array needs; anything else is refused (no code runs)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy.core.numeric", "_frombuffer"): _frombuffer,
        ("numpy._core.numeric", "_frombuffer"): _frombuffer,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _dtype,
        ("_codecs", "encode"): _codecs_encode,
    }

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file") from None


def _load_cifar_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        raw = f.read()
    try:
        batch = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
        if not isinstance(batch, dict):
            raise ValueError("not a dict")
        batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
        data = batch["data"]
        labels = np.asarray(batch["labels"] if "labels" in batch else batch["fine_labels"], dtype=np.int64)
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise ValueError(f"'data' should be a uint8 array of shape (N, 3072), got {getattr(data, 'shape', data)}")
        if labels.shape != (len(data),):
            raise ValueError(f"{len(labels)} labels for {len(data)} images")
    except (pickle.UnpicklingError, ValueError, KeyError, TypeError, EOFError, AttributeError) as e:
        raise ValueError(f"{path}: not a CIFAR-10 python batch ({e})") from e
    return data.reshape(-1, 3, 32, 32), labels


def cifar10(root: str, train: bool = True) -> Dataset:
    """CIFAR-10 from the python batches in ``root`` or ``root/cifar-10-batches-py``.

    Files: ``data_batch_1`` ... ``data_batch_5`` (``train=True``) or ``test_batch``. Samples: float32
    ``(3, 32, 32)`` in [0, 1] and an int64 label. The pickles are read by a restricted unpickler.
    """
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    root = os.fspath(root)
    for sub in ("", "cifar-10-batches-py"):
        paths = [os.path.join(root, sub, n) for n in names]
        if all(os.path.isfile(p) for p in paths):
            break
    else:
        raise FileNotFoundError(
            f"CIFAR-10 files not found: expected {', '.join(names)} in {root!r} or "
            f"{os.path.join(root, 'cifar-10-batches-py')!r} (the python version, cifar-10-python.tar.gz, extracted)"
        )
    parts = [_load_cifar_batch(p) for p in paths]
    return _ImageDataset(np.concatenate([d for d, _ in parts]), np.concatenate([lab for _, lab in parts]))
