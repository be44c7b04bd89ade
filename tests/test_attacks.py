"""The attack table: what a hostile or careless user tried, each case asserting the exit code (or
the error), the single line that says what is wrong, and what is or is not in the run directory.

- CONFIG: command lines checked before Hydra starts (``svdbench.preflight.preflight``, in this process:
  exit code 2, one line on stderr, nothing written).
- RUN: inputs found when a run starts or while it runs (``run_experiment``): one-line errors, and
  files left exactly as they should be.
- REPORT: hostile results.json files, each skipped with a warning, the good ones still reported.
"""

import json
import os
import pickle
import signal
import stat
from pathlib import Path

import pytest
import torch

from svdbench import preflight, report
from svdbench.checkpoint import load_checkpoint, save_checkpoint
from svdbench.config import DatasetConfig
from svdbench.data import load_dataset
from svdbench.errors import CheckpointError, DatasetError, InputError, Preempted
from svdbench.methods import Dense, SVDTraining
from svdbench.models import build_model
from svdbench.pipeline import run_experiment
from svdbench.results import RESULTS_FILE
from svdbench.rundir import LOCK, RunLock

LONG = "a" * 300
#: (command-line overrides, fragment of the one line). Every case also gets hydra.run.dir=<tmp>/run.
CONFIG = [
    # keys that no schema declares, however they are written
    ("trainer.lrr=0.1", "Key 'lrr' not in 'TrainerConfig' (key: trainer.lrr)"),
    ("+trainer.lrr=0.1", "Key 'lrr' not in 'TrainerConfig' (key: trainer.lrr)"),
    ("++trainer.lrr=0.1", "Key 'lrr' not in 'TrainerConfig' (key: trainer.lrr)"),
    ("+method.enrgy=0.1", "Key 'enrgy' not in 'SVDConfig' (key: method.enrgy)"),
    ("++method.enrgy=0.1", "Key 'enrgy' not in 'SVDConfig' (key: method.enrgy)"),
    ("method.enrgy=0.1", "Key 'enrgy' not in 'SVDConfig' (key: method.enrgy)"),
    ("+seeed=1", "Key 'seeed' not in 'Config'"),
    ("+model.depth=3", "Key 'depth' not in 'ModelConfig' (key: model.depth)"),
    ("+dataset.rooot=x", "Key 'rooot' not in 'DatasetConfig' (key: dataset.rooot)"),
    ("+logger.lvl=INFO", "Key 'lvl' not in 'LoggerConfig' (key: logger.lvl)"),
    ("+measure.latancy=true", "Key 'latancy' not in 'MeasureConfig' (key: measure.latancy)"),
    ("+regularizer.wieght=1", "Key 'wieght' not in 'SparsityRegularizer' (key: regularizer.wieght)"),
    ("-m +trainer.lrr=0.1", "Key 'lrr' not in 'TrainerConfig' (key: trainer.lrr)"),
    ("-m trainer.lrr=0.1,0.2", "Key 'lrr' not in 'TrainerConfig' (key: trainer.lrr)"),
    ("--config-name config +trainer.lrr=0.1", "Key 'lrr' not in 'TrainerConfig' (key: trainer.lrr)"),
    ("--config-name=config trainer.lrr=0.1", "Key 'lrr' not in 'TrainerConfig' (key: trainer.lrr)"),
    ("-m method=trp method.energy_train=0.9,0.95", "method.energy_train was renamed: use method.energy_kept"),
    ("method=trp method.energy_train=0.9", "method.energy_train was renamed: use method.energy_kept"),
    ("method=trp +method.energy_train=0.9", "method.energy_train was renamed: use method.energy_kept"),
    # numbers that are not finite
    ("trainer.lr=inf", "trainer.lr must be a finite number, got inf"),
    ("trainer.lr=nan", "trainer.lr must be"),
    ("trainer.finetune_lr=inf", "trainer.finetune_lr must be a finite number"),
    ("regularizer.weight=inf", "regularizer.weight must be a finite number"),
    ("trainer.weight_decay=inf", "trainer.weight_decay must be a finite number"),
    ("method.orthogonality=inf", "method.orthogonality must be a finite number"),
    ("trainer.gamma=nan", "trainer.gamma must be in (0, 1]"),
    ("measure.max_seconds=inf", "measure.max_seconds must be a finite number"),
    ("method.energies=[0.1,nan]", "method.energies must each be in [0, 1)"),
    ("-m trainer.lr=0.01,inf", "trainer.lr must be a finite number, got inf"),
    # ranges
    ("trainer.lr=0", "trainer.lr must be > 0, got 0.0"),
    ("trainer.lr=-1", "trainer.lr must be > 0, got -1.0"),
    ("trainer.finetune_lr=-1", "trainer.finetune_lr must be > 0"),
    ("regularizer.weight=-1", "regularizer.weight must be >= 0"),
    ("trainer.weight_decay=-1", "trainer.weight_decay must be >= 0"),
    ("method.orthogonality=-1", "method.orthogonality must be >= 0"),
    ("trainer.gamma=-1", "trainer.gamma must be in (0, 1]"),
    ("trainer.gamma=0", "trainer.gamma must be in (0, 1]"),
    ("trainer.gamma=2", "trainer.gamma must be in (0, 1]"),
    ("trainer.momentum=1", "trainer.momentum must be in [0, 1)"),
    ("trainer.momentum=-0.1", "trainer.momentum must be in [0, 1)"),
    ("trainer.milestones=[0.5,1.5]", "trainer.milestones are fractions of a stage"),
    ("trainer.milestones=[81,122]", "trainer.milestones are fractions of a stage"),
    ("trainer.epochs=-1", "trainer.epochs must be >= 0"),
    ("trainer.batch_size=0", "trainer.batch_size must be > 0"),
    ("trainer.eval_batch_size=0", "trainer.eval_batch_size must be > 0"),
    ("trainer.bn_recalibration_batches=-1", "trainer.bn_recalibration_batches must be >= 0"),
    ("trainer.num_workers=-1", "trainer.num_workers must be >= 0"),
    ("seed=-1", "seed must be in [0, 2**32), got -1"),
    ("seed=4294967296", "seed must be in [0, 2**32), got 4294967296"),
    ("dataset.num_train=0", "dataset.num_train must be > 0, got 0"),
    ("dataset.num_train=-5", "dataset.num_train must be > 0, got -5"),
    ("dataset.num_test=0", "dataset.num_test must be > 0, got 0"),
    ("dataset.train_subset=0", "dataset.train_subset must be positive"),
    ("dataset.test_subset=-1", "dataset.test_subset must be positive"),
    ("dataset.shape=[3,16]", "dataset.shape must be [C, H, W] > 0"),
    ("dataset.shape=[0,16,16]", "dataset.shape must be [C, H, W] > 0"),
    ("dataset.num_classes=1", "dataset.num_classes must be >= 2"),
    ("measure.batch_sizes=[]", "measure.batch_sizes must be a non-empty list of positive sizes"),
    ("measure.batch_sizes=[0]", "measure.batch_sizes must be a non-empty list of positive sizes"),
    ("measure.max_seconds=0", "measure.max_seconds must be > 0"),
    ("method.energy=1.0", "method.energy must be in [0, 1), got 1.0"),
    ("method.energy=-0.1", "method.energy must be in [0, 1)"),
    ("method.energy=0.1 method.threshold=0.2", "method.energy and method.threshold: set exactly one"),
    ("method.energy=null method.threshold=-1", "method.threshold must be >= 0"),
    ("method.energies=[0.1,1.5]", "method.energies must each be in [0, 1)"),
    ("method.finetune_epochs=-1", "method.finetune_epochs must be >= 0"),
    ("-m method.energy=0.1,1.5", "method.energy must be in [0, 1), got 1.5"),
    ("method=trp method.period=0", "method.period must be >= 1, got 0"),
    ("method=trp method.energy_kept=0", "method.energy_kept must be in (0, 1]"),
    ("method=trp method.energy_kept=1.5", "method.energy_kept must be in (0, 1]"),
    ("method=trp method.nuclear_weight=-1", "method.nuclear_weight must be >= 0"),
    ("method=trp method.energy=0.1 method.threshold=0.05", "method.energy and method.threshold: set exactly one"),
    ("method=l1_filter method.ratio=1.0", "method.ratio must be in (0, 1)"),
    ("method=l1_filter method.ratio=0.3 method.speedup=2", "method.ratio and method.speedup: set exactly one"),
    ("method=sfp method.speedup=1.0", "method.speedup must be > 1"),
    ("method=fpgm method.ratio=-0.1", "method.ratio must be in (0, 1)"),
    ("method=svd_posthoc method.energy=1.0", "method.energy must be in [0, 1)"),
    ("method=dense method.period=3", "Key 'period' not in 'MethodConfig' (key: method.period)"),
    # choices
    ("trainer.optimizer=rmsprop", "trainer.optimizer must be sgd or adam, got 'rmsprop'"),
    ("trainer.schedule=linear", "trainer.schedule must be cosine, multistep or constant"),
    ("trainer.finetune_schedule=linear", "trainer.finetune_schedule must be null, cosine, multistep or constant"),
    ("trainer.device=tpu", "trainer.device must be auto, cpu or cuda"),
    ("trainer.amp=fp8", "trainer.amp must be auto, off, bf16 or fp16, got 'fp8'"),
    ("trainer.channels_last=maybe", "trainer.channels_last must be auto, true or false"),
    ("trainer.cudnn_benchmark=true", "contradicts trainer.deterministic=true"),
    ("logger.level=LOUD", "logger.level must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got 'LOUD'"),
    ("logger.name=tensorboard", "logger.name must be console or wandb"),
    ("logger.mode=sometimes", "logger.mode must be offline, online or disabled"),
    ("method.decomposition=tucker", "method.decomposition must be channel or spatial, got 'tucker'"),
    ("method.init=zeros", "method.init must be auto, random or svd"),
    ("dataset.name=mnist", "dataset.name must be one of"),
    ("model.family=keras", "model.family must be cifar_resnet, torchvision or timm"),
    ("model=resnet9", "Could not find 'model/resnet9'"),
    ("method=magic", "Could not find 'method/magic'"),
    ("regularizer=l3", "Could not find 'regularizer/l3': choose from hoyer, hoyer_square, l1, none"),
    # types
    ("trainer.lr=fast", "could not be converted to Float (key: trainer.lr)"),
    ("trainer.epochs=1.5", "could not be converted to Integer (key: trainer.epochs)"),
    ("seed=abc", "could not be converted to Integer (key: seed)"),
    ("method.skip=3", "(key: method.skip)"),
    # run directories (RUN_DIR is replaced by the test's own)
    ("hydra.run.dir=/", "run directory / is not a directory of its own"),
    ("hydra.run.dir=FILE", "is a file, not a directory"),
    (f"hydra.run.dir=TMP/{LONG}", "cannot be written (File name too long)"),
    ("hydra.run.dir=/proc/svdbench/run", "cannot be written"),
]


