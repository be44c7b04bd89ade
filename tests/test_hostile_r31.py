"""Round 31 of the hostile pass, and the items round 30 left (the W&B records of a replaced or resumed run are in
tests/test_tracked_runs.py).

- r30a F5 (left then): ``--plan`` of a sweep estimated the jobs it keeps complete; they are named, and count no
  time.
- r30a F4 (left then): ``trainer.budget`` replaced a ``method.finetune_epochs`` set by you or a preset without a
  word; it is still replaced (the budget is the fair comparison), with a warning naming both values.
- r29a (left then): ``model.kwargs.embed_dim=0`` (timm) was "config error: 0.0 cannot be raised to a negative power",
  naming neither the model nor a key; a size timm cannot take names the model and the kwargs given.
- r31b F1: a ``run.log`` or ``.hydra/*.yaml`` that cannot be written (read-only, immutable) was Hydra's traceback, in
  a single run and in any job of a sweep (also a complete one: Hydra writes them for every job); now one line
  before any job starts.
- r31b F2 (silently wrong): a report counted a run's operating points as runs of their own when the run's main
  results.json was removed (without a word) or left out (unreadable, failed).
- r31b F3 (silently wrong): a completed run whose deployed model (or a point's) was removed was handed back as
  complete; it is refused in one line naming the file.
- r31b F4: a run whose operating points failed exited 0, saying so only mid-log; its last line names them, and a
  single run exits 1 (a sweep goes on with the main result).
- r31b F5: ``svdbench latency`` said a run whose deployed.json was removed "was made with save_model=false"; the
  reason now comes from what the run recorded.
- r31b F6: a second ``=`` in a value had no quoting hint.
- r31a F1 (traceback): ``trainer.lr``, ``finetune_lr`` or ``weight_decay`` beyond float32 passed every check.
- r31a F2 (silently wrong): a CIFAR batch of another layout (N x 32 x 32 x 3, grey rows) was reshaped.
- r31a F3: ``dataset.image_size`` was not checked (0 blamed the data; 100000 exhausted the memory).
- r31a F4 (silently wrong): ``init_from`` a dense run of another dataset, seed or validation split was used without
  a word; each difference is a warning now (a start of another dataset can be meant: transfer).
- r31a F6: a dense start with negative BatchNorm variances was loaded and scored.
- r31a F5: a checkpoint with non-finite weights resumed and failed as a NaN loss of training; it is named.
- r31a F6, F7: swapped Fashion-MNIST train and test files (a warning), a gzip file named without .gz and images of
  a side 0 (named as such); a model without BatchNorm (a ViT) showed a "stale BatchNorm" stage."""

import contextlib
import gzip
import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ENV, ROOT, record, refused

from svdbench.checkpoint import load_dense_checkpoint
from svdbench.data.files import FASHION_FILES, load_fashion_mnist, read_cifar_batch
from svdbench.dense_start import start_differences
from svdbench.deployed import load_deployed
from svdbench.errors import DatasetError, InputError
from svdbench.methods import L1FilterPruning, SVDTraining
from svdbench.models import build_model
from svdbench.plan import configure
from svdbench.report.load import load_runs
from svdbench.results import RESULTS_FILE


def test_a_budget_says_when_it_replaces_finetune_epochs_that_were_set(tiny_cfg, caplog):
    cfg = tiny_cfg(trainer={"epochs": 1, "budget": 4})
    with caplog.at_level(logging.WARNING, logger="svdbench"):
        method = configure(cfg, SVDTraining.create(finetune_epochs=7))
    assert method.finetune_epochs == 3
    assert "trainer.budget=4 replaces method.finetune_epochs=7 with 3" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="svdbench"):  # the schema's default: nothing was set to replace
        assert configure(cfg, L1FilterPruning.create(ratio=0.5)).finetune_epochs == 4
        assert configure(cfg, SVDTraining.create(finetune_epochs=3)).finetune_epochs == 3  # already the budget's
    assert "replaces" not in caplog.text


