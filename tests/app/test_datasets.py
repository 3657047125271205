"""Tests of ganfast.datasets: tiny MNIST / CIFAR-10 files written in the real formats, the
scikit-learn digits, error messages, and the restricted unpickler."""
from __future__ import annotations

import dataclasses
import gzip
import io
import os
import pickle
import struct
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from ganfast.app.datasets import (
    IMAGE_SHAPES,
    DatasetFormatError,
    DatasetNotFoundError,
    ImageSet,
    load_cifar10,
    load_digits,
    load_images,
    load_mnist,
)

MNIST_STEMS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
CIFAR_TRAIN = [f"data_batch_{k}" for k in range(1, 6)]


# --- writing files in the real formats ------------------------------------------------------

def write_idx(path: Path, array: np.ndarray, magic: int | None = None, gz: bool = False,
              cut: int = 0) -> Path:
    """IDX ubyte file: big-endian magic 0x0000080<ndim>, the dims, then the bytes (minus `cut`)."""
    array = np.asarray(array, np.uint8)
    magic = 0x800 + array.ndim if magic is None else magic
    raw = struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.tobytes()
    raw = raw[:len(raw) - cut]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def mnist_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    images = np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    images[0] = 255
    images[1] = 0
    images[1, 3, 4] = 51  # 51 / 255 = 0.2: row 3, column 4 of image 1
    return images, (np.arange(n) * 3 + seed) % 10


def write_mnist(folder: Path, split: str = "train", n: int = 5, gz: bool = False,
                dotted: bool = False) -> tuple[np.ndarray, np.ndarray]:
    images, labels = mnist_arrays(n, seed=1 if split == "train" else 2)
    names = [s.replace("-idx", ".idx") if dotted else s for s in MNIST_STEMS[split]]
    suffix = ".gz" if gz else ""
    write_idx(folder / (names[0] + suffix), images, gz=gz)
    write_idx(folder / (names[1] + suffix), labels, gz=gz)
    return images, labels


def scaled(pixels: np.ndarray, shape: tuple) -> torch.Tensor:
    return torch.from_numpy(pixels.astype(np.float32)).reshape(-1, *shape) / 255


def cifar_batch(n: int, seed: int) -> dict:
    """A batch dict as in the real files: bytes keys, (n, 3072) uint8 data in R, G, B planes."""
    data = np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)
    return {b"batch_label": b"batch %d" % seed, b"labels": [(seed + i) % 10 for i in range(n)],
            b"data": data, b"filenames": [b"img%d.png" % i for i in range(n)]}


def write_pickle(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))  # the real files are protocol 2


def write_cifar(folder: Path, per_batch: int = 2) -> dict[str, dict]:
    """data_batch_1..5 (per_batch images each) and test_batch (3 images) in `folder`."""
    batches = {name: cifar_batch(per_batch, seed=k) for k, name in enumerate(CIFAR_TRAIN, 1)}
    batches["test_batch"] = cifar_batch(3, seed=9)
    red = batches["data_batch_1"][b"data"][0]
    red[:1024], red[1024:] = 255, 0             # image 0: pure red
    one = batches["data_batch_1"][b"data"][1]
    one[:] = 0
    one[1024 + 5 * 32 + 7] = 255                # image 1: only green at row 5, column 7
    for name, batch in batches.items():
        write_pickle(folder / name, batch)
    return batches


def write_tar(archive: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        for name, raw in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))


# --- MNIST ----------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("sub", ["", "MNIST/raw", "mnist"])
def test_mnist_train(tmp_path, sub, gz):
    images, labels = write_mnist(tmp_path / sub, gz=gz)
    ds = load_mnist(tmp_path)
    assert isinstance(ds, ImageSet) and ds.kind == "mnist" and len(ds) == 5
    assert ds.images.shape == (5, 1, 28, 28) and ds.shape == (1, 28, 28) == IMAGE_SHAPES["mnist"]
    assert ds.images.dtype == torch.float32 and ds.images.is_contiguous()
    assert ds.labels.dtype == torch.int64
    assert torch.equal(ds.images, scaled(images, (1, 28, 28)))
    assert torch.all(ds.images[0] == 1.0)
    assert ds.images[1].sum().item() == pytest.approx(0.2) and ds.images[1, 0, 3, 4] == 51 / 255
    assert ds.labels.tolist() == [1, 4, 7, 0, 3]
    assert ds.source == str(tmp_path / sub)


def test_mnist_test_split_and_dotted_names(tmp_path):
    write_mnist(tmp_path, "train", n=5)
    images, labels = write_mnist(tmp_path, "test", n=3, dotted=True, gz=True)
    ds = load_mnist(tmp_path, "test")
    assert len(ds) == 3 and torch.equal(ds.images, scaled(images, (1, 28, 28)))
    assert ds.labels.tolist() == [2, 5, 8]
    assert len(load_mnist(tmp_path, "train")) == 5