@pytest.mark.parametrize("args, fragment", CONFIG, ids=[c[0][:60] for c in CONFIG])
def test_config_attack(args, fragment, tmp_path, capsys):
    run_dir = tmp_path / "run"
    (tmp_path / "a_file").write_text("x")
    argv = args.replace("FILE", str(tmp_path / "a_file")).replace("TMP", str(tmp_path)).split()
    if not any(a.startswith("hydra.run.dir=") for a in argv):
        argv.append(f"hydra.run.dir={run_dir}")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(SystemExit) as exit_:
        preflight.preflight(["run.py", *argv])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert exit_.value.code == 2 and len(lines) == 1, err
    assert lines[0].startswith("config error: ") and fragment in lines[0] and "Traceback" not in err, lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, not even the run directory


def test_a_good_command_line_passes_preflight(tmp_path, tiny, capsys):
    preflight.preflight(["run.py", *tiny(), f"hydra.run.dir={tmp_path / 'run'}"])
    preflight.preflight(["run.py", "-m", *tiny(), "trainer.lr=0.01,0.02"])
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------------- RUN


@pytest.fixture(scope="module")
def completed(tmp_path_factory):
    """A completed tiny SVD run (kept checkpoints: stage and latest files)."""
    from svdbench.config import Config, DatasetConfig, ModelConfig, TrainerConfig

    cfg = Config(model=ModelConfig(name="resnet8"),
                 dataset=DatasetConfig(name="synthetic", shape=[3, 16, 16], num_train=64, num_test=32),
                 trainer=TrainerConfig(epochs=1, batch_size=32, progress=False, device="cpu",
                                       bn_recalibration_batches=1), save_model=False)  # fmt: skip
    cfg.measure.latency = False
    d = tmp_path_factory.mktemp("done") / "run"
    run_experiment(cfg, SVDTraining(), d)
    return cfg, d


