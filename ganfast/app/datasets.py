"""Image data sets for the image GAN presets, read from local files; nothing is ever downloaded.

    from ganfast.datasets import load_images
    ds = load_images("mnist", root="~/data", limit=10_000)   # ds.images: (N, 1, 28, 28) in [0, 1]

kinds and where they are looked for (``root`` is ``--data DIR``, ``data.root`` in the config):

    digits   the 8x8 digits embedded in scikit-learn (1797 images, one split; no files needed)
    mnist    IDX files ``train-images-idx3-ubyte`` / ``train-labels-idx1-ubyte`` (``t10k-*`` for
             the test split), plain or ``.gz``, also spelled ``train-images.idx3-ubyte``; in
             ``root``, ``root/MNIST/raw`` (torchvision's layout) or ``root/mnist``
    cifar10  the "python version" pickles ``data_batch_1`` .. ``data_batch_5`` / ``test_batch``
             in ``root/cifar-10-batches-py`` or ``root``, else read straight out of
             ``root/cifar-10-python.tar.gz`` (not extracted to disk)

Images come back as (N, C, H, W) float32 in [0, 1], labels as (N,) int64. Missing files raise
``DatasetNotFoundError`` (what was looked for, where, and where to get it); files that exist
but are malformed raise ``DatasetFormatError`` naming the file. CIFAR pickles are loaded with
an unpickler that only resolves numpy's array reconstruction, so a tampered file cannot run code.
"""
from __future__ import annotations

import gzip
import importlib
import numbers
import os
import pickle
import struct
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Optional, Union

import numpy as np
import torch

#: kind -> (channels, height, width)
IMAGE_SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "cifar10": (3, 32, 32)}

SPLITS = ("train", "test")

PathLike = Union[str, os.PathLike]

MNIST_URLS = ("http://yann.lecun.com/exdb/mnist/ (or any mirror, e.g. "
              "https://ossci-datasets.s3.amazonaws.com/mnist/)")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_ARCHIVE = "cifar-10-python.tar.gz"


class DatasetNotFoundError(FileNotFoundError):
    """The data set's files are missing; the message says what was looked for, where, and where
    to get them."""


class DatasetFormatError(ValueError):
    """A data set file exists but is not in the expected format; the message names the file."""


@dataclass(frozen=True, eq=False)  # eq=False: == on tensors is elementwise, not a bool
class ImageSet:
    images: torch.Tensor  # (N, C, H, W) float32 in [0, 1], contiguous
    labels: torch.Tensor  # (N,) int64
    kind: str             # "digits" | "mnist" | "cifar10"
    source: str           # a path, or "scikit-learn digits"

    @property
    def shape(self) -> tuple:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return self.images.shape[0]


def _to_imageset(pixels: np.ndarray, scale: float, labels: np.ndarray, kind: str,
                 source: str) -> ImageSet:
    # Dividing in float32 keeps the top value exactly 1.0 and matches torch's own x / scale.
    images = torch.from_numpy(pixels.astype(np.float32) / np.float32(scale))
    images = images.reshape(-1, *IMAGE_SHAPES[kind]).contiguous()
    return ImageSet(images, torch.from_numpy(labels.astype(np.int64)), kind, source)


def _data_root(kind: str, root: Optional[PathLike], how_to_get: str) -> Path:
    if root is None:
        raise DatasetNotFoundError(
            f"{kind} is read from local files: pass --data DIR (data.root in the config). "
            f"{how_to_get}")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DatasetNotFoundError(
            f"{kind} data folder {str(path)!r} does not exist: pass an existing folder as "
            f"--data DIR (data.root in the config). {how_to_get}")
    return path


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(map(repr, SPLITS))}, got {split!r}")


# --- MNIST (IDX files) --------------------------------------------------------------------

_IDX_MAGIC = {3: 0x00000803, 1: 0x00000801}  # ubyte data, 3-D images / 1-D labels


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    raw = path.read_bytes()
    # Sniff gzip by its magic, not the name: mirrors and browsers disagree on the suffix.
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DatasetFormatError(f"{path}: corrupt gzip data ({e})") from e
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetFormatError(f"{path}: {len(raw)} bytes, too short for an IDX header")
    magic, *dims = struct.unpack(f">{1 + ndim}I", raw[:header])
    if magic != _IDX_MAGIC[ndim]:
        raise DatasetFormatError(
            f"{path}: magic number 0x{magic:08x}, expected 0x{_IDX_MAGIC[ndim]:08x} "
            f"(IDX ubyte, {ndim}-D)")
    size = int(np.prod(dims))
    if len(raw) - header != size:
        raise DatasetFormatError(
            f"{path}: {len(raw) - header} data bytes, expected {size} for dims {tuple(dims)}"
            + (" (truncated?)" if len(raw) - header < size else ""))
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def _mnist_names(stem: str) -> list[str]:
    dotted = stem.replace("-idx", ".idx")
    return [stem, stem + ".gz", dotted, dotted + ".gz"]