def test_mnist_limit(tmp_path):
    images, labels = write_mnist(tmp_path)
    two = load_images("mnist", tmp_path, limit=2)
    assert two.images.shape == (2, 1, 28, 28) and two.images.is_contiguous()
    assert torch.equal(two.images, scaled(images[:2], (1, 28, 28)))
    assert two.labels.tolist() == [1, 4]
    assert len(load_images("mnist", str(tmp_path), limit=100)) == 5


@pytest.mark.parametrize("problem, match", [
    ("magic", "magic number 0x00000802"),
    ("truncated", "truncated"),
    ("trailing", "3921 data bytes, expected 3920"),
    ("count", "5 images but .* 4 labels"),
    ("size", "27x27"),
])
def test_mnist_bad_idx(tmp_path, problem, match):
    images, labels = mnist_arrays(5, seed=0)
    image_file = tmp_path / "train-images-idx3-ubyte"
    write_idx(image_file, images, magic=0x802 if problem == "magic" else None,
              cut=10 if problem == "truncated" else 0)
    if problem == "size":
        write_idx(image_file, images[:, :27, :27])
    if problem == "trailing":
        image_file.write_bytes(image_file.read_bytes() + b"\0")
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels[:4] if problem == "count" else labels)
    with pytest.raises(DatasetFormatError, match=match) as err:
        load_mnist(tmp_path)
    assert str(image_file) in str(err.value)


def test_mnist_missing(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", mnist_arrays(5, 0)[0])  # labels missing
    with pytest.raises(DatasetNotFoundError) as err:
        load_mnist(tmp_path)
    msg = str(err.value)
    for part in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", ".gz",
                 str(tmp_path / "MNIST" / "raw"), str(tmp_path / "mnist"),
                 "http://yann.lecun.com/exdb/mnist/", f"--data {tmp_path}"]:
        assert part in msg
    assert isinstance(err.value, FileNotFoundError)


@pytest.mark.parametrize("kind", ["mnist", "cifar10"])
def test_no_root(tmp_path, kind):
    with pytest.raises(DatasetNotFoundError, match=r"--data DIR \(data.root in the config\)"):
        load_images(kind)
    with pytest.raises(DatasetNotFoundError, match="does not exist") as err:
        load_images(kind, tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value) and "--data" in str(err.value)


# --- CIFAR-10 -------------------------------------------------------------------------------

def expected_cifar(batches: dict, names: list[str]) -> tuple[torch.Tensor, list[int]]:
    data = np.concatenate([batches[n][b"data"] for n in names])
    return scaled(data, (3, 32, 32)), sum((batches[n][b"labels"] for n in names), [])


def test_cifar10_folder(tmp_path):
    batches = write_cifar(tmp_path / "cifar-10-batches-py")
    ds = load_cifar10(tmp_path)
    assert ds.images.shape == (10, 3, 32, 32) and ds.shape == (3, 32, 32) and len(ds) == 10
    assert ds.images.dtype == torch.float32 and ds.labels.dtype == torch.int64
    assert torch.all(ds.images[0, 0] == 1.0) and torch.all(ds.images[0, 1:] == 0.0)
    assert ds.images[1, 1, 5, 7] == 1.0 and ds.images[1].sum() == 1.0
    images, labels = expected_cifar(batches, CIFAR_TRAIN)
    assert torch.equal(ds.images, images)
    assert ds.labels.tolist() == labels == [1, 2, 2, 3, 3, 4, 4, 5, 5, 6]
    test = load_cifar10(tmp_path, "test")
    assert len(test) == 3 and test.labels.tolist() == [9, 0, 1]
    assert torch.equal(test.images, expected_cifar(batches, ["test_batch"])[0])
    assert test.source == str(tmp_path / "cifar-10-batches-py")


def test_cifar10_in_root_and_in_archive(tmp_path):
    write_cifar(tmp_path / "plain")
    from_folder = load_images("cifar10", tmp_path / "plain", limit=3)
    assert from_folder.source == str(tmp_path / "plain") and len(from_folder) == 3

    files = {f"cifar-10-batches-py/{p.name}": p.read_bytes() for p in (tmp_path / "plain").iterdir()}
    files["cifar-10-batches-py/readme.html"] = b"<html></html>"
    (tmp_path / "packed").mkdir()
    write_tar(tmp_path / "packed" / "cifar-10-python.tar.gz", files)
    from_tar = load_images("cifar10", tmp_path / "packed", limit=3)
    assert from_tar.source == str(tmp_path / "packed" / "cifar-10-python.tar.gz")
    assert torch.equal(from_tar.images, from_folder.images)
    assert torch.equal(from_tar.labels, from_folder.labels)
    assert not (tmp_path / "packed" / "cifar-10-batches-py").exists()  # read, not extracted


