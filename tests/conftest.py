"""Shared fixtures: the repository root, the tiny configuration every end-to-end test runs (the debug
preset conf/debug/tiny.yaml, as overrides and as a typed config for in-process runs), a ``run.py``
launcher, Hydra composition of the real config, and generated data-set files. Tests marked ``slow``
run the pipeline end to end; ``pytest -m "not slow"`` skips them."""

import gzip
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from benchmarks.tiny_guard import TINY_PRESET, preset_overrides, read_preset
from svdbench import preflight
from svdbench.checkpoint import load_checkpoint
from svdbench.config import Config, DatasetConfig, ModelConfig, TrainerConfig, register_configs
from svdbench.data.files import FASHION_FILES
from svdbench.errors import CheckpointError
from svdbench.results import RESULTS_FILE

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
os.environ.setdefault("WANDB_MODE", "disabled")
# run.py subprocesses: one thread each, so a test never oversubscribes the 2 cores of CI
os.environ["OMP_NUM_THREADS"] = "1"
# in-process work: the cores, or one per worker when pytest-xdist runs the suite in several processes
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else max(1, min(2, os.cpu_count() or 1)))
register_configs()

#: the tiny configuration of every end-to-end run (conf/debug/tiny.yaml: synthetic 16x16 data, ResNet-8, one
#: epoch each stage) as the command-line overrides it stands for
TINY = preset_overrides(TINY_PRESET)
ENV = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` are skipped cleanly on a machine without a CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny():
    """``tiny(*without)``: the tiny overrides, without those whose key starts with one of ``without``."""

    def make(*without: str) -> list[str]:
        return preset_overrides(TINY_PRESET, without)

    return make


@pytest.fixture(scope="session")
def env() -> dict:
    """The environment of every subprocess a test starts: W&B off, one thread."""
    return dict(ENV)


@pytest.fixture(scope="session")
def run_py():
    """``run_py(*args, timeout=300, env=None, cwd=ROOT)``: ``python run.py ARGS`` in a subprocess."""

    def run(*args: str, timeout: float = 300, env: dict | None = None, cwd: Path = ROOT):
        return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, env={**ENV, **(env or {})},
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip

    return run


@pytest.fixture(scope="session")
def start_run_py():
    """``start_run_py(*args)``: ``python run.py ARGS`` started in the background (a Popen)."""

    def start(*args: str, env: dict | None = None):
        return subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], cwd=ROOT, env={**ENV, **(env or {})},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip

    return start


@pytest.fixture(scope="session")
def wait_for_checkpoint():
    """``wait_for_checkpoint(proc, run_dir, stage)``: block until ``checkpoint.pt`` holds ``stage``."""

    def wait(proc, out: Path, stage: str, timeout: float = 240) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert proc.poll() is None, "run ended before it could be interrupted"
            ck = out / "checkpoint.pt"
            if ck.exists():
                try:
                    if load_checkpoint(ck)["stage"] == stage:
                        return
                except CheckpointError:  # being replaced right now
                    pass
            time.sleep(0.05)
        raise AssertionError("no checkpoint appeared")

    return wait


@pytest.fixture(scope="session")
def sigkill_in_stage(start_run_py, wait_for_checkpoint):
    """``sigkill_in_stage(args, out, stage)``: start ``run.py ARGS hydra.run.dir=OUT``, let it save a
    checkpoint in ``stage`` and go on into the next epoch, then SIGKILL it (nothing can be saved)."""

    def kill(args, out: Path, stage: str) -> None:
        proc = start_run_py(*args, f"hydra.run.dir={out}")
        wait_for_checkpoint(proc, out, stage)
        time.sleep(0.3)  # into the next epoch
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    return kill


@pytest.fixture(scope="session")
def compose_cfg():
    """``compose_cfg(overrides, hydra=False)``: the config Hydra composes from conf/ (with its
    ``hydra`` node when asked)."""

    def make(overrides=(), hydra: bool = False):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)

    return make


@pytest.fixture(scope="session")
def build():
    """``build(cfg)``: the validated config and the configured method of the run ``run.py`` plans
    (:func:`svdbench.app.plan`) from the composed ``cfg``."""

    def make(cfg):
        plan = preflight.plan(cfg)
        return plan.cfg, plan.method

    return make


@pytest.fixture(scope="session")
def imagenet_root(tmp_path_factory) -> Path:
    """A dataset.root with empty train/ and val/ folders: where preflight looks for ImageNet's trees, for
    the presets composed and planned (not run) by the tests."""
    root = tmp_path_factory.mktemp("imagenet")
    for split in ("train", "val"):
        (root / split).mkdir()
    return root


@pytest.fixture(scope="session")
def tiny_cfg():
    """``tiny_cfg(dataset=None, trainer=None, **top_level)``: the typed tiny configuration for
    ``run_experiment`` in this process: the model, data set and trainer of conf/debug/tiny.yaml (its
    groups' files with its values over them) on the CPU; ``dataset`` and ``trainer`` change keys of
    theirs. The method, ``save_model`` and ``measure`` are the caller's (the schema's defaults)."""
    groups, values = read_preset(TINY_PRESET)

    def group(name: str) -> dict:
        return {**yaml.safe_load((CONF / name / f"{groups[name]}.yaml").read_text()), **values.get(name, {})}

    def make(dataset: dict | None = None, trainer: dict | None = None, **kw) -> Config:
        return Config(
            model=ModelConfig(**group("model")),
            dataset=DatasetConfig(**{**group("dataset"), **(dataset or {})}),
            trainer=TrainerConfig(**{**values["trainer"], "device": "cpu", **(trainer or {})}),
            **kw,
        )

    return make


# ---------------------------------------------------------------------- generated data-set files


def py2_batch(data, labels, key):
    """``{b"batch_label": ..., b"data": data, key: labels}`` pickled as the distributed CIFAR files
    are: by Python 2 (protocol 2, str keys), the array rebuilt by numpy.core.multiarray._reconstruct."""

    def s(b):
        return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<I", len(b)) + b

    def i(v):
        return b"K" + bytes([v]) if v < 256 else b"M" + struct.pack("<H", v)

    n, m = data.shape
    no_size = b"J\xff\xff\xff\xff"  # elsize, alignment: -1
    dtype = (
        b"cnumpy\ndtype\n" + s(b"u1") + i(0) + i(1) + b"\x87R(" + i(3) + s(b"|") + b"NNN" + 2 * no_size + i(0) + b"tb"
    )
    array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + i(0) + b"\x85" + s(b"b") + b"\x87R("
             + i(1) + i(n) + i(m) + b"\x86" + dtype + b"\x89" + s(data.tobytes()) + b"tb")  # fmt: skip
    items = s(b"batch_label") + s(b"a batch") + s(b"data") + array + s(key) + b"](" + b"".join(map(i, labels)) + b"e"
    return b"\x80\x02}(" + items + b"u."


def cifar_files(root: Path, name: str = "cifar10", n: int = 20, fmt: str = "py2") -> Path:
    """CIFAR-10 (five training batches and a test batch) or CIFAR-100 (train and test) files of ``n`` random
    3x32x32 images each, labels 0-9, in torchvision's layout under ``root``: ``py2`` as distributed, ``py3`` as
    pickle.dump writes them. Returns their folder."""
    rng = np.random.default_rng(0)
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        files, key = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], b"labels"
    else:
        folder, files, key = root / "cifar-100-python", ["train", "test"], b"fine_labels"
    folder.mkdir(parents=True)
    for f in files:
        data, labels = rng.integers(0, 256, (n, 3072), dtype=np.uint8), [int(v) for v in rng.integers(0, 10, n)]
        with open(folder / f, "wb") as fh:
            if fmt == "py2":
                fh.write(py2_batch(data, labels, key))
            else:
                pickle.dump({b"data": data, key: labels}, fh)
    return folder


def fashion_mnist_files(root: Path, n_train: int = 20, n_test: int = 10) -> Path:
    """The four gzipped Fashion-MNIST IDX files under ``root``: ``n_train`` / ``n_test`` random 28x28
    images, labels 0-9. Returns ``root``."""
    rng = np.random.default_rng(0)

    def idx(stem: str, array: np.ndarray) -> None:
        header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
        with gzip.open(root / f"{stem}.gz", "wb") as f:
            f.write(header + array.tobytes())

    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        idx(FASHION_FILES[f"{split}_images"], rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        idx(FASHION_FILES[f"{split}_labels"], rng.integers(0, 10, n, dtype=np.uint8))
    return root


def imagenet_files(root: Path, classes: tuple[str, ...] = ("a", "b"), per_class: int = 3) -> Path:
    """ImageFolder trees ``root/train`` and ``root/val``: ``per_class`` 40x50 PNGs per class folder."""
    from PIL import Image

    for split in ("train", "val"):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(np.full((40, 50, 3), 40 * i, dtype=np.uint8)).save(d / f"{i}.png")
    return root


def _files(write, expected: dict):
    def make(root: Path) -> dict:
        write(root)
        return expected

    return make


#: registered data set -> ``make(root)``: writes small files of it under ``root`` and returns what the data set
#: then holds (num_train, num_test, num_classes and, where fixed, the image shape). The contract tests
#: (tests/test_contracts.py) load every registered data set: one that reads files needs an entry here.
DATASET_FILES = {
    "fashion_mnist": _files(fashion_mnist_files, dict(num_train=20, num_test=10, num_classes=10, shape=(1, 28, 28))),
    "cifar10": _files(cifar_files, dict(num_train=100, num_test=20, num_classes=10, shape=(3, 32, 32))),
    "cifar100": _files(lambda root: cifar_files(root, "cifar100"),
                       dict(num_train=20, num_test=20, num_classes=100, shape=(3, 32, 32))),
    "imagenet": _files(imagenet_files, dict(num_train=6, num_test=6, num_classes=2)),
}  # fmt: skip


@pytest.fixture(scope="session")
def write_cifar():
    """``write_cifar(root, name="cifar10", n=20, fmt="py2")``: generated CIFAR batch files (:func:`cifar_files`)."""
    return cifar_files


@pytest.fixture(scope="session")
def write_fashion_mnist():
    """``write_fashion_mnist(root, n_train=20, n_test=10)``: generated Fashion-MNIST files."""
    return fashion_mnist_files


@pytest.fixture(scope="session")
def write_imagenet():
    """``write_imagenet(root, classes=("a", "b"), per_class=3)``: generated ImageFolder trees."""
    return imagenet_files


@pytest.fixture(scope="session")
def dataset_files() -> dict:
    """:data:`DATASET_FILES`: per registered data set that reads files, a writer of small ones."""
    return dict(DATASET_FILES)


def tensors_digest(path: Path) -> str:
    """The digest of a state_dict file's tensors as svdbench records ``dense_start``, computed here on its
    own: sha256 over every tensor's name, dtype, shape and bytes, in name order."""
    import hashlib

    state = torch.load(path, map_location="cpu", weights_only=True)
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode() + t.numpy().tobytes())
    return "tensors-sha256:" + h.hexdigest()


@pytest.fixture()
def saved_wandb_report(monkeypatch):
    """``saved_wandb_report(rep)``: the W&B Report svdbench saves for a built report ``rep`` (project
    svdbench, entity team), its ``save()`` intercepted: no network."""
    import wandb_workspaces.reports.v2 as wr

    from svdbench import report, tracking

    saved = []
    monkeypatch.setattr(wr.Report, "save", lambda self, draft=False, clone=False: saved.append(self) or self)

    def make(rep):
        tracking._save_report(report.report_tables(rep), project="svdbench", entity="team", run_name="report-x")
        (doc,) = saved
        return doc

    return make


def record(path: Path, method="svd", seed=0, top1=88.0, macs=500, **extra) -> Path:
    """A completed run's results.json in ``path`` (made), as the report and latency read it: no training."""
    path.mkdir(parents=True, exist_ok=True)
    rec = {"status": "completed", "method": method, "model": "resnet8", "dataset": "synthetic", "seed": seed,
           "config": {"seed": seed, "method": {"energy": top1 / 1000}}, "top1": top1, "macs": macs,
           "macs_dense": 1000, "params": 10, "params_dense": 20, "wall_time": {"total": 1.0}, **extra}  # fmt: skip
    (path / RESULTS_FILE).write_text(json.dumps(rec))
    return path


@pytest.fixture()
def runs(tmp_path):
    """Two recorded runs under ``tmp_path/runs``: dense (d0) and alpha (a0)."""
    src = tmp_path / "runs"
    record(src / "d0", "dense", 0, 90.0, 1000)
    record(src / "a0", "alpha", 0, 88.0, 500)
    return src


def refused(capsys, *argv: str) -> str:
    """The one line ``run.py ARGV`` is refused with before Hydra starts (exit code 2)."""
    with pytest.raises(SystemExit) as stop:
        preflight.preflight(["run.py", *argv])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and "\n" not in err, err
    return err
