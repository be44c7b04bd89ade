"""Datasets: the in-memory path against torchvision's readers, augmentation, generated CIFAR/ImageNet files."""

import gzip
import pickle

import numpy as np
import pytest
import torch

from svdbench.data import (
    STATS,
    DatasetError,
    TensorBatches,
    fashion_mnist_root,
    load_dataset,
)


def test_fashion_mnist_matches_the_original_files():
    root = fashion_mnist_root(None)
    if root is None:
        pytest.skip("Fashion-MNIST files not installed (make data)")
    b = load_dataset("fashion_mnist", batch_size=64, augment=False, test_subset=500)
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


def write_fake_cifar(root, name="cifar10", n=20):
    rng = np.random.default_rng(0)
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        files, key = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], b"labels"
    else:
        folder, files, key = root / "cifar-100-python", ["train", "test"], b"fine_labels"
    folder.mkdir(parents=True)
    for f in files:
        d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), key: list(rng.integers(0, 10, n))}
        with open(folder / f, "wb") as fh:
            pickle.dump(d, fh)
    return folder


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_reader_on_generated_batches(tmp_path, name):
    folder = write_fake_cifar(tmp_path, name)
    b = load_dataset(name, root=str(tmp_path), batch_size=8, augment=False)
    n_train = 100 if name == "cifar10" else 20
    assert (b.num_train, b.num_test, b.input_shape) == (n_train, 20, (3, 32, 32))
    with open(folder / ("test_batch" if name == "cifar10" else "test"), "rb") as fh:
        raw = pickle.load(fh, encoding="bytes")
    x, _ = next(iter(b.test))
    mean, std = STATS[name]
    first = torch.tensor(raw[b"data"][0], dtype=torch.float32).view(3, 32, 32) / 255
    torch.testing.assert_close(x[0], (first - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1))


def test_imagenet_folder_loader(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for c in ("a", "b"):
            d = tmp_path / split / c
            d.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.full((40, 50, 3), 40 * i, dtype=np.uint8)).save(d / f"{i}.png")
    b = load_dataset("imagenet", root=str(tmp_path), batch_size=4, image_size=32)
    x, y = next(iter(b.train))
    assert x.shape == (4, 3, 32, 32) and b.num_classes == 2 and b.num_train == 6
    with pytest.raises(DatasetError, match="ImageFolder"):
        load_dataset("imagenet", root=str(tmp_path / "nope"))


def test_subsets_and_synthetic():
    b = load_dataset("synthetic", synthetic_shape=(1, 8, 8), synthetic_train=50, synthetic_test=30, train_subset=20)
    assert (b.num_train, b.num_test, b.input_shape) == (20, 30, (1, 8, 8))
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("mnist")
