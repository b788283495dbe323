"""numbaconv.data (DataLoader, TensorDataset, digits, MNIST IDX and CIFAR-10 readers) and
numbaconv.serialization (save / load round trips, corrupt and hostile files)."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import sys
import zipfile

import numpy as np
import pytest

import numbaconv.autograd as ag
from numbaconv import data, nn, optim
from numbaconv.serialization import load, save

# ------------------------------------------------------------------------------------------- DataLoader


def make_dataset(n=10):
    x = ag.tensor(np.arange(n * 2, dtype=np.float32).reshape(n, 2))
    y = ag.tensor(np.arange(n))
    return data.TensorDataset(x, y)


def test_tensor_dataset():
    ds = make_dataset()
    assert len(ds) == 10
    x, y = ds[3]
    assert x.numpy().tolist() == [6.0, 7.0] and y.item() == 3
    with pytest.raises(ValueError, match="Size mismatch"):
        data.TensorDataset(ag.zeros(3, 2), ag.zeros(4))


def test_batches_in_order():
    loader = data.DataLoader(make_dataset(), batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and len(batches) == 3
    assert [b[1].numpy().tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    x, y = batches[0]
    assert isinstance(x, ag.Tensor) and x.shape == (4, 2) and x.dtype == np.float32 and y.dtype == np.int64
    assert len(list(data.DataLoader(make_dataset(), batch_size=4, drop_last=True))) == 2
    assert len(data.DataLoader(make_dataset(), batch_size=4, drop_last=True)) == 2
    assert len(list(data.DataLoader(make_dataset()))) == 10


def test_shuffle_is_a_permutation_and_seeded():
    def epochs(loader, n=2):
        return [np.concatenate([y.numpy() for _, y in loader]) for _ in range(n)]

    a = epochs(data.DataLoader(make_dataset(50), batch_size=8, shuffle=True, seed=1))
    b = epochs(data.DataLoader(make_dataset(50), batch_size=8, shuffle=True, seed=1))
    c = epochs(data.DataLoader(make_dataset(50), batch_size=8, shuffle=True, seed=2))
    assert sorted(a[0]) == list(range(50)) and sorted(a[1]) == list(range(50))
    assert not np.array_equal(a[0], a[1])  # a new order every epoch
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])  # the same sequence of orders for the same seed
    assert not np.array_equal(a[0], c[0])
    ag.manual_seed(5)
    d = epochs(data.DataLoader(make_dataset(50), batch_size=8, shuffle=True))
    ag.manual_seed(5)
    e = epochs(data.DataLoader(make_dataset(50), batch_size=8, shuffle=True))
    np.testing.assert_array_equal(d[0], e[0])  # seed=None follows numbaconv.manual_seed
    x, y = next(iter(data.DataLoader(make_dataset(50), batch_size=8, shuffle=True, seed=3)))
    np.testing.assert_array_equal(x.numpy()[:, 0], 2 * y.numpy())  # inputs stay paired with targets


def test_generic_dataset_is_collated():
    class Squares(data.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.full((2, 2), i, dtype=np.float32), i, float(i) / 2

    x, y, z = next(iter(data.DataLoader(Squares(), batch_size=3)))
    assert x.shape == (3, 2, 2) and x.dtype == np.float32
    assert y.numpy().tolist() == [0, 1, 2] and y.dtype == np.int64
    assert z.dtype == np.float64


def test_loader_argument_errors():
    with pytest.raises(ValueError, match="positive integer"):
        data.DataLoader(make_dataset(), batch_size=0)


# --------------------------------------------------------------------------------------------- digits


def test_digits():
    pytest.importorskip("sklearn")
    train, test = data.digits()
    assert len(train) + len(test) == 1797 and len(test) == 359
    x, y = train[0]
    assert x.shape == (1, 8, 8) and x.dtype == np.float32 and y.dtype == np.int64
    images = train.tensors[0].numpy()
    assert images.min() == 0.0 and images.max() == 1.0
    assert set(np.unique(test.tensors[1].numpy())) == set(range(10))
    train2, test2 = data.digits()
    np.testing.assert_array_equal(test.tensors[1].numpy(), test2.tensors[1].numpy())  # deterministic split


def test_digits_without_sklearn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r'pip install "numbaconv\[demo\]"'):
        data.digits()


# ---------------------------------------------------------------------------------------------- MNIST


def write_idx(path, array: np.ndarray, gz=False):
    codes = {np.uint8: 0x08}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.tobytes()
    with open(path, "wb") as f:
        f.write(gzip.compress(payload) if gz else payload)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7, dtype=np.uint8)
    suffix = ".gz" if gz else ""
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images, gz)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels, gz)
    ds = data.mnist(tmp_path, train=False)
    assert len(ds) == 7
    x, y = ds[2]
    assert x.shape == (1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64 and y.item() == labels[2]
    np.testing.assert_allclose(x.numpy()[0], images[2] / 255, rtol=1e-6)
    xb, yb = next(iter(data.DataLoader(ds, batch_size=4)))
    assert xb.shape == (4, 1, 28, 28) and xb.dtype == np.float32 and yb.numpy().tolist() == labels[:4].tolist()
    np.testing.assert_allclose(xb.numpy()[:, 0], images[:4] / 255, rtol=1e-6)


def test_mnist_torchvision_layout_and_errors(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "train-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    write_idx(raw / "train-labels-idx1-ubyte", np.zeros(2, np.uint8))
    assert len(data.mnist(tmp_path)) == 2
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"):
        data.mnist(tmp_path, train=False)
    write_idx(raw / "t10k-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    write_idx(raw / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="disagree"):
        data.mnist(tmp_path, train=False)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05abc")
    with pytest.raises(ValueError, match="size mismatch"):
        data.mnist(tmp_path, train=False)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ValueError, match="not an IDX file"):
        data.mnist(tmp_path, train=False)


# ------------------------------------------------------------------------------------------- CIFAR-10


def write_cifar_batch(path, n, seed, protocol=2):
    rng = np.random.default_rng(seed)
    batch = {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [b"img_%d.png" % i for i in range(n)],
    }
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=protocol)
    return batch


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10_batches(tmp_path, protocol):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    batches = [write_cifar_batch(base / f"data_batch_{i}", 3, i, protocol) for i in range(1, 6)]
    test_batch = write_cifar_batch(base / "test_batch", 4, 9, protocol)
    train = data.cifar10(tmp_path)
    assert len(train) == 15
    x, y = train[4]  # second image of data_batch_2
    expected = batches[1][b"data"][1].reshape(3, 32, 32) / 255
    assert x.shape == (3, 32, 32) and x.dtype == np.float32 and y.item() == batches[1][b"labels"][1]
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-6)
    test = data.cifar10(base, train=False)
    xb, yb = next(iter(data.DataLoader(test, batch_size=4)))
    assert xb.shape == (4, 3, 32, 32) and yb.numpy().tolist() == test_batch[b"labels"]


def test_cifar10_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5"):
        data.cifar10(tmp_path)
    with pytest.raises(FileNotFoundError, match="test_batch"):
        data.cifar10(tmp_path, train=False)
    (tmp_path / "test_batch").write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match="not a CIFAR-10 python batch"):
        data.cifar10(tmp_path, train=False)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 10), np.uint8), b"labels": [1, 2]}, f, protocol=2)
    with pytest.raises(ValueError, match=r"shape \(N, 3072\)"):
        data.cifar10(tmp_path, train=False)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-pickle",))


def test_cifar10_refuses_code_in_pickles(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": _Exploit(), b"labels": []}, f, protocol=2)
    with pytest.raises(ValueError, match="refusing to load"):
        data.cifar10(tmp_path, train=False)
    assert not (tmp_path / "pwned-by-pickle").exists()
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": np.array([_Exploit()], dtype=object), b"labels": []}, f, protocol=2)
    with pytest.raises(ValueError):
        data.cifar10(tmp_path, train=False)
    assert not (tmp_path / "pwned-by-pickle").exists()


# ------------------------------------------------------------------------------------------ save / load


def model():
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2 * 6 * 6, 3))


def test_save_load_model_round_trip(tmp_path):
    src = model()
    src[1](ag.randn(4, 2, 6, 6))  # non-trivial running statistics and num_batches_tracked
    path = tmp_path / "model.pth"  # any name: written exactly as given
    save(src.state_dict(), path)
    assert os.listdir(tmp_path) == ["model.pth"]
    loaded = load(path)
    assert list(loaded) == list(src.state_dict())
    assert all(isinstance(v, ag.Tensor) for v in loaded.values())
    assert loaded["1.num_batches_tracked"].dtype == np.int64 and loaded["1.num_batches_tracked"].shape == ()
    dst = model()
    dst.load_state_dict(loaded)
    for k, v in src.state_dict().items():
        np.testing.assert_array_equal(dst.state_dict()[k].numpy(), v.numpy())
    with np.load(path, allow_pickle=False) as npz:  # plain numpy can read the weights by their names
        np.testing.assert_array_equal(npz["0.weight"], src[0].weight.detach().numpy())


def test_save_load_nested_checkpoint(tmp_path):
    net = model()
    opt = optim.Adam(net.parameters(), lr=1e-3)
    net(ag.randn(2, 1, 8, 8)).sum().backward()
    opt.step()
    checkpoint = {
        "model": net.state_dict(),
        "optimizer": opt.state_dict(),
        "epoch": 3,
        "history": [0.5, float("nan"), None, True],
        "note": "a/b%c",
        "pair": (1, 2.5),
        "raw": np.arange(3),
        "odd/key": {7: "x"},
    }
    save(checkpoint, tmp_path / "ckpt.npz")
    back = load(tmp_path / "ckpt.npz")
    assert back["epoch"] == 3 and back["note"] == "a/b%c" and back["pair"] == (1, 2.5)
    assert back["history"][0] == 0.5 and np.isnan(back["history"][1]) and back["history"][2:] == [None, True]
    assert isinstance(back["raw"], np.ndarray) and back["raw"].tolist() == [0, 1, 2]
    assert back["odd/key"] == {7: "x"}
    osd = back["optimizer"]
    assert set(osd["state"]) == set(range(len(list(net.parameters()))))
    assert osd["param_groups"][0]["betas"] == (0.9, 0.999) and osd["param_groups"][0]["foreach"] is None
    opt2 = optim.Adam(model().parameters())
    opt2.load_state_dict(osd)
    assert opt2.param_groups[0]["lr"] == 1e-3


def test_save_rejects_unsupported_objects(tmp_path):
    with pytest.raises(TypeError, match="cannot save an object of type"):
        save({"f": lambda: 0}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="dtype object"):
        save({"a": np.array([object()])}, tmp_path / "x.npz")
    assert not os.listdir(tmp_path)  # nothing (not even a temporary file) left behind


def test_load_corrupt_and_hostile_files(tmp_path):
    good = tmp_path / "good.npz"
    save({"w": ag.ones(3)}, good)
    payload = good.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(payload[: len(payload) // 2])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x00" * 100)
    pickled = tmp_path / "pickled.pt"
    with open(pickled, "wb") as f:
        pickle.dump({"w": _Exploit()}, f)
    objects = tmp_path / "objects.npz"
    np.savez(objects, a=np.array([1, "x"], dtype=object))
    bad_index = tmp_path / "bad_index.npz"
    np.savez(bad_index, __numbaconv__=np.array('{"format": 1, "tree": {"tensor": "missing"}}'))
    npy = tmp_path / "array.npy"
    np.save(npy, np.zeros(3))
    for path in (truncated, garbage, pickled, objects, bad_index, npy):
        with pytest.raises(ValueError, match="not a valid numbaconv checkpoint") as info:
            load(path)
        assert str(path) in str(info.value)
    assert not (tmp_path / "pwned-by-pickle").exists()
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.npz")
    assert zipfile.is_zipfile(good)


def test_plain_npz_loads_as_flat_dict(tmp_path):
    np.savez(tmp_path / "w.npz", **{"fc.weight": np.ones((2, 3)), "fc.bias": np.zeros(2)})
    loaded = load(tmp_path / "w.npz")
    assert set(loaded) == {"fc.weight", "fc.bias"} and isinstance(loaded["fc.bias"], ag.Tensor)
    head = nn.Sequential()
    head.fc = nn.Linear(3, 2)
    head.load_state_dict(loaded)
    assert np.all(head.fc.weight.detach().numpy() == 1)


def test_failed_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "ckpt.npz"
    save({"w": ag.ones(2)}, path)
    with pytest.raises(TypeError):
        save({"w": ag.zeros(2), "bad": object()}, path)
    assert load(path)["w"].numpy().tolist() == [1.0, 1.0] and os.listdir(tmp_path) == ["ckpt.npz"]


def test_mismatched_checkpoint_leaves_model_unchanged(tmp_path):
    save(nn.Linear(4, 3).state_dict(), tmp_path / "small.npz")
    target = nn.Linear(5, 3)
    before = target.weight.detach().numpy().copy()
    with pytest.raises(RuntimeError, match="size mismatch for weight"):
        target.load_state_dict(load(tmp_path / "small.npz"))
    np.testing.assert_array_equal(target.weight.detach().numpy(), before)
