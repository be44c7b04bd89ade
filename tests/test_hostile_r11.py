"""Round 11 of the hostile pass (area r11a: the command line and the files svdbench reads): a pending point's
results.json and a deployed model that are no regular files (F1, F2: one line, never a hang), a recorded
relative init_from read from another directory (F3), the end-of-sweep report directory among the sweep's own
(F4), ``--x macs_paper`` on models it cannot count and on invalid records (F5, F7), and ``model.kwargs`` keys
that svdbench sets or a missing timm checkpoint (F6)."""

import dataclasses
import os
import re
from pathlib import Path

import pytest
from test_hostile_r10 import _unusual, within

from svdbench.axes import MACS_PAPER
from svdbench.checkpoint import load_checkpoint, resume_key
from svdbench.dense_start import read_dense_state
from svdbench.deployed import load_deployed
from svdbench.errors import CheckpointError, InputError
from svdbench.jsonfile import UnreadableFile, open_regular
from svdbench.report.load import LoadedRun, pending_points
from svdbench.report.rows import on_axis
from svdbench.results import RunRecord

# -------------------------------------------- F1, F2: files read back are regular files, or one line, never a hang


def test_open_regular_refuses_a_fifo_and_a_device_at_once(tmp_path):
    for kind, d in _unusual(tmp_path, "x.pt").items():
        if kind == "huge":  # a large regular file is what a model may be: opened
            with open_regular(d / "x.pt") as f:
                assert f.read(4) == b"\0\0\0\0"
            continue
        with within(10), pytest.raises(UnreadableFile, match="^not a regular file$"):
            open_regular(d / "x.pt")


def _pending_record() -> RunRecord:
    points = [{"label": "energy_0.1", "status": "pending"}, {"label": "energy_0.2", "status": "completed"}]
    return RunRecord(
        method="svd", model="m", dataset="d", seed=0, config={}, status="completed", operating_points=points
    )


def test_a_pending_points_results_json_that_is_a_fifo_or_device_counts_as_not_made(tmp_path):
    """report/load.pending_points read a point's results.json unbounded: a FIFO there hung the report."""
    for d in _unusual(tmp_path, "results.json").values():
        (d / "energy_0.1").mkdir()
        os.replace(d / "results.json", d / "energy_0.1" / "results.json")
        with within(10):
            assert pending_points(_pending_record(), d) == ["energy_0.1"]


def test_a_made_pending_point_is_not_missing(tmp_path):
    (tmp_path / "energy_0.1").mkdir()
    (tmp_path / "energy_0.1" / "results.json").write_text(f'{{"status": "completed", "point_of": "{tmp_path}"}}')
    assert pending_points(_pending_record(), tmp_path) == []


def test_a_run_of_its_own_put_in_a_pending_points_directory_is_not_that_point(tmp_path):
    """A dense run moved into it was counted as the point (r16b F2), though the rerun could never make it."""
    (tmp_path / "energy_0.1").mkdir()
    (tmp_path / "energy_0.1" / "results.json").write_text('{"status": "completed"}')
    assert pending_points(_pending_record(), tmp_path) == ["energy_0.1"]


def test_checkpoints_dense_starts_and_deployed_models_that_are_no_regular_files_are_one_line(tmp_path, monkeypatch):
    """torch.load opened them unchecked: a FIFO ``deployed.pt`` hung ``svdbench latency``, a link to /dev/zero
    was called "Python objects besides tensors"."""
    import svdbench.deployed as deployed

    monkeypatch.setattr(deployed, "read_document", lambda run_dir: {})
    for kind, d in _unusual(tmp_path, "f.pt").items():
        if kind == "huge":
            continue
        for name in ("checkpoint.pt", "dense.pt", "deployed.pt"):
            os.link(d / "f.pt", d / name) if kind == "fifo" else (d / name).symlink_to("/dev/zero")
        (d / "deployed.json").write_text("{}")
        with within(10):
            with pytest.raises(
                CheckpointError, match=r"checkpoint .*checkpoint.pt is corrupt or truncated \(not a regular"
            ):
                load_checkpoint(d / "checkpoint.pt")
            with pytest.raises(InputError, match=r"init_from: cannot read .*dense.pt: not a regular file$"):
                read_dense_state(d / "dense.pt")
            with pytest.raises(ValueError, match=r"deployed.pt: not a regular file$"):
                load_deployed(d)