@pytest.mark.slow
def test_plan_of_a_sweep_counts_no_time_for_the_jobs_it_keeps(tmp_path, run_py, tiny):
    """r30a F5 (left then): ``--plan`` of a sweep whose jobs were complete estimated their training again."""
    sweep = tmp_path / "sweep"
    args = ["-m", *tiny(), f"hydra.sweep.dir={sweep}"]
    assert run_py(*args, "trainer.lr=0.01").returncode == 0
    plan = run_py(*args, "trainer.lr=0.01,0.02", "--plan")
    assert plan.returncode == 0, plan.stderr
    lines = plan.stdout.splitlines()
    kept = next(ln for ln in lines if ln.startswith("  job 0 "))
    assert f"{sweep / '0'} already holds a completed run of this config (kept; no time)" in kept
    later = lines[lines.index(next(ln for ln in lines if ln.startswith("  job 1 "))) + 1]
    assert later.strip().startswith("time: about ")
    total = next(ln for ln in lines if ln.startswith("in all: about "))
    assert total.removeprefix("in all: ") == later.strip().removeprefix("time: ").split(" on ")[0]
    assert not (sweep / "1").exists()


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
@pytest.mark.parametrize(
    ("key", "reason"),
    [("model.kwargs.embed_dim=0", "cannot be raised to a negative power"),
     ("model.kwargs.num_heads=3", "dim should be divisible by num_heads")],
)  # fmt: skip
def test_a_size_timm_cannot_take_names_the_model_and_its_kwargs(capsys, tiny, key, reason):
    err = refused(capsys, *tiny(), "model=vit_fmnist", key)
    assert err.startswith("config error: timm model 'vit_tiny_patch16_224' cannot be built here with ")
    assert key in err and reason in err


@contextlib.contextmanager
def unwritable(path: Path):
    """``path`` made read-only (``chmod a-w``; as root, which writes through that, immutable with ``chattr +i``)."""
    mode = path.stat().st_mode
    path.chmod(0o444 if path.is_file() else 0o555)
    immutable = False
    try:
        if os.access(path, os.W_OK):  # root
            path.chmod(mode)
            if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode != 0:
                pytest.skip("cannot make a file unwritable here (root, no chattr)")
            immutable = True
        yield path
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=False)
        path.chmod(mode)


@pytest.mark.parametrize("name", ["run.log", ".hydra/config.yaml", ".svdbench.lock"])
def test_a_file_hydra_or_svdbench_writes_in_place_that_cannot_be_written_is_one_line(capsys, tmp_path, tiny, name):
    """r31b F1: an unwritable ``run.log`` or ``.hydra/config.yaml`` in the run directory was Hydra's traceback."""
    out = tmp_path / "run"
    (out / ".hydra").mkdir(parents=True)
    (out / name).write_text("")
    with unwritable(out / name):
        err = refused(capsys, *tiny(), f"hydra.run.dir={out}")
    assert f"run directory {out}: {name} cannot be written (read-only or immutable)" in err


@pytest.mark.slow
def test_a_sweep_refuses_before_its_first_job_when_a_jobs_hydra_file_cannot_be_written(tmp_path, run_py, tiny):
    """r31b F1: in a sweep rerun (the jobs complete), job 1's unwritable ``.hydra/config.yaml`` stopped the sweep
    after job 0 with a traceback and no report."""
    sweep = tmp_path / "sweep"
    args = ["-m", *tiny(), "seed=0,1", f"hydra.sweep.dir={sweep}"]
    assert run_py(*args).returncode == 0
    before = (sweep / "0" / "run.log").read_bytes()
    with unwritable(sweep / "1" / ".hydra" / "config.yaml"):
        proc = run_py(*args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"config error: job 1 (seed=1): run directory {sweep / '1'}: .hydra/config.yaml cannot be written "
        "(read-only or immutable), and Hydra or svdbench writes it: make it writable, or use another directory"
    )
    assert (sweep / "0" / "run.log").read_bytes() == before  # refused before any job


@pytest.mark.parametrize(
    ("damage", "why"),
    [("removed", "whose main result {main} is gone (moved or removed)"),
     ("truncated", "whose main result was left out (see its warning)"),
     ("failed", "whose main result was left out (see its warning)")],
)  # fmt: skip
def test_the_points_of_a_run_whose_main_result_is_gone_or_left_out_are_not_counted(tmp_path, damage, why):
    """r31b F2: with the main results.json removed (no warning at all) or unreadable, a report counted the run's
    points as runs of their own: the run is counted whole or not at all."""
    run = record(tmp_path / "A", operating_points=[{"label": "energy_0.1", "status": "completed"}])
    record(run / "energy_0.1", top1=80.0, point_of=str(run))
    assert len(load_runs([run])[0]) == 2
    main = run / RESULTS_FILE
    if damage == "removed":
        main.unlink()
    elif damage == "truncated":
        main.write_text("")
    else:
        main.write_text(json.dumps({**json.loads(main.read_text()), "status": "failed", "error": "x"}))
    runs, _, skipped = load_runs([run])
    assert runs == []
    line = f"an operating point of {run}, {why.format(main=main)}: the run is counted whole or not at all"
    assert (run / "energy_0.1" / RESULTS_FILE, line) in skipped