def small(tiny_cfg, **kw):
    cfg = tiny_cfg(dataset={"num_train": 64, "num_test": 32}, save_model=False, **kw)
    cfg.measure.latency = False
    return cfg


@pytest.mark.slow
def test_completed_run_of_another_config_is_not_replaced(completed, tmp_path):
    cfg, d = completed
    before = (d / RESULTS_FILE).read_text()
    other = type(cfg)(**{**cfg.__dict__, "seed": 7})
    with pytest.raises(InputError, match=r"holds a completed run of another config \(seed: 0 there, 7 here\)"):
        run_experiment(other, SVDTraining(), d)
    with pytest.raises(InputError, match=r"\(method: svd there, dense here\)"):
        run_experiment(cfg, Dense(), d)
    assert (d / RESULTS_FILE).read_text() == before


@pytest.mark.slow
def test_a_locked_run_directory_is_refused(tmp_path, tiny_cfg):
    with RunLock(tmp_path / "run"):
        with pytest.raises(InputError, match=rf"in use by another svdbench run \(pid {os.getpid()}\)"):
            run_experiment(small(tiny_cfg), Dense(), tmp_path / "run")
    assert not (tmp_path / "run" / RESULTS_FILE).exists()
    run_experiment(small(tiny_cfg), Dense(), tmp_path / "run")  # released: the run goes ahead
    assert not (tmp_path / "run" / LOCK).exists()