def load_mnist(root: Optional[PathLike], split: str = "train") -> ImageSet:
    """MNIST ``split`` ("train": 60000 images, "test": 10000) from the IDX files under ``root``."""
    _check_split(split)
    prefix = "train" if split == "train" else "t10k"
    stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    how_to_get = (f"Get {stems[0]}.gz and {stems[1]}.gz from {MNIST_URLS}, "
                  f"put the files in DIR and pass --data DIR.")
    base = _data_root("mnist", root, how_to_get)
    folders = [base, base / "MNIST" / "raw", base / "mnist"]
    for folder in folders:
        found = [next((folder / n for n in _mnist_names(s) if (folder / n).is_file()), None)
                 for s in stems]
        if None in found:
            continue
        image_file, label_file = found
        images, labels = _read_idx(image_file, 3), _read_idx(label_file, 1)
        if images.shape[1:] != (28, 28):
            raise DatasetFormatError(
                f"{image_file}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28")
        if len(images) != len(labels):
            raise DatasetFormatError(
                f"{image_file} has {len(images)} images but {label_file} has {len(labels)} labels")
        return _to_imageset(images, 255, labels, "mnist", str(folder))
    raise DatasetNotFoundError(
        f"MNIST {split} split not found: looked for {stems[0]} and {stems[1]} (plain or .gz, "
        f"also spelled {_mnist_names(stems[0])[2]}) in {', '.join(map(str, folders))}. "
        + how_to_get.replace("DIR", str(base)))


# --- CIFAR-10 (python pickles) ------------------------------------------------------------

def _numpy_global(module: str, name: str):
    # numpy 2 renamed numpy.core to numpy._core (the old name warns); files pickled under
    # either name must load with either numpy.
    try:
        return getattr(importlib.import_module(f"numpy._core.{module}"), name)
    except ImportError:
        return getattr(importlib.import_module(f"numpy.core.{module}"), name)