def test_cifar10_missing_batch(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError) as err:
        load_cifar10(tmp_path)
    msg = str(err.value)
    for part in ["data_batch_3", str(folder), "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                 f"--data {tmp_path}"]:
        assert part in msg
    assert len(load_cifar10(tmp_path, "test")) == 3  # the test split is all there

    files = {f"cifar-10-batches-py/{p.name}": p.read_bytes() for p in folder.iterdir()}
    write_tar(tmp_path / "cifar-10-python.tar.gz", files)
    with pytest.raises(DatasetNotFoundError, match="missing there: data_batch_3"):
        load_cifar10(tmp_path)


class WritesMarker:
    """Unpickling this with plain pickle calls open(marker, "w"), i.e. creates a file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


class CallsSystem:
    def __reduce__(self):
        return os.system, ("true",)


def test_cifar10_malicious_pickle_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    raw = pickle.dumps({b"data": WritesMarker(marker), b"labels": [0]}, protocol=2)
    pickle.loads(raw)[b"data"].close()  # the plain unpickler does run it...
    assert marker.exists()
    marker.unlink()
    (tmp_path / "test_batch").write_bytes(raw)
    with pytest.raises(DatasetFormatError, match=r"test_batch.*refusing to load global .*open"):
        load_cifar10(tmp_path, "test")
    assert not marker.exists()  # ...ours refuses before calling anything

    write_pickle(tmp_path / "test_batch", {b"data": CallsSystem(), b"labels": [0]})
    with pytest.raises(DatasetFormatError, match="refusing to load global (os|posix|nt).system"):
        load_cifar10(tmp_path, "test")


@pytest.mark.parametrize("batch, match", [
    ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, r"\(2, 100\)"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "expected 2 integers"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "labels outside 0..9"),
    ({b"data": np.full((1, 3072), 256, np.int32), b"labels": [0]}, "outside 0..255"),
    ({b"labels": [0]}, "missing b'data'"),
    ([1, 2], "expected a dict"),
])
def test_cifar10_bad_batch(tmp_path, batch, match):
    write_pickle(tmp_path / "test_batch", batch)
    with pytest.raises(DatasetFormatError, match=match) as err:
        load_cifar10(tmp_path, "test")
    assert str(tmp_path / "test_batch") in str(err.value)


def test_cifar10_not_a_pickle(tmp_path):
    (tmp_path / "test_batch").write_bytes(b"\x00 definitely not a pickle")
    with pytest.raises(DatasetFormatError, match="test_batch: not a CIFAR-10 python pickle"):
        load_cifar10(tmp_path, "test")


def test_cifar10_int_data_and_str_keys(tmp_path):
    data = np.arange(3072, dtype=np.int64).reshape(1, 3072) % 256
    write_pickle(tmp_path / "test_batch", {"data": data, "labels": np.array([7])})
    ds = load_cifar10(tmp_path, "test")
    assert ds.images[0, 2, 31, 31] == 255 / 255 and ds.images[0, 0, 0, 1] == torch.tensor(1.0) / 255
    assert ds.labels.tolist() == [7]


# --- scikit-learn digits --------------------------------------------------------------------

def test_digits():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    ds = load_digits()
    assert ds.images.shape == (1797, 1, 8, 8) and ds.shape == IMAGE_SHAPES["digits"]
    assert ds.images.dtype == torch.float32 and ds.labels.dtype == torch.int64
    assert ds.images.min() == 0.0 and ds.images.max() == 1.0
    assert sorted(set(ds.labels.tolist())) == list(range(10))
    raw = sklearn_datasets.load_digits()
    assert torch.equal(ds.images * 16, torch.from_numpy(raw.data).float().reshape(-1, 1, 8, 8))
    assert ds.labels.tolist() == raw.target.tolist()
    assert ds.kind == "digits" and ds.source == "scikit-learn digits"


def test_digits_without_sklearn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(DatasetNotFoundError, match="pip install scikit-learn") as err:
        load_images("digits")
    assert "pip install .[images]" in str(err.value)


# --- load_images ----------------------------------------------------------------------------

def test_load_images_arguments(tmp_path):
    with pytest.raises(ValueError, match="'svhn'.*digits, mnist, cifar10"):
        load_images("svhn", tmp_path)
    with pytest.raises(ValueError, match="'train', 'test'.*'val'"):
        load_images("mnist", tmp_path, split="val")
    for limit in [0, -3, 2.5, True]:
        with pytest.raises(ValueError, match="limit must be None or an int >= 1"):
            load_images("digits", limit=limit)


def test_load_images_digits_limit():
    pytest.importorskip("sklearn")
    full = load_images("digits")
    ten = load_images("digits", split="test", limit=np.int64(10))  # digits has one split
    assert len(full) == 1797 and len(ten) == 10 and ten.shape == (1, 8, 8)
    assert torch.equal(ten.images, full.images[:10]) and torch.equal(ten.labels, full.labels[:10])
    assert ten.images.untyped_storage().nbytes() == 10 * 64 * 4  # not a view of all 1797
    with pytest.raises(dataclasses.FrozenInstanceError):
        ten.kind = "mnist"