@pytest.mark.slow
def test_files_the_run_did_not_write_are_kept_and_orphans_go(tmp_path, tiny_cfg):
    d = tmp_path / "run"
    d.mkdir()
    mine = [d / "stage_final_model.pt", d / "notes.txt", d / ".notes.txt.x.tmp"]
    for p in mine:
        p.write_text("user data")
    orphan = d / ".checkpoint.pt.abc123.tmp"  # a SIGKILL during an atomic save left it
    orphan.write_bytes(b"half")
    run_experiment(small(tiny_cfg), SVDTraining(), d)
    assert all(p.read_text() == "user data" for p in mine) and not orphan.exists()
    assert not (d / "checkpoint.pt").exists() and not (d / "stage_train.pt").exists()
    assert sorted(p.name for p in d.glob("stage_*.pt")) == ["stage_final_model.pt"]


@pytest.mark.slow
def test_files_follow_the_umask(tmp_path, tiny_cfg):
    old = os.umask(0o027)
    try:
        run_experiment(small(tiny_cfg, keep_checkpoints=True), Dense(), tmp_path / "run")
    finally:
        os.umask(old)
    for name in (RESULTS_FILE, "checkpoint.pt", "dense.pt"):
        assert stat.S_IMODE((tmp_path / "run" / name).stat().st_mode) == 0o640, name


@pytest.mark.slow
def test_a_subset_larger_than_the_split_records_the_real_counts(tmp_path, tiny_cfg, caplog):
    cfg = small(tiny_cfg)
    cfg.dataset.train_subset, cfg.dataset.test_subset = 10_000, 16
    res = run_experiment(cfg, Dense(), tmp_path / "run")
    assert res["samples"] == {"train": 64, "val": 0, "test": 16}
    assert "dataset.train_subset=10000, but the split has 64 samples: using 64" in caplog.text


@pytest.mark.parametrize(
    "state, fragment",
    [
        ("nan", "holds non-finite weights"),
        ("other_arch", "holds another architecture"),
        ("tensor", "is not a state_dict"),
        ("garbage", "cannot read"),
        ("missing", "no dense checkpoint at"),
    ],
)
def test_bad_starting_points_are_one_line(state, fragment, tmp_path, tiny_cfg):
    p = tmp_path / "dense.pt"
    sd = build_model("cifar_resnet", "resnet8", 10, 3).state_dict()
    if state == "nan":
        sd["conv1.weight"][0, 0, 0, 0] = float("nan")
        torch.save(sd, p)
    elif state == "other_arch":
        torch.save(build_model("cifar_resnet", "resnet20", 10, 3).state_dict(), p)
    elif state == "tensor":
        torch.save(torch.zeros(3), p)
    elif state == "garbage":
        p.write_bytes(b"not a torch file")
    with pytest.raises(InputError, match=fragment) as err:
        run_experiment(small(tiny_cfg, init_from=str(p)), Dense(), tmp_path / "run")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run" / RESULTS_FILE).exists()


class Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


@pytest.mark.parametrize("damage", ["missing_key", "missing_train_key", "truncated", "pickle_payload", "not_ours"])
def test_damaged_checkpoints_are_one_line(damage, completed, tmp_path, monkeypatch):
    cfg, d = completed
    state = load_checkpoint(d / "checkpoint.pt") if (d / "checkpoint.pt").exists() else None
    run = tmp_path / "run"
    run.mkdir()
    ck = run / "checkpoint.pt"
    if damage == "missing_key":
        save_checkpoint({"version": 1, "config": {}, "stage": "train"}, ck)
    elif damage == "missing_train_key":
        save_checkpoint({"version": 1, "config": {}, "stage": "train", "train": {"model": {}}, "method": {},
                         "results": {}}, ck)  # fmt: skip
    elif damage == "truncated":
        torch.save({"version": 1, "x": torch.zeros(1000)}, ck)
        ck.write_bytes(ck.read_bytes()[:200])
    elif damage == "pickle_payload":
        with open(ck, "wb") as f:
            pickle.dump({"version": 1, "evil": Evil()}, f, protocol=2)
    else:
        torch.save({"weights": torch.zeros(2)}, ck)
    monkeypatch.chdir(tmp_path)
    # a directory a run of svdbench holds (its results.json says so, as a killed run's "running" record does):
    # the damaged checkpoint is examined, and named
    running = json.loads((d / "results.json").read_text())
    (run / "results.json").write_text(json.dumps({**running, "status": "running"}))
    with pytest.raises(CheckpointError, match=r"checkpoint .*checkpoint.pt") as err:
        run_experiment(cfg, SVDTraining(), run)
    assert "\n" not in str(err.value) and not (tmp_path / "PWNED").exists()
    assert state is None or isinstance(state, dict)
    (run / "results.json").unlink()  # no results.json: a file of a checkpoint's name is examined all the same
    with pytest.raises(CheckpointError, match=r"checkpoint .*checkpoint.pt") as err:
        run_experiment(cfg, SVDTraining(), run)
    assert "\n" not in str(err.value) and not (tmp_path / "PWNED").exists()


def test_a_crafted_cifar_batch_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": Evil(), b"labels": [0]}, f)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetError, match=r"cannot read .*data_batch_1: not a CIFAR batch"):
        load_dataset(DatasetConfig(name="cifar10", root=str(tmp_path), download=False), batch_size=8,
                     eval_batch_size=8)  # fmt: skip
    assert not (tmp_path / "PWNED").exists()


def test_a_failed_download_leaves_nothing(tmp_path, monkeypatch):
    import torchvision

    def offline(root, train=True, download=False):
        (Path(root) / "FashionMNIST" / "raw").mkdir(parents=True, exist_ok=True)  # as torchvision does first
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried http://m1/, got:\n<urlopen error x>\n")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    root = tmp_path / "data"
    with pytest.raises(DatasetError, match=r"download to .*data failed \(<urlopen error x>\): give dataset.root="):
        load_dataset(DatasetConfig(name="fashion_mnist", root=str(root), download=True), batch_size=8,
                     eval_batch_size=8)  # fmt: skip
    assert not root.exists()


@pytest.mark.slow
def test_ctrl_c_is_recorded_as_preempted(tmp_path, tiny_cfg):
    class Interrupted(SVDTraining):
        def after_step(self, model, step, stage):
            if step == 1:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_experiment(small(tiny_cfg), Interrupted(), tmp_path / "run")
    res = json.loads((tmp_path / "run" / RESULTS_FILE).read_text())
    assert res["status"] == "preempted" and "SIGINT" in res["error"]


@pytest.mark.slow
def test_a_signal_while_measuring_is_handed_on(tmp_path, tiny_cfg):
    calls = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: calls.append(signum))

    class SignalledWhileExporting(SVDTraining):
        def export(self, model):
            os.kill(os.getpid(), signal.SIGUSR1)
            return super().export(model)

    try:
        with pytest.raises(Preempted) as err:
            run_experiment(small(tiny_cfg), SignalledWhileExporting(), tmp_path / "run")
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert err.value.completed and err.value.signum == signal.SIGUSR1 and calls == [signal.SIGUSR1]
    assert json.loads((tmp_path / "run" / RESULTS_FILE).read_text())["status"] == "completed"