class _SafeUnpickler(pickle.Unpickler):
    """Resolves only what a dict of numpy arrays, lists and bytes needs; anything else (os.system,
    eval, ...) is refused, so unpickling a file from disk cannot run code."""

    _ALLOWED = {
        **{(f"numpy.{core}.multiarray", "_reconstruct"): ("multiarray", "_reconstruct")
           for core in ("core", "_core")},
        # numpy's pickle protocol 5 path (Python 3.14 pickles with protocol 5 by default)
        **{(f"numpy.{core}.numeric", "_frombuffer"): ("numeric", "_frombuffer")
           for core in ("core", "_core")},
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return _numpy_global(*self._ALLOWED[module, name])
        if (module, name) in {("numpy", "ndarray"), ("numpy", "dtype")}:
            return getattr(np, name)
        if (module, name) == ("_codecs", "encode"):  # how Python 3 writes bytes in protocol 2
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def _read_cifar_batch(f: IO[bytes], where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _SafeUnpickler(f, encoding="bytes").load()
    except Exception as e:  # a malformed pickle can fail in many ways; all mean "bad file"
        raise DatasetFormatError(f"{where}: not a CIFAR-10 python pickle ({e})") from e
    if not isinstance(batch, dict):
        raise DatasetFormatError(f"{where}: expected a dict, got {type(batch).__name__}")
    # Python 2 keys come back as bytes (the real files); keys re-pickled on Python 3 are str.
    data, labels = (batch.get(k.encode(), batch.get(k)) for k in ("data", "labels"))
    if data is None or labels is None:
        raise DatasetFormatError(f"{where}: missing b'data' or b'labels' "
                                 f"(keys: {sorted(map(repr, batch))})")
    try:
        data, labels = np.asarray(data), np.asarray(labels)
    except ValueError as e:  # ragged lists
        raise DatasetFormatError(f"{where}: data or labels are not arrays ({e})") from e
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype.kind not in "iu":
        raise DatasetFormatError(f"{where}: data is {data.dtype} {data.shape}, "
                                 f"expected uint8 (n, 3072)")
    if data.size and (data.min() < 0 or data.max() > 255):
        raise DatasetFormatError(f"{where}: data values outside 0..255")
    if labels.shape != (len(data),) or (labels.size and labels.dtype.kind not in "iu"):
        raise DatasetFormatError(f"{where}: labels are {labels.dtype} {labels.shape}, "
                                 f"expected {len(data)} integers")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DatasetFormatError(f"{where}: labels outside 0..9")
    return data.astype(np.uint8, copy=False), labels


def _read_cifar_archive(archive: Path, names: list[str]) -> dict[str, tuple]:
    batches = {}
    try:
        # One pass in archive order: seeking backwards in a .tar.gz re-decompresses it.
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if member.isfile() and parts[-2:-1] == (_CIFAR_DIR,) and parts[-1] in names:
                    with tar.extractfile(member) as f:
                        batches[parts[-1]] = _read_cifar_batch(f, f"{archive}:{member.name}")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DatasetFormatError(f"{archive}: not a readable .tar.gz archive ({e})") from e
    return batches


def load_cifar10(root: Optional[PathLike], split: str = "train") -> ImageSet:
    """CIFAR-10 ``split`` ("train": data_batch_1..5, 50000 images; "test": test_batch, 10000)."""
    _check_split(split)
    names = [f"data_batch_{k}" for k in range(1, 6)] if split == "train" else ["test_batch"]
    how_to_get = (f"Get {CIFAR10_URL}, put the files (the .tar.gz, or the extracted "
                  f"{_CIFAR_DIR} folder) in DIR and pass --data DIR.")
    base = _data_root("cifar10", root, how_to_get)
    folders = [base / _CIFAR_DIR, base]
    batches, source = {}, None
    for folder in folders:
        if all((folder / n).is_file() for n in names):
            for n in names:
                with open(folder / n, "rb") as f:
                    batches[n] = _read_cifar_batch(f, str(folder / n))
            source = str(folder)
            break
    else:
        archive = base / _CIFAR_ARCHIVE
        if archive.is_file():
            batches, source = _read_cifar_archive(archive, names), str(archive)
    missing = [n for n in names if n not in batches]
    if missing:
        looked = ", ".join(map(str, folders)) + (
            f" and the archive {base / _CIFAR_ARCHIVE} (missing there: {', '.join(missing)})"
            if source else f", and found no {_CIFAR_ARCHIVE} in {base}")
        raise DatasetNotFoundError(
            f"CIFAR-10 {split} split not found: looked for {', '.join(names)} in {looked}. "
            + how_to_get.replace("DIR", str(base)))
    data = np.concatenate([batches[n][0] for n in names])
    labels = np.concatenate([batches[n][1] for n in names])
    return _to_imageset(data, 255, labels, "cifar10", source)


# --- scikit-learn digits ------------------------------------------------------------------

def load_digits() -> ImageSet:
    """The 1797 8x8 digits embedded in scikit-learn (pixel values 0..16, scaled to [0, 1])."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as e:
        raise DatasetNotFoundError(
            "the embedded digits data set comes with scikit-learn: pip install scikit-learn "
            "(or pip install .[images] from a ganfast checkout)") from e
    bunch = sklearn_digits()
    return _to_imageset(np.asarray(bunch.data), 16, np.asarray(bunch.target), "digits",
                        "scikit-learn digits")


# --- dispatch -----------------------------------------------------------------------------

def load_images(kind: str, root: Optional[PathLike] = None, split: str = "train",
                limit: Optional[int] = None) -> ImageSet:
    """Load image data set ``kind`` (a key of IMAGE_SHAPES) and keep its first ``limit`` images
    (None: all). ``digits`` has a single split and ignores ``split`` (which must still be valid)
    and ``root``."""
    if kind not in IMAGE_SHAPES:
        raise ValueError(f"unknown image data set {kind!r}; choose one of "
                         f"{', '.join(IMAGE_SHAPES)}")
    _check_split(split)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, numbers.Integral)
                              or limit < 1):
        raise ValueError(f"limit must be None or an int >= 1, got {limit!r}")
    if kind == "digits":
        ds = load_digits()
    elif kind == "mnist":
        ds = load_mnist(root, split)
    else:
        ds = load_cifar10(root, split)
    if limit is None or limit >= len(ds):
        return ds
    # clone() so the slice does not keep the whole data set's storage alive
    return ImageSet(ds.images[:limit].clone(), ds.labels[:limit].clone(), ds.kind, ds.source)