def test_a_points_own_directory_reported_alone_still_counts_when_its_run_is_whole(tmp_path):
    run = record(tmp_path / "A", operating_points=[{"label": "energy_0.1", "status": "completed"}])
    record(run / "energy_0.1", top1=80.0, point_of=str(run))
    assert [r.path for r in load_runs([run / "energy_0.1"])[0]] == [run / "energy_0.1" / RESULTS_FILE]
    record(run, operating_points=[{"label": "energy_0.1", "status": "pending"}])  # not listed as made
    runs, _, skipped = load_runs([run / "energy_0.1"])
    assert runs == [] and "whose main result does not list it as made" in skipped[0][1]


@pytest.mark.slow
def test_a_completed_run_missing_a_file_it_wrote_is_not_handed_back_as_complete(tmp_path, run_py, tiny):
    """r31b F3: a completed run whose deployed.pt (of the run or of a point) was removed was handed back as
    complete, exit 0, its summary naming the model that is gone."""
    out = tmp_path / "run"
    args = [*tiny("save_model"), "save_model=true", "method.energies=[0.01]", f"hydra.run.dir={out}"]
    assert run_py(*args).returncode == 0
    assert run_py(*args).returncode == 0  # whole: handed back
    for gone in (out / "energy_0.01" / "deployed.pt", out / "deployed.json"):
        kept = gone.read_bytes()
        gone.unlink()
        proc = run_py(*args)
        assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == (
            f"config error: {out} holds a completed run of this config, but {gone}, which it wrote, is gone (moved "
            "or removed): resume=false to redo the run"
        )
        gone.write_bytes(kept)
    assert run_py(*args, "resume=false").returncode == 0


FAILING_POINTS = """
import runpy, sys
from svdbench import stages
finish = stages.StageRunner.finish
def finish_or_fail(self, leg, model):
    if leg.label is not None:  # an operating point: as a full disk would
        raise OSError(28, "No space left on device")
    return finish(self, leg, model)
stages.StageRunner.finish = finish_or_fail
sys.argv = ["run.py", *sys.argv[1:]]
runpy.run_path("run.py", run_name="__main__")
"""


@pytest.mark.slow
@pytest.mark.parametrize("multirun", [False, True])
def test_a_run_whose_operating_points_failed_says_so_last_and_exits_1(tmp_path, tiny, multirun):
    """r31b F4: a run whose points all failed (a full disk) exited 0, the failures only in ERROR lines mid-log."""
    where = f"hydra.sweep.dir={tmp_path / 's'}" if multirun else f"hydra.run.dir={tmp_path / 'r'}"
    args = [*(["-m"] if multirun else []), *tiny(), "method.energies=[0.01,0.05]", where]
    proc = subprocess.run([sys.executable, "-c", FAILING_POINTS, *args], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    last = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "operating points" in ln][-1]
    assert last.endswith("operating points energy_0.01, energy_0.05 failed (the reasons are above and in "
                         "results.json); rerun the same command to make them")  # fmt: skip
    assert proc.returncode == (0 if multirun else 1), proc.stderr[-2000:]  # a sweep goes on with the main result


@pytest.mark.parametrize(
    ("extra", "said"),
    [({"files": ["deployed.json", "deployed.pt"], "config": {"save_model": True}}, " (the run wrote it: moved or "
      "removed since)"),
     ({"config": {"save_model": False}}, " (the run was made with save_model=false)"),
     ({}, "")],
)  # fmt: skip
def test_a_missing_deployed_model_is_explained_by_what_the_run_recorded(tmp_path, extra, said):
    """r31b F5: a run whose deployed.json was removed was said to be made with save_model=false."""
    run = record(tmp_path / "A")
    rec = json.loads((run / RESULTS_FILE).read_text())
    (run / RESULTS_FILE).write_text(
        json.dumps({**rec, **extra, "config": {**rec["config"], **extra.get("config", {})}})
    )
    with pytest.raises(FileNotFoundError) as err:
        load_deployed(run)
    assert str(err.value) == f"no deployed.json in {run}{said}"


def test_a_second_equals_sign_in_a_value_gets_the_quoting_hint(capsys, tiny, tmp_path):
    """r31b F6: ``hydra.run.dir=a=b`` was Hydra's bare "mismatched input '='"; a space or a comma got the hint."""
    err = refused(capsys, *tiny(), f"hydra.run.dir={tmp_path}/x=y")
    assert err == ("config error: mismatched input '=' expecting <EOF> (quote a value holding such characters: "
                   "key='value', within the shell's own quotes)")  # fmt: skip


