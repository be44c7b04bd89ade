"""Round 25 of the hostile pass.

- r25a: a FIFO (or another file that is not a regular one) among an ImageNet tree's images hung the run and
  ``--plan`` in ``open()``, where no signal ended it (F1)."""

import contextlib
import os
import shutil
import threading
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import imagenet_files

from svdbench.data.files import imagenet_splits, load_image
from svdbench.errors import DatasetError

# ------------------------------------------------ r25a F1: an ImageNet tree's image that is not a regular file


def _splits(root):
    return imagenet_splits(SimpleNamespace(root=str(root), image_size=16, augment=False), 0)


@pytest.mark.parametrize("split", ["train", "val"])
@pytest.mark.parametrize("kind", ["fifo", "dangling link"])
def test_an_image_that_is_not_a_regular_file_is_refused_when_the_tree_is_read(split, kind, tmp_path):
    root = imagenet_files(tmp_path / "inet", per_class=1)
    bad = root / split / "a" / "9.png"
    if kind == "fifo":
        os.mkfifo(bad)
    else:
        bad.symlink_to(tmp_path / "nothing.png")
    with pytest.raises(DatasetError, match=f"image {bad} (is not a regular file|cannot be read)"):
        _splits(root)


def test_a_link_to_an_image_and_other_files_are_taken_as_before(tmp_path):
    root = imagenet_files(tmp_path / "inet", per_class=2)
    (root / "train" / "a" / "9.png").symlink_to(root / "train" / "b" / "0.png")
    (root / "train" / "a" / "notes.txt").write_text("not an image: not one of the tree's")
    os.mkfifo(root / "train" / "b" / "pipe")  # not an image's name: never opened
    splits = _splits(root)
    assert len(splits.train) == 5 and len(splits.test) == 4
    x, y = splits.train[4]
    assert tuple(x.shape) == (3, 16, 16) and y == 1


def _open_writer(fifo) -> None:
    with contextlib.suppress(OSError):  # ENXIO: nobody reads it
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_an_image_made_a_fifo_after_the_tree_was_read_never_blocks(tmp_path):
    root = imagenet_files(tmp_path / "inet", per_class=1)
    splits = _splits(root)
    path = root / "val" / "b" / "0.png"
    path.unlink()
    os.mkfifo(path)
    unblock = threading.Timer(20, _open_writer, (path,))  # a regression blocks in open(): ended, and fails
    unblock.start()
    try:
        with pytest.raises(DatasetError, match=f"image {path} is not a regular file"):
            splits.test[1]
    finally:
        unblock.cancel()
    shutil.copy(root / "val" / "a" / "0.png", tmp_path / "ok.png")
    assert np.asarray(load_image(str(tmp_path / "ok.png"))).shape == (40, 50, 3)