@pytest.mark.slow
def test_rerun_asking_for_latency_says_it_is_not_there(completed, caplog):
    cfg, d = completed
    again = type(cfg)(**cfg.__dict__)
    again.measure = type(cfg.measure)(latency=True)
    res = run_experiment(again, SVDTraining(), d)
    assert "latency" not in res and "measured without latency" in caplog.text


@pytest.mark.slow
def test_a_nan_loss_ends_a_single_run_in_one_line(tmp_path, run_py, tiny):
    out = tmp_path / "run"
    proc = run_py(*tiny(), "method=dense", "trainer.optimizer=sgd", "trainer.lr=1e30", f"hydra.run.dir={out}")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr + proc.stdout
    errors = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "ERROR" in ln]
    assert len(errors) == 1 and "run failed: loss became nan in stage 'train', epoch 1" in errors[0]
    assert json.loads((out / RESULTS_FILE).read_text())["status"] == "failed"


@pytest.mark.slow
def test_a_second_process_on_a_running_directory_is_refused(tmp_path, start_run_py, run_py, wait_for_checkpoint,
                                                            tiny):  # fmt: skip
    out = tmp_path / "run"
    slow = [*tiny("trainer.epochs", "dataset.num_train", "dataset.shape", "trainer.batch_size"),
            "trainer.epochs=6", "dataset.num_train=768", "dataset.shape=[3,24,24]", "trainer.batch_size=16",
            f"hydra.run.dir={out}"]  # fmt: skip
    proc = start_run_py(*slow)
    wait_for_checkpoint(proc, out, "train")
    second = run_py(*slow)
    proc.kill()
    proc.wait(timeout=30)
    assert second.returncode == 2 and "is in use by another svdbench run (pid" in second.stdout + second.stderr


# ---------------------------------------------------------------------------------------- REPORT

GOOD = {"status": "completed", "method": "dense", "model": "resnet8", "dataset": "synthetic", "seed": 0,
        "config": {"seed": 0}, "top1": 50.0, "macs": 100, "macs_dense": 100, "params": 10,
        "params_dense": 10}  # fmt: skip
HOSTILE = [
    ("deep", "[" * 100_000 + "]" * 100_000, "not valid JSON (RecursionError"),
    ("seed_list", {**GOOD, "seed": [1]}, "seed is [1], not an integer"),
    ("seed_bool", {**GOOD, "seed": True}, "seed is True, not an integer"),
    ("huge", {**GOOD, "macs_dense": 10**400}, "macs_dense is 1000"),
    ("top1_250", {**GOOD, "top1": 250}, "top1 is 250, not a number in range"),
    ("macs_negative", {**GOOD, "macs": -5}, "macs is -5, not a number in range"),
    ("nan", {**GOOD, "top1": float("nan")}, "top1 is nan"),
    ("no_status", {"top1": 1}, "not a svdbench results file (no status)"),
    ("list", [GOOD], "not a svdbench results file (no status)"),
    ("bad_status", {**GOOD, "status": "done"}, "status 'done' is not one of"),
    ("missing", {k: v for k, v in GOOD.items() if k != "macs"}, "missing keys: macs"),
    ("config_list", {**GOOD, "config": [1]}, "config is not a mapping"),
    ("history_dict", {**GOOD, "history": {}}, "history is not a list"),
    ("binary", b"\xff\xfe\x00", "not valid JSON"),
]


def test_hostile_results_files_are_skipped_with_a_warning(tmp_path, capsys):
    for name, content, _ in HOSTILE:
        (tmp_path / name).mkdir()
        path = tmp_path / name / RESULTS_FILE
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content if isinstance(content, str) else json.dumps(content))
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / RESULTS_FILE).write_text(json.dumps(GOOD))
    rep = report.build_report([tmp_path], tmp_path / "report")
    err = capsys.readouterr().err
    assert [r.method for r in rep.rows] == ["dense"] and len(rep.skipped) == len(HOSTILE)
    for name, _, fragment in HOSTILE:
        warning = next(ln for ln in err.splitlines() if f"/{name}/" in ln)
        assert warning.startswith("warning: skipping") and fragment in warning, warning
    assert all(r.mean("top1") <= 100 for r in rep.rows)