@pytest.mark.parametrize("key", ["trainer.lr=1e39", "trainer.finetune_lr=1e300", "trainer.weight_decay=1e300"])
def test_an_optimiser_setting_beyond_float32_is_one_line_before_any_work(capsys, tiny, key):
    """r31a F1: it passed every check, then the optimiser's step was a traceback (finetune_lr: after training)."""
    name, value = key.split("=")
    assert refused(capsys, *tiny(), key) == (
        f"config error: {name} must be at most 3.403e+38 (a float32 number, as the optimiser takes it), got "
        f"{float(value)}"
    )


@pytest.mark.parametrize(("shape", "n"), [((8, 32, 32, 3), 8), ((24, 1024), 8), ((8 * 3072,), 8)])
def test_a_cifar_batch_of_another_layout_is_refused_not_reshaped(tmp_path, shape, n):
    """r31a F2: images stored N x 32 x 32 x 3 (torchvision's ``CIFAR10.data``), or grey rows, were reshaped into
    scrambled colour images without a word."""
    path = tmp_path / "data_batch_1"
    data = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    path.write_bytes(pickle.dumps({b"data": data, b"labels": list(range(n))}))
    with pytest.raises(DatasetError) as err:
        read_cifar_batch(path, b"labels")
    assert str(err.value) == (
        f"cannot read {path}: its b'data' has shape {shape}, not N x 3072 (the distributed rows: 1024 red, then "
        "green, then blue values) nor N x 3 x 32 x 32"
    )
    for good in ((n, 3072), (n, 3, 32, 32)):
        path.write_bytes(pickle.dumps({b"data": np.zeros(good, np.uint8), b"labels": list(range(n))}))
        assert read_cifar_batch(path, b"labels")[0].shape == (n, 3, 32, 32)


@pytest.mark.parametrize("size", [0, -3, 100000])
def test_an_image_size_out_of_range_is_named_before_any_image_is_decoded(capsys, tiny, size):
    """r31a F3: 0 or -3 blamed "its first sample"; 100000 took the machine's memory resizing it (killed, no line)."""
    assert refused(capsys, *tiny(), f"dataset.image_size={size}") == (
        f"config error: dataset.image_size must be in [1, 4096] (the side of the square images, in pixels), got {size}"
    )


def dense_record(run: Path, **fields) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    (run / "dense.pt").write_bytes(b"")
    rec = {"status": "completed", "dataset": "synthetic", "seed": 0, "samples": {"train": 96, "val": 32, "test": 64}}
    (run / RESULTS_FILE).write_text(json.dumps({**rec, **fields}))
    return run


@pytest.mark.parametrize(
    ("fields", "said"),
    [({}, []),
     ({"seed": 7}, ["it was trained with seed 7, this run has seed 0"]),
     ({"dataset": "fashion_mnist"}, ["it was trained on dataset fashion_mnist, this run uses synthetic"]),
     ({"samples": {"train": 128, "val": 0, "test": 64}},
      ["it held out 0 validation images, this run 32: it trained on images this run validates on"]),
     ({"samples": {"train": 64, "val": 64, "test": 64}}, [])],
)  # fmt: skip
def test_a_dense_start_of_another_dataset_seed_or_split_is_named(tmp_path, fields, said):
    """r31a F4: ``init_from`` a dense run of another dataset, seed or validation split was used without a word."""
    run = dense_record(tmp_path / "dense", **fields)
    assert start_differences(run, "synthetic", 0, 32) == said
    assert start_differences(run / "dense.pt", "synthetic", 0, 32) == said  # the file named, its run beside it
    (run / RESULTS_FILE).unlink()
    assert start_differences(run, "synthetic", 0, 32) == []  # a dense.pt of one's own: nothing to compare


@pytest.mark.slow
def test_a_run_from_another_seeds_dense_start_warns_in_its_log(tmp_path, run_py, tiny):
    dense = tmp_path / "d7"
    assert run_py(*tiny(), "method=dense", "seed=7", f"hydra.run.dir={dense}").returncode == 0
    proc = run_py(*tiny(), "method=svd_posthoc", f"init_from={dense}", f"hydra.run.dir={tmp_path / 'r'}")
    assert proc.returncode == 0
    assert (
        f"init_from {dense}: it was trained with seed 7, this run has seed 0"
        in (tmp_path / "r" / "run.log").read_text()
    )