# ------------------------------------- F3: a recorded relative init_from is the run's, not this directory's


def test_resume_key_takes_the_runs_own_resolved_start_for_a_relative_recorded_one(tmp_path, monkeypatch):
    """An older record's ``config.init_from: outputs/dense`` was resolved from this process's directory: the
    same run from another directory was "another config", its message naming a path that does not exist."""
    (tmp_path / "proj" / "outputs" / "dense").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")
    absolute = str(tmp_path / "proj" / "outputs" / "dense")
    here = resume_key({"init_from": absolute}, "l1_filter")
    assert resume_key({"init_from": "outputs/dense"}, "l1_filter", absolute) == here
    assert resume_key({"init_from": "outputs/dense"}, "l1_filter") != here  # with nothing better: from here


def test_a_plan_records_init_from_absolute(tmp_path, tiny_cfg):
    from svdbench.methods import METHODS
    from svdbench.plan import make_plan

    cfg = tiny_cfg(init_from="outputs/dense")
    method = METHODS.get("l1_filter").create(speedup=2.0)
    plan = make_plan(cfg, method, base=tmp_path)
    assert plan.config["init_from"] == str(tmp_path / "outputs" / "dense") == str(plan.init_from)


@pytest.mark.slow
def test_the_same_run_from_another_directory_is_the_same_run(tmp_path, run_py, tiny):
    proj, other = tmp_path / "proj", tmp_path / "other"
    proj.mkdir(), other.mkdir()
    done = run_py(*tiny(), "method=dense", "hydra.run.dir=outputs/dense", cwd=proj)
    assert done.returncode == 0, done.stderr[-2000:]
    args = (*tiny(), "method=l1_filter", "method.speedup=2", "hydra.run.dir=" + str(proj / "outputs" / "l1"))
    done = run_py(*args, "init_from=outputs/dense", cwd=proj)
    assert done.returncode == 0, done.stderr[-2000:]
    again = run_py(*args, f"init_from={proj / 'outputs' / 'dense'}", cwd=other)
    assert again.returncode == 0 and "another config" not in again.stderr, again.stderr[-2000:]


# ------------------------------------------------ F4: the end-of-sweep report apart from the sweep's directories


@pytest.mark.parametrize(
    "args, message",
    [
        (["hydra.sweep.subdir=report"], r"report is job 0's directory .*/report: the jobs write there"),
        (["+hydra.callbacks.report.out=SWEEP"], r"SWEEP is the sweep directory SWEEP: the jobs write there"),
        (["+hydra.callbacks.report.out=SWEEP/.."], r" holds the sweep directory SWEEP: the jobs write there"),
        (["+hydra.callbacks.report.out=SWEEP/0/rep"], r"SWEEP/0/rep lies inside job 0's directory SWEEP/0: "),
    ],
)
def test_an_end_of_sweep_report_among_the_sweeps_own_directories_is_refused_before_any_job(
    args, message, tmp_path, run_py, tiny
):
    """It was checked only for being free then: the jobs filled it, and the report failed after every job had
    trained, with exit code 0 and a "make it with" command that failed the same way."""
    sweep = tmp_path / "sw"
    args = [a.replace("SWEEP", str(sweep)) for a in args]
    proc = run_py("-m", *tiny(), "seed=1", f"hydra.sweep.dir={sweep}", *args, "--plan", timeout=120)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("config error: the sweep's report (hydra.callbacks.report)")
    assert re.search(message.replace("SWEEP", str(sweep)), lines[0]), lines[0]
    assert not sweep.exists()


# ---------------------------------------- F5, F7: --x macs_paper only where it counts, and says why a run is out


def _loaded(tmp_path: Path, name: str, macs_paper, linear: bool = False, macs_dense: int = 1000) -> LoadedRun:
    rec = RunRecord(
        method="svd", model="m", dataset="d", seed=0, config={}, status="completed", top1=50.0, macs=500,
        macs_dense=macs_dense, params=1, params_dense=1, macs_paper=macs_paper,
    )  # fmt: skip
    return LoadedRun(tmp_path / name / "results.json", rec, {"method.decompose_linear": linear})


