"""Datasets read from files under ``dataset.root``: Fashion-MNIST (IDX files; discovery and
download), CIFAR-10/100 (python batches), ImageNet (ImageFolder trees). Each is registered in
:data:`DATASETS` here."""

from __future__ import annotations

import contextlib
import gzip
import logging
import math
import os
import pickle
import shutil
import stat
from pathlib import Path

import numpy as np
import torch

from ..errors import DatasetError, one_line
from ..jsonfile import UnreadableFile, open_regular
from .splits import DATASETS, DatasetSplits, TensorSplits, register_dataset

log = logging.getLogger(__name__)

FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"  # Debian package dataset-fashion-mnist
STATS = {  # per-channel mean, std of the training split
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def _read_idx(path: Path) -> torch.Tensor:
    """Read an IDX file (optionally gzipped) into a uint8 tensor."""
    try:
        with open_regular(path) as raw, gzip.open(raw, "rb") if path.suffix == ".gz" else raw as f:
            data = f.read()
    except (OSError, EOFError, UnreadableFile) as err:  # a truncated or corrupt .gz too; a FIFO or device
        raise DatasetError(f"cannot read {path}: {one_line(err)}") from None
    if data[:2] == b"\x1f\x8b" and path.suffix != ".gz":  # gzip's magic number under a plain name
        raise DatasetError(f"{path}: gzip-compressed, but not named .gz: rename it {path.name}.gz")
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise DatasetError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise DatasetError(f"{path}: truncated IDX file (in its header)")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    expected = math.prod(dims)  # Python integers: a forged header cannot overflow the count
    if arr.size != expected:
        what = "truncated" if arr.size < expected else "longer than its header says"
        raise DatasetError(f"{path}: {what} (it holds {arr.size} values, its header says {expected})")
    return torch.from_numpy(arr.reshape(dims).copy())


def _find_idx(root: Path, stem: str) -> Path | None:
    for d in (root, root / "FashionMNIST" / "raw"):
        for name in (stem + ".gz", stem):
            if (d / name).is_file():
                return d / name
    return None


#: the environment variable naming the folder of the Fashion-MNIST files (when dataset.root is not given)
DATA_ENV = "SVDBENCH_DATA"


def _missing_fashion(folder: Path) -> list[str]:
    """The Fashion-MNIST files ``folder`` lacks (each looked for as ``<name>.gz`` or ``<name>``, in
    ``folder`` or in torchvision's ``folder/FashionMNIST/raw``)."""
    return [s for s in FASHION_FILES.values() if _find_idx(folder, s) is None]


def _env_root() -> Path | None:
    """``$SVDBENCH_DATA`` where it is set (and not empty): a folder that must hold the four Fashion-MNIST
    files. A set variable that names no such folder is a DatasetError, never a silent fall-back to the
    system's copy (r4a F11)."""
    value = os.environ.get(DATA_ENV)
    if not value:
        return None
    folder = Path(value)
    if not folder.is_dir():
        why = "is not a directory" if folder.exists() else "does not exist"
        raise DatasetError(
            f"${DATA_ENV}={value} {why}: point it at the folder of the four Fashion-MNIST idx files, or unset it"
        )
    missing = _missing_fashion(folder)
    if missing:
        raise DatasetError(
            f"${DATA_ENV}={value} does not hold the Fashion-MNIST files (missing: {', '.join(missing)}, as .gz or "
            "plain): point it at the folder of the four idx files, or unset it"
        )
    return folder


def fashion_mnist_root(root: str | None) -> Path | None:
    """The folder holding the four Fashion-MNIST files: ``root`` where given; else ``$SVDBENCH_DATA`` where
    set (a DatasetError if it lacks them: the variable says where the data are); else the first of Debian's
    ``/usr/share/datasets/fashion-mnist`` and ``./data`` that holds them. None when none does."""
    if root:
        return Path(root) if not _missing_fashion(Path(root)) else None
    env = _env_root()
    if env is not None:
        return env
    for c in (FASHION_SYSTEM_DIR, "data"):
        if not _missing_fashion(Path(c)):
            return Path(c)
    return None


def _fashion_not_found(root: str | None) -> DatasetError:
    where = root or f"$SVDBENCH_DATA, {FASHION_SYSTEM_DIR} or ./data"
    return DatasetError(f"Fashion-MNIST files not found in {where} (set dataset.root, or dataset.download=true)")


def _cifar_not_found(name: str, folder: Path) -> DatasetError:
    return DatasetError(f"{name} not found: expected {folder} (set dataset.root, or dataset.download=true)")


def _last_line(err: BaseException) -> str:
    """The innermost cause of a download error: torchvision's message names every mirror it tried and
    ends with what went wrong ("[Errno 13] Permission denied: ...", "<urlopen error ...>")."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return lines[-1].rstrip(":") if lines else one_line(err, with_type=True)


@contextlib.contextmanager
def _removed_on_failure(folder: Path):
    """A download into ``folder``: if it fails, the folders it created are removed again (a
    failed download leaves nothing behind); a folder that existed before is left alone."""
    created = [p for p in [folder, *folder.parents] if not p.exists()]
    try:
        yield
    except BaseException:
        for p in created:  # deepest first
            shutil.rmtree(p, ignore_errors=True)
        raise


def load_fashion_mnist(root: str | None, download: bool) -> tuple[torch.Tensor, ...]:
    """Train images (60000 x 1 x 28 x 28 uint8), labels (int64), test images, labels from the first
    folder :func:`fashion_mnist_root` finds; download them with torchvision when none and ``download``."""
    found = fashion_mnist_root(root)
    if found is None and download:
        import torchvision

        target = root or "data"
        log.info("downloading Fashion-MNIST to %s", target)
        try:
            with _removed_on_failure(Path(target) / "FashionMNIST"):
                torchvision.datasets.FashionMNIST(target, train=True, download=True)
                torchvision.datasets.FashionMNIST(target, train=False, download=True)
        except Exception as err:  # network errors come in many types
            looked = root or f"$SVDBENCH_DATA, {FASHION_SYSTEM_DIR} and data/"
            raise DatasetError(
                f"Fashion-MNIST is not in {looked} and the download to {target} failed ({_last_line(err)}): give "
                "dataset.root=<a folder with its four idx files>, or install Debian's dataset-fashion-mnist"
            ) from None
        found = fashion_mnist_root(target)
    if found is None:
        raise _fashion_not_found(root)
    source = " (dataset.root)" if root else f" (${DATA_ENV})" if os.environ.get(DATA_ENV) else ""
    log.debug("Fashion-MNIST from %s%s", os.path.abspath(found), source)
    t = {k: _read_idx(_find_idx(found, s)) for k, s in FASHION_FILES.items()}
    for k in ("train_images", "test_images"):
        if t[k].dim() != 3 or 0 in t[k].shape[1:]:  # N x H x W: one channel, added below
            shape = " x ".join(map(str, t[k].shape))
            raise DatasetError(f"{_find_idx(found, FASHION_FILES[k])}: images of {shape}, not N x H x W (grey images"
                               f"{', of a side 0' if t[k].dim() == 3 else ''})")  # fmt: skip
    if len(t["train_images"]) < len(t["test_images"]):  # Fashion-MNIST's are 60000 and 10000
        log.warning("Fashion-MNIST in %s: the training files hold %d images, the test files %d: are the train-* and "
                    "t10k-* files swapped?", found, len(t["train_images"]), len(t["test_images"]))  # fmt: skip
    return (
        t["train_images"].unsqueeze(1),
        t["train_labels"].long(),
        t["test_images"].unsqueeze(1),
        t["test_labels"].long(),
    )


CIFAR_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels"),
}


try:  # what a CIFAR batch's pickle rebuilds its image array with
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
except ImportError:  # numpy < 1.26
    from numpy.core.multiarray import _reconstruct as _np_reconstruct


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as a protocol-2 pickle written by Python 3 asks for it (an array's bytes as latin-1
    text), and nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise ValueError("_codecs.encode of anything but latin-1 text")
    return text.encode("latin1")


CIFAR_GLOBALS = {  # all a CIFAR python batch asks for: its numpy uint8 array (the rest is dicts, lists, ints, bytes)
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,  # written by numpy 1 (the distributed files)
    ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,  # written by numpy 2
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_bytes,  # an array's bytes in a protocol-2 pickle written by Python 3
}


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR batch and nothing else: a pickle asking for any function or class but the
    numpy array's own (``os.system``, ``builtins.eval``, ...) is refused before anything runs."""

    def __init__(self, file, path: Path) -> None:
        super().__init__(file, encoding="bytes")  # the batches are Python 2 pickles of str keys
        self.path = path

    def find_class(self, module: str, name: str):
        found = CIFAR_GLOBALS.get((module, name))
        if found is None:
            what = f"{module}.{name}"
            what = what if what.isprintable() and len(what) <= 80 else repr(what[:80])
            raise DatasetError(f"cannot read {self.path}: not a CIFAR batch (it asks for {what})")
        return found


def read_cifar_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Images (N x 3 x 32 x 32 uint8) and labels (N int64) of one python CIFAR batch file, read with
    an unpickler that rebuilds nothing but numpy arrays. A file that is not such a batch (other
    objects, truncated, not a pickle) is a one-line DatasetError naming it."""
    try:
        with open_regular(path) as fh:
            d = _CifarUnpickler(fh, path).load()
    except DatasetError:
        raise
    except (OSError, UnreadableFile) as err:
        raise DatasetError(f"cannot read {path}: {one_line(err)}") from None
    except (EOFError, pickle.UnpicklingError) as err:
        raise DatasetError(f"cannot read {path}: truncated or not a pickle ({one_line(err)})") from None
    except Exception as err:  # a pickle that is well-formed but no CIFAR batch: TypeError, ValueError, ...
        raise DatasetError(f"cannot read {path}: not a CIFAR batch ({one_line(err, with_type=True)})") from None
    if not isinstance(d, dict) or b"data" not in d or label_key not in d:
        raise DatasetError(f"cannot read {path}: not a CIFAR batch (no {b'data'!r} and {label_key!r} entries)")
    try:  # an array, or lists of numbers: as numpy reads them, before any cast
        raw, labels = np.asarray(d[b"data"]), np.asarray(d[label_key])
    except (TypeError, ValueError, OverflowError) as err:
        raise DatasetError(f"cannot read {path}: not a CIFAR batch ({one_line(err, with_type=True)})") from None
    if raw.dtype != np.uint8 and not (
        np.issubdtype(raw.dtype, np.integer) and (raw.size == 0 or (raw.min() >= 0 and raw.max() <= 255))
    ):  # a cast to bytes would cut floats in [0, 1] to 0 and wrap larger integers, without a word
        raise DatasetError(f"cannot read {path}: its {b'data'!r} holds {raw.dtype} values, not bytes 0..255")
    if labels.dtype.kind in "bfc":  # a cast to classes would cut 1.7 to 1 and read True as class 1
        raise DatasetError(f"cannot read {path}: its {label_key!r} hold {labels.dtype} values, not integer classes")
    if raw.shape[1:] not in ((3072,), (3, 32, 32)):  # another layout (N x 32 x 32 x 3, grey rows) reshapes scrambled
        raise DatasetError(
            f"cannot read {path}: its {b'data'!r} has shape {tuple(raw.shape)}, not N x 3072 (the distributed rows: "
            "1024 red, then green, then blue values) nor N x 3 x 32 x 32"
        )
    try:
        x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        y = np.asarray(d[label_key], dtype=np.int64).reshape(-1)
    except (TypeError, ValueError, OverflowError) as err:
        raise DatasetError(f"cannot read {path}: not a CIFAR batch ({one_line(err, with_type=True)})") from None
    if len(x) != len(y):
        raise DatasetError(f"cannot read {path}: {len(x)} images but {len(y)} labels")
    return x, y


def load_cifar(name: str, root: str | None, download: bool) -> tuple[torch.Tensor, ...]:
    """Train images (N x 3 x 32 x 32 uint8), labels, test images, labels from the python CIFAR
    batches under ``root`` (torchvision's layout); download them with torchvision when missing and
    ``download`` is true."""
    folder, train_files, test_files, label_key = CIFAR_LAYOUT[name]
    base = Path(root or "data")
    if not (base / folder).is_dir() and download:
        import torchvision

        cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
        try:
            with _removed_on_failure(base / folder):
                cls(str(base), train=True, download=True)
        except Exception as err:
            raise DatasetError(f"{name} not found in {base} and download failed: {one_line(err).rstrip(':')}") from None
    if not (base / folder).is_dir():
        raise _cifar_not_found(name, base / folder)

    def read(files):
        batches = [read_cifar_batch(base / folder / f, label_key) for f in files]
        xs, ys = zip(*batches, strict=True)
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))

    return (*read(train_files), *read(test_files))


def check_files(cfg) -> None:
    """Before any work (preflight): the files a built-in dataset of ``cfg`` reads are where loading will
    look, unless ``cfg.download`` may fetch them; DatasetError in the line loading would give. Only
    their presence is checked here (their contents when they load)."""
    if cfg.name == "fashion_mnist":  # a $SVDBENCH_DATA without the files is refused, also where download may fetch
        if fashion_mnist_root(cfg.root) is None and not cfg.download:
            raise _fashion_not_found(cfg.root)
    if cfg.name in CIFAR_LAYOUT and not cfg.download:
        folder = Path(cfg.root or "data") / CIFAR_LAYOUT[cfg.name][0]
        if not folder.is_dir():
            raise _cifar_not_found(cfg.name, folder)
    if cfg.name == "imagenet":
        _imagenet_root(cfg.root)


def _imagenet_root(root: str | None) -> Path:
    if not root or not (Path(root) / "train").is_dir() or not (Path(root) / "val").is_dir():
        raise DatasetError(f"imagenet needs dataset.root with train/ and val/ ImageFolder trees, got {root!r}")
    return Path(root)


@DATASETS.register("fashion_mnist")
def fashion_mnist_splits(cfg, seed: int) -> TensorSplits:
    """Fashion-MNIST (see :func:`load_fashion_mnist`); augmentation: 2-pixel crop, flip."""
    xtr, ytr, xte, yte = load_fashion_mnist(cfg.root, cfg.download)
    mean, std = STATS["fashion_mnist"]
    return TensorSplits(train=(xtr, ytr), test=(xte, yte), num_classes=10, mean=mean, std=std, pad=2, flip=True)


@DATASETS.register("cifar10")
def cifar10_splits(cfg, seed: int) -> TensorSplits:
    """CIFAR-10 (see :func:`load_cifar`); augmentation: 4-pixel crop, flip."""
    return _cifar_splits("cifar10", cfg, num_classes=10)


@DATASETS.register("cifar100")
def cifar100_splits(cfg, seed: int) -> TensorSplits:
    """CIFAR-100, fine labels (see :func:`load_cifar`); augmentation: 4-pixel crop, flip."""
    return _cifar_splits("cifar100", cfg, num_classes=100)


def _cifar_splits(name: str, cfg, num_classes: int) -> TensorSplits:
    xtr, ytr, xte, yte = load_cifar(name, cfg.root, cfg.download)
    mean, std = STATS[name]
    return TensorSplits(
        train=(xtr, ytr), test=(xte, yte), num_classes=num_classes, mean=mean, std=std, pad=4, flip=True
    )


def image_file(path: str) -> bool:
    """Whether an ImageFolder tree's ``path`` is an image to read: a name of an image type (torchvision's
    list) naming a regular file (a link to one is followed). A FIFO, device or folder of such a name, or a
    link to nothing, is a DatasetError (a FIFO would block the run at its first read, no signal ending it)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

    if not has_file_allowed_extension(path, IMG_EXTENSIONS):
        return False
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        raise DatasetError(f"image {path} cannot be read ({err.strerror})") from None
    if not stat.S_ISREG(mode):
        raise DatasetError(f"image {path} is not a regular file")
    return True


def load_image(path: str):
    """The RGB image at ``path`` (torchvision's PIL loader), opened as a regular file only: one put there since
    the tree was read that is not (a FIFO would block) is a DatasetError."""
    from PIL import Image

    try:
        with open_regular(path) as f:
            return Image.open(f).convert("RGB")
    except UnreadableFile as err:
        raise DatasetError(f"image {path} is {err}") from None


@register_dataset("imagenet", keys=("image_size",))
def imagenet_splits(cfg, seed: int) -> DatasetSplits:
    """ImageFolder trees at ``cfg.root/train`` and ``cfg.root/val`` (the validation set serves as
    the test split), ``cfg.image_size`` square: RandomResizedCrop and flip for training with
    ``cfg.augment``, else (and for testing) resize to 8/7 of the size and centre crop."""
    from torchvision import datasets
    from torchvision import transforms as T

    root, size = _imagenet_root(cfg.root), cfg.image_size
    mean, std = STATS["imagenet"]
    norm = [T.ToTensor(), T.Normalize(mean, std)]
    plain = [T.Resize(int(size * 8 / 7)), T.CenterCrop(size)]
    train_tf = T.Compose(([T.RandomResizedCrop(size), T.RandomHorizontalFlip()] if cfg.augment else plain) + norm)
    files = {"loader": load_image, "is_valid_file": image_file}
    train = datasets.ImageFolder(str(root / "train"), train_tf, **files)
    test = datasets.ImageFolder(str(root / "val"), T.Compose(plain + norm), **files)
    if test.classes != train.classes:  # each tree numbers its own sorted folders: val's labels would be train's others
        missing, extra = sorted(set(train.classes) - set(test.classes)), sorted(set(test.classes) - set(train.classes))
        what = "; ".join(f"{w} {', '.join(names[:3])}" for w, names in (("val lacks", missing), ("train lacks", extra))
                         if names)  # fmt: skip
        raise DatasetError(f"{root}: train/ and val/ hold other class folders ({what}): each is labelled by its own "
                           "sorted folders, so val's labels would be wrong")  # fmt: skip
    return DatasetSplits(train=train, test=test, num_classes=len(train.classes), input_shape=(3, size, size))