def test_a_dense_start_with_a_negative_running_variance_is_refused(tmp_path):
    """r31a F6: a dense.pt whose BatchNorm variance was edited negative was loaded and scored (all outputs NaN)."""
    model = build_model("cifar_resnet", "resnet8", 10, 3)
    state = model.state_dict()
    state["bn1.running_var"][0] = -1.0
    torch.save(state, tmp_path / "dense.pt")
    with pytest.raises(InputError) as err:
        load_dense_checkpoint(build_model("cifar_resnet", "resnet8", 10, 3), tmp_path)
    assert str(err.value) == (f"init_from: {tmp_path / 'dense.pt'} holds negative running variances (bn1.running_var): "
                              "not a usable starting point")  # fmt: skip


@pytest.mark.slow
def test_a_checkpoint_with_non_finite_weights_is_named_not_blamed_on_training(tmp_path, run_py, tiny):
    """r31a F5: NaN weights in checkpoint.pt resumed and failed as "loss became nan in stage 'train'"."""
    out = tmp_path / "run"
    args = [*tiny("trainer.epochs"), "trainer.epochs=2", f"hydra.run.dir={out}", "keep_checkpoints=true"]
    assert run_py(*args).returncode == 0
    ck = torch.load(out / "stage_train.pt", weights_only=True)
    name = next(iter(ck["model"]))
    ck["model"][name].fill_(float("nan"))
    (out / RESULTS_FILE).unlink()
    for f in ("deployed.json", "deployed.pt"):
        (out / f).unlink(missing_ok=True)
    torch.save(ck, out / "stage_train.pt")
    proc = run_py(*args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert (f"checkpoint {out / 'stage_train.pt'} holds non-finite weights ({name}): nothing to resume from; "
            "resume=false to start again") in proc.stderr + proc.stdout  # fmt: skip


def fashion(root: Path, n_train: int, n_test: int, shape=(28, 28)) -> Path:
    """The four Fashion-MNIST files, gzipped IDX, of ``n_train`` and ``n_test`` images of ``shape``."""
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        for kind, array in (("images", np.zeros((n, *shape), np.uint8)), ("labels", np.zeros(n, np.uint8))):
            header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
            with gzip.open(root / f"{FASHION_FILES[f'{split}_{kind}']}.gz", "wb") as f:
                f.write(header + array.tobytes())
    return root


def test_swapped_fashion_mnist_files_are_named_in_a_warning(tmp_path, caplog):
    """r31a F6: the 10000 test images under the train-* names trained, and scored on the 60000, without a word."""
    root = fashion(tmp_path / "fm", 10, 60)
    with caplog.at_level(logging.WARNING, logger="svdbench"):
        load_fashion_mnist(str(root), download=False)
    assert (f"Fashion-MNIST in {root}: the training files hold 10 images, the test files 60: are the train-* and "
            "t10k-* files swapped?") in caplog.text  # fmt: skip
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="svdbench"):
        load_fashion_mnist(str(fashion(tmp_path / "ok", 60, 10)), download=False)
    assert "swapped" not in caplog.text


def test_a_gzip_file_without_gz_and_images_of_a_side_0_are_named_as_such(tmp_path):
    """r31a F7: a gzip file named without .gz was "not an unsigned-byte IDX file"; images of 0 x 28 were blamed on
    the pad."""
    root = fashion(tmp_path / "fm", 20, 10)
    gz = root / f"{FASHION_FILES['train_labels']}.gz"
    plain = gz.with_suffix("")
    gz.rename(plain)
    with pytest.raises(DatasetError) as err:
        load_fashion_mnist(str(root), download=False)
    assert str(err.value) == f"{plain}: gzip-compressed, but not named .gz: rename it {plain.name}.gz"
    root = fashion(tmp_path / "flat", 20, 10, shape=(0, 28))
    with pytest.raises(DatasetError) as err:
        load_fashion_mnist(str(root), download=False)
    train = root / f"{FASHION_FILES['train_images']}.gz"
    assert str(err.value) == f"{train}: images of 20 x 0 x 28, not N x H x W (grey images, of a side 0)"


@pytest.mark.slow
def test_a_model_without_batchnorm_records_no_stale_batchnorm_stage(tmp_path, run_py, tiny):
    """r31a F7: a ViT (no BatchNorm) printed and recorded the stage "pruned (stale BatchNorm)"; a ResNet still does."""
    proc = run_py(*tiny(), "model=vit_fmnist", "method=random_filter", "dataset.shape=[1,28,28]",
                  f"hydra.run.dir={tmp_path / 'vit'}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "stale BatchNorm" not in proc.stdout + proc.stderr
    stages = json.loads((tmp_path / "vit" / RESULTS_FILE).read_text())["stage_top1"]
    assert "pruned_stale_bn" not in stages and "pruned" in stages
