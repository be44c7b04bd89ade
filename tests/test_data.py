"""Datasets: the in-memory path against torchvision's readers, augmentation, generated CIFAR/ImageNet files
(written by the conftest fixtures ``write_cifar``, ``write_imagenet``, ``write_fashion_mnist``), the CIFAR
reader's refusal of anything but a CIFAR batch, the registry and ``dataset._target_`` datasets."""

import gzip
import os
import pickle
import textwrap

import numpy as np
import pytest
import torch

from svdbench.config import DatasetConfig
from svdbench.data import (
    DATASETS,
    STATS,
    DatasetError,
    TensorBatches,
    fashion_mnist_root,
    load_dataset,
)


def load(name, *, batch_size=128, eval_batch_size=512, seed=0, shard=None, **fields):
    """``load_dataset`` of ``DatasetConfig(name=name, **fields)``, downloading nothing and holding no
    validation images out unless ``val_size`` is given (these tests read the files as they are)."""
    cfg = DatasetConfig(name=name, **{"download": False, "val_size": 0, **fields})
    return load_dataset(cfg, batch_size=batch_size, eval_batch_size=eval_batch_size, seed=seed, shard=shard)


def read_idx_gz(path, header):
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=header)


def test_fashion_mnist_matches_the_original_files():
    root = fashion_mnist_root(None)
    if root is None:
        pytest.skip("Fashion-MNIST files not installed (make data)")
    b = load("fashion_mnist", batch_size=64, augment=False, test_subset=500)
    assert (b.num_train, b.num_test, b.input_shape, b.num_classes) == (60000, 500, (1, 28, 28), 10)
    # independent decoding of the IDX files: 16-byte image header, 8-byte label header
    with gzip.open(root / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(root / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    assert len(images) == len(labels) == 10000
    x, y = next(iter(b.test))
    mean, std = STATS["fashion_mnist"]
    expected = (torch.from_numpy(images[: len(y)].copy()).float() / 255 - mean[0]) / std[0]
    torch.testing.assert_close(x[:, 0], expected)
    assert torch.equal(y, torch.from_numpy(labels[: len(y)].astype(np.int64)))


# the first 16 labels and a digest of the first training batch (64 samples of the first 5000,
# augmented) for seeds 0 and 3, as svdbench.data loaded them before it became a package (0ee1631)
FASHION_FIRST_BATCH = {
    0: ([2, 5, 7, 3, 1, 9, 7, 7, 6, 7, 3, 4, 0, 8, 5, 9], "1d15ef579cfad085"),
    3: ([4, 6, 8, 0, 3, 1, 4, 5, 0, 9, 1, 8, 7, 8, 9, 0], "3bd0d61b5c71f003"),
}


def test_fashion_mnist_first_training_batch_is_unchanged():
    """The training batches are TensorBatches over the original files, with Fashion-MNIST's
    statistics, 2-pixel crops and flips drawn from the seed: bit for bit as before the package."""
    import hashlib

    root = fashion_mnist_root(None)
    if root is None:
        pytest.skip("Fashion-MNIST files not installed (make data)")
    images = read_idx_gz(root / "train-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)[:5000]
    labels = read_idx_gz(root / "train-labels-idx1-ubyte.gz", 8)[:5000].astype(np.int64)
    mean, std = STATS["fashion_mnist"]
    for seed, (first_labels, digest) in FASHION_FIRST_BATCH.items():
        b = load("fashion_mnist", batch_size=64, seed=seed, train_subset=5000)
        x, y = next(iter(b.train))
        g = torch.Generator().manual_seed(seed)
        ref = TensorBatches(torch.from_numpy(images.copy()), torch.from_numpy(labels), 64, mean, std, shuffle=True,
                            pad=2, flip=True, generator=g)  # fmt: skip
        xr, yr = next(iter(ref))
        assert torch.equal(x, xr) and torch.equal(y, yr)
        assert y[:16].tolist() == first_labels
        assert hashlib.sha256(x.numpy().tobytes()).hexdigest()[:16] == digest


@pytest.mark.parametrize(
    "cut, message",
    [(100_000, "cannot read {}: Compressed file ended"), (10, "{}: truncated IDX file (in its header)")],
)
def test_truncated_fashion_mnist_file_is_one_line(tmp_path, cut, message, write_fashion_mnist):
    write_fashion_mnist(tmp_path, 2, 2)  # all four files present; the training images are made bad
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    if cut == 10:  # a whole gzip of a cut IDX header
        bad.write_bytes(gzip.compress(bytes([0, 0, 8, 3, 0, 0])))
    else:  # a cut gzip stream
        bad.write_bytes(gzip.compress(np.random.default_rng(0).integers(0, 256, 200_000, np.uint8).tobytes())[:cut])
    with pytest.raises(DatasetError) as err:
        load("fashion_mnist", root=str(tmp_path))
    assert str(err.value).startswith(message.format(bad)) and "\n" not in str(err.value)


def test_augmentation_keeps_shape_range_and_content():
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    tb = TensorBatches(imgs, torch.zeros(64), 64, (0.0,) * 3, (1.0,) * 3, shuffle=False, pad=2, flip=True, generator=g)
    x, _ = next(iter(tb))
    base = imgs.float() / 255
    assert x.shape == base.shape and x.min() >= 0 and x.max() <= 1
    # every augmented image is a shifted (and maybe flipped) window of the zero-padded original
    padded = torch.nn.functional.pad(base, (2, 2, 2, 2))
    for i in range(8):
        ok = any(
            torch.equal(x[i], cand)
            for dy in range(5)
            for dx in range(5)
            for cand in (padded[i, :, dy : dy + 8, dx : dx + 8], padded[i, :, dy : dy + 8, dx : dx + 8].flip(2))
        )
        assert ok
    assert not torch.equal(x, base)  # something moved


def test_batches_cover_the_split_once_per_epoch():
    imgs = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 2, 2).contiguous()
    tb = TensorBatches(imgs, torch.arange(10), 4, (0.0,), (1.0 / 255,), shuffle=True)
    labels = torch.cat([y for _, y in tb])
    assert len(tb) == 3 and sorted(labels.tolist()) == list(range(10))
    for x, y in tb:  # images stay aligned with labels after shuffling
        assert torch.equal(x[:, 0, 0, 0].round().long(), y)


@pytest.mark.parametrize("fmt", ["py2", "py3"])
@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_reader_on_generated_batches(tmp_path, name, fmt, write_cifar):
    folder = write_cifar(tmp_path, name, fmt=fmt)
    b = load(name, root=str(tmp_path), batch_size=8, augment=False)
    n_train = 100 if name == "cifar10" else 20
    assert (b.num_train, b.num_test, b.input_shape) == (n_train, 20, (3, 32, 32))
    with open(folder / ("test_batch" if name == "cifar10" else "test"), "rb") as fh:
        raw = pickle.load(fh, encoding="bytes")
    x, _ = next(iter(b.test))
    mean, std = STATS[name]
    first = torch.tensor(raw[b"data"][0], dtype=torch.float32).view(3, 32, 32) / 255
    torch.testing.assert_close(x[0], (first - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1))


class RunsCode:
    """Unpickling this calls ``call(*args)``, as a crafted file would."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


@pytest.mark.parametrize("how", ["os.system", "builtins.exec"])
def test_cifar_batch_that_runs_code_is_refused(tmp_path, how, write_cifar):
    folder = write_cifar(tmp_path, "cifar10", fmt="py3")
    marker = tmp_path / "marker"
    if how == "os.system":
        payload = RunsCode(os.system, f"touch {marker}")
    else:
        payload = RunsCode(exec, f"open({str(marker)!r}, 'w')")
    evil = folder / "data_batch_3"
    with open(evil, "wb") as fh:
        pickle.dump({b"data": payload, b"labels": [0]}, fh)
    with pytest.raises(DatasetError) as err:
        load("cifar10", root=str(tmp_path))
    name = {"os.system": os.system.__module__ + ".system", "builtins.exec": "builtins.exec"}[how]  # posix.system
    assert str(err.value) == f"cannot read {evil}: not a CIFAR batch (it asks for {name})"
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (lambda whole: whole[: len(whole) // 2], "truncated or not a pickle (pickle data was truncated)"),
        (lambda whole: b"<html>not found</html>", "truncated or not a pickle (invalid load key, '<'.)"),
        (lambda whole: b"", "truncated or not a pickle (Ran out of input)"),
        (lambda whole: pickle.dumps([1, 2]), "not a CIFAR batch (no b'data' and b'labels' entries)"),
        (
            lambda whole: pickle.dumps({b"data": np.zeros(5, np.uint8), b"labels": [1]}),
            "its b'data' has shape (5,), not N x 3072",
        ),
        (lambda whole: pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}), "2 images but 1 labels"),
    ],
)
def test_unreadable_cifar_batch_is_one_line(tmp_path, content, message, write_cifar):
    folder = write_cifar(tmp_path, "cifar10")
    bad = folder / "test_batch"
    bad.write_bytes(content(bad.read_bytes()))
    with pytest.raises(DatasetError) as err:
        load("cifar10", root=str(tmp_path))
    assert str(err.value).startswith(f"cannot read {bad}: {message}") and "\n" not in str(err.value)


def test_imagenet_folder_loader(tmp_path, write_imagenet):
    write_imagenet(tmp_path)  # classes a and b, 3 images of 40 x 50 each in train/ and val/
    b = load("imagenet", root=str(tmp_path), batch_size=4, image_size=32)
    x, y = next(iter(b.train))
    assert x.shape == (4, 3, 32, 32) and b.num_classes == 2 and b.num_train == 6
    with pytest.raises(DatasetError, match="ImageFolder"):
        load("imagenet", root=str(tmp_path / "nope"))


def test_subsets_and_synthetic():
    b = load("synthetic", shape=[1, 8, 8], num_train=50, num_test=30, train_subset=20)
    assert (b.num_train, b.num_test, b.input_shape) == (20, 30, (1, 8, 8))
    cfg = DatasetConfig()
    cfg.name = "mnist"  # past the schema's check: load_dataset gives the registry's one line
    with pytest.raises(DatasetError, match="unknown dataset") as err:
        load_dataset(cfg, batch_size=8, eval_batch_size=8)
    names = ["fashion_mnist", "cifar10", "cifar100", "imagenet", "synthetic"]
    assert str(err.value) == f"unknown dataset 'mnist'; choose from {', '.join(names)}"
    assert list(DATASETS) == names


CUSTOM = """
import torch
from torch.utils.data import TensorDataset

from svdbench.data import DatasetSplits, TensorSplits


def split(n, channels, g):
    return torch.randint(0, 256, (n, channels, 4, 4), dtype=torch.uint8, generator=g), torch.arange(n) % 3


def tensors(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    c = cfg.kwargs["channels"]
    return TensorSplits(train=split(cfg.kwargs["n"], c, g), test=split(10, c, g), val=split(7, c, g), num_classes=3,
                        mean=(0.5,) * c, std=(0.25,) * c)


def datasets(cfg, seed):
    x, y = split(12, 1, torch.Generator().manual_seed(0))
    x = x.float()
    return DatasetSplits(train=TensorDataset(x, y), test=TensorDataset(x[:5], y[:5]), val=TensorDataset(x[5:], y[5:]),
                         num_classes=3, input_shape=(1, 4, 4))


def not_splits(cfg, seed):
    return {"train": None}
"""


@pytest.fixture
def custom_module(tmp_path, monkeypatch):
    """A module ``svdbench_test_custom_data`` on sys.path with your-own-dataset functions."""
    (tmp_path / "svdbench_test_custom_data.py").write_text(textwrap.dedent(CUSTOM))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "svdbench_test_custom_data", raising=False)
    import svdbench_test_custom_data

    return svdbench_test_custom_data


def test_target_dataset_with_a_val_split(custom_module):
    from types import SimpleNamespace

    cfg = DatasetConfig(name="mine", _target_="svdbench_test_custom_data.tensors", kwargs={"n": 20, "channels": 2},
                        train_subset=16)  # fmt: skip
    b = load_dataset(cfg, batch_size=8, eval_batch_size=4, seed=1)
    assert (b.name, b.num_train, b.num_test, b.input_shape, b.num_classes) == ("mine", 16, 10, (2, 4, 4), 3)
    assert (len(b.train), len(b.test), len(b.val)) == (2, 3, 2)
    expected = custom_module.tensors(SimpleNamespace(kwargs=cfg.kwargs), 1).val  # the seed reached the function
    x, y = map(torch.cat, zip(*b.val, strict=True))  # in order, normalised with the function's mean and std
    torch.testing.assert_close(x, (expected[0].float() / 255 - 0.5) / 0.25)
    assert torch.equal(y, expected[1])
    # Dataset splits go through DataLoaders, the val split too
    cfg = DatasetConfig(name="mine", _target_="svdbench_test_custom_data.datasets", test_subset=4)
    b = load_dataset(cfg, batch_size=4, eval_batch_size=3)
    assert (b.num_train, b.num_test, len(b.train), len(b.test), len(b.val)) == (12, 4, 3, 2, 3)
    assert torch.cat([y for _, y in b.val]).tolist() == [i % 3 for i in range(5, 12)]


@pytest.mark.parametrize(
    "target, message",
    [
        ("svdbench_test_nowhere.make", "cannot import 'svdbench_test_nowhere.make' (No module named"),
        ("svdbench_test_custom_data.missing", "has no attribute 'missing'"),
        ("make", "cannot import 'make' (give module.name)"),
        ("svdbench_test_custom_data.not_splits", "returned dict, not TensorSplits or DatasetSplits"),
    ],
)
def test_target_dataset_errors_are_one_line(custom_module, target, message):
    with pytest.raises(DatasetError, match="dataset") as err:
        load_dataset(DatasetConfig(name="mine", _target_=target), batch_size=8, eval_batch_size=8)
    assert message in str(err.value) and "\n" not in str(err.value)