@pytest.mark.parametrize(
    "record, reason",
    [
        (None, r"no MAC count in the authors' convention \(a run made before svdbench recorded macs_paper\)"),
        ({"macs": -5, "dense": 10}, r"macs_paper.macs is -5, not a whole number >= 1"),
        ({"macs": 10}, r"macs_paper.dense is '<absent>', not a whole number >= 1"),
        ({"macs": True, "dense": "1"}, r"macs_paper.macs is True, not a whole number >= 1"),
        ({"macs": 1e308, "dense": 1e308}, r"macs_paper.macs is 1e\+308, not a whole number >= 1"),
        ({"macs": 2.5, "dense": 900}, r"macs_paper.macs is 2.5, not a whole number >= 1"),
        ({"macs": 5, "dense": 49}, r"counts convolutions only, 4.9% of this model's MACs"),
    ],
)
def test_a_run_off_the_authors_axis_is_left_out_with_its_own_reason(record, reason, tmp_path, capsys):
    """An invalid record was explained as "made before svdbench recorded macs_paper"; a ViT (convolutions: its
    patch embedding only) was put at 1.00x for every point, without a word."""
    good, bad = _loaded(tmp_path, "good", {"macs": 400, "dense": 900}), _loaded(tmp_path, "bad", record)
    skipped: list = []
    assert on_axis([good, bad], MACS_PAPER, skipped) == [good]
    assert len(skipped) == 1 and re.search(reason, skipped[0][1])
    err = capsys.readouterr().err
    assert "1 of 2 runs are left out: " in err and str(bad.path) in err


def test_runs_decomposing_linear_layers_are_kept_with_a_warning(tmp_path, capsys):
    runs = [
        _loaded(tmp_path, "a", {"macs": 400, "dense": 900}, linear=True),
        _loaded(tmp_path, "b", {"macs": 1, "dense": 900}),
    ]
    assert on_axis(runs, MACS_PAPER, []) == runs
    err = capsys.readouterr().err
    assert "--x macs_paper counts convolutions only: 1 of 2 runs decompose Linear layers too" in err
    on_axis([dataclasses.replace(runs[1])], MACS_PAPER, [])
    assert capsys.readouterr().err == ""


# ------------------------------------------------------- F6: model.kwargs that svdbench sets; a missing checkpoint


@pytest.mark.parametrize("key", ["num_classes", "in_channels"])
@pytest.mark.parametrize("family, target", [("timm", None), ("cifar_resnet", "torchvision.models.resnet18")])
def test_model_kwargs_svdbench_sets_are_one_line_naming_the_key(key, family, target):
    from svdbench.config import ModelConfig

    with pytest.raises(InputError, match=rf"^model.kwargs.{key}: svdbench sets it \(the classes and image channels"):
        ModelConfig(family=family, _target_=target, kwargs={key: 3})


def test_a_timm_checkpoint_path_that_is_no_file_is_one_line(tmp_path):
    from svdbench.models import check_checkpoint_path

    with pytest.raises(InputError, match=r"^model.kwargs.checkpoint_path: cannot read .*/none \(\[Errno 2\]"):
        check_checkpoint_path(str(tmp_path / "none"))
    os.mkfifo(tmp_path / "fifo")
    with within(10), pytest.raises(InputError, match=r"^model.kwargs.checkpoint_path: .*/fifo is not a regular file$"):
        check_checkpoint_path(str(tmp_path / "fifo"))
    (tmp_path / "w.pth").write_bytes(b"x")
    check_checkpoint_path(str(tmp_path / "w.pth"))


def test_data_files_that_are_no_regular_files_are_one_line(tmp_path):
    """The same rule for the data: an IDX file (plain or .gz) or a CIFAR batch that is a FIFO or a device."""
    from svdbench.data.files import _read_idx, read_cifar_batch
    from svdbench.errors import DatasetError

    for kind, d in _unusual(tmp_path, "f").items():
        if kind == "huge":
            continue
        for name in ("train-images-idx3-ubyte", "train-images-idx3-ubyte.gz", "data_batch_1"):
            os.link(d / "f", d / name) if kind == "fifo" else (d / name).symlink_to("/dev/zero")
            with within(10), pytest.raises(DatasetError, match=rf"^cannot read .*/{name}: not a regular file$"):
                _read_idx(d / name) if "idx" in name else read_cifar_batch(d / name, b"labels")
