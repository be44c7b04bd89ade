"""Round 10 of the hostile pass (area r10a, /tmp/hostile/r10a/findings.md): the files svdbench reads back
(F1: only a regular file of bounded size), a source's recorded relative paths (F2, F5: read as the run read
them), a completed record short of optional fields (F3), a deployed.json or results.json of the wrong types
or values (F4, F6)."""

import contextlib
import json
import os
import re
import signal
from pathlib import Path

import pytest

from svdbench.deployed import read_document
from svdbench.jsonfile import MAX_FILE_BYTES, UnreadableFile, read_json
from svdbench.report.outdir import check_out
from svdbench.results import read_results


class Blocked(Exception):
    """Raised by :func:`within` (not an OSError, which the code under test may catch)."""


@contextlib.contextmanager
def within(seconds: int):
    """The block must end within ``seconds``: a hang fails the test (SIGALRM) instead of blocking the suite."""

    def expired(signum, frame):
        raise Blocked(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _unusual(tmp_path: Path, name: str) -> dict[str, Path]:
    """A FIFO, a link to a device and a (sparse) file past the size bound, each at ``name`` in its own folder."""
    made = {}
    for kind in ("fifo", "device", "huge"):
        d = tmp_path / kind
        d.mkdir()
        p = d / name
        if kind == "fifo":
            os.mkfifo(p)
        elif kind == "device":
            p.symlink_to("/dev/null")  # a device (/dev/zero: the same check; a regression would eat memory)
        else:
            with open(p, "wb") as f:
                f.truncate(MAX_FILE_BYTES + 1)
        made[kind] = d
    return made


# ------------------------------------------------------- F1: only a regular file of bounded size is read


def test_read_json_refuses_a_fifo_a_device_and_a_runaway_file_without_reading_them(tmp_path):
    for d in _unusual(tmp_path, "x.json").values():
        with within(10), pytest.raises(UnreadableFile, match="not a regular file|larger than"):
            read_json(d / "x.json")
    (tmp_path / "ok.json").write_text('{"a": [1]}')
    assert read_json(tmp_path / "ok.json") == {"a": [1]}


def test_report_out_holding_a_fifo_or_device_summary_json_is_one_line_not_a_hang(tmp_path):
    """``report --out D`` where D/summary.json is a FIFO blocked for good; a link to /dev/zero read until memory
    ran out: now the usual "not a svdbench report's" refusal."""
    for d in _unusual(tmp_path, "summary.json").values():
        with within(10), pytest.raises(ValueError, match="summary.json that is not a svdbench report's"):
            check_out(d)


def test_results_and_deployed_json_that_are_no_regular_files_are_one_line(tmp_path):
    for d in _unusual(tmp_path, "results.json").values():
        with within(10), pytest.raises(ValueError, match="results.json: (not a regular file|larger than)"):
            read_results(d / "results.json")
    (tmp_path / "dep").mkdir()
    for d in _unusual(tmp_path / "dep", "deployed.json").values():
        with within(10), pytest.raises(ValueError, match="deployed.json cannot be read: (not a regular|larger)"):
            read_document(d)


def test_a_report_skips_a_results_json_past_the_size_bound(tmp_path, capsys):
    from svdbench.report.load import load_runs

    d = _unusual(tmp_path, "results.json")["huge"]
    runs, failed, skipped = load_runs([d])
    assert not runs and len(skipped) == 1 and "larger than" in skipped[0][1]


# ------------------------------------------------ F3: a completed record short of optional fields


POINT = {"status": "completed", "method": "svd", "model": "resnet8", "dataset": "synthetic", "top1": 29.7,
         "macs": 2916992, "macs_dense": 3060352, "params": 70602, "params_dense": 75290, "speedup": 1.049,
         "stage_top1": {"train": 10.9, "finetune": 29.7}, "point_of": "/x/a",
         "wall_time": {"train": 1.1, "compress": 0.04, "finetune": 0.15, "measure": 0.09, "point": 0.3}}  # fmt: skip


@pytest.mark.parametrize(
    "edit",
    [
        {},  # an operating point's wall_time: no total
        {"wall_time": {}},
        {"wall_time": None, "speedup": None, "stage_top1": {"train": "x"}, "latency": {"runs": 5}},
        {"top1": None, "macs": None, "params_dense": "many"},
    ],
)
def test_summary_of_a_record_short_of_optional_fields_is_no_error(edit):
    from svdbench.summary import summary

    text = summary({**POINT, **edit}, "/x/a/energy_0.1")
    assert text.startswith("svd on resnet8/synthetic") and text.endswith("results: /x/a/energy_0.1/results.json")
    if not edit:
        assert "1.05x fewer" in text and "fine-tuned 29.70" in text


@pytest.mark.slow
def test_rerunning_an_operating_points_config_into_its_directory_says_it_is_done(tmp_path, run_py, tiny):
    """``run.py method=svd method.energy=0.1 hydra.run.dir=A/energy_0.1`` after a sweep made that point in A: the
    point is a completed run of that config (it was a KeyError: 'total' traceback)."""
    a = tmp_path / "a"
    made = run_py(*tiny(), "method=svd", "method.energies=[0.1,0.2]", "save_model=false", f"hydra.run.dir={a}")
    assert made.returncode == 0, made.stderr[-2000:]
    again = run_py(*tiny(), "method=svd", "method.energy=0.1", "save_model=false", f"hydra.run.dir={a}/energy_0.1")
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr[-2000:]
    assert f"already holds a completed run of this config (an operating point of {a})" in again.stdout


# --------------------------- F4, F6: a source's deployed.json or results.json of the wrong types or values


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _first_conv(doc: dict) -> dict:
    return next(m for m in doc["modules"] if m["kind"] == "Conv2d")["args"]


@pytest.mark.parametrize(
    "change",
    [
        lambda d: _first_conv(d).update(in_channels=5),  # builds, but does not fit the layer before it
        lambda d: _first_conv(d).update(stride=[0, 0]),  # torch: "non-positive stride"
    ],
    ids=["in_channels", "stride"],
)
def test_deployed_records_that_build_but_do_not_run_are_one_line_naming_the_file(change, tmp_path):
    from test_scratch import SHAPE, pruned, resnet8, write_run

    from svdbench.methods import Scratch

    write_run(tmp_path / "src", pruned(), params=None)  # no count to compare: the records are built and run
    _edit(tmp_path / "src" / "deployed.json", change)
    method = Scratch.create(architecture_from=str(tmp_path / "src"))
    with pytest.raises(ValueError, match=r"^method.architecture_from: .*/src/deployed.json: the model its records "
                                         r"rebuild does not run on input \[1, 3, 16, 16\] \("):  # fmt: skip
        method.check(resnet8(), SHAPE)


@pytest.mark.slow
def test_a_scratch_run_of_such_records_exits_2_and_leaves_no_directory(tmp_path, run_py, tiny):
    from test_scratch import pruned, write_run

    write_run(tmp_path / "src", pruned(), params=None)  # no count to compare: the records are built and run
    _edit(tmp_path / "src" / "deployed.json", lambda d: _first_conv(d).update(in_channels=5))
    for plan in (["--plan"], []):
        proc = run_py(*tiny(), "method=scratch", f"method.architecture_from={tmp_path / 'src'}",
                      f"hydra.run.dir={tmp_path / 'run'}", *plan)  # fmt: skip
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
        assert "src/deployed.json: the model its records rebuild does not run" in proc.stdout + proc.stderr
        assert not (tmp_path / "run").exists()  # no half-made run directory


@pytest.mark.parametrize(
    "change, message",
    [
        ({"macs": "5"}, "macs must be a whole number > 0, got '5'"),
        ({"macs_dense": True}, "macs_dense must be a whole number > 0, got True"),
        ({"input_shape": "abc"}, r"input_shape must be a list of sizes > 0 \(\[1, C, H, W\]\), got 'abc'"),
        ({"input_shape": [1, 3, 16.5, 16]}, r"input_shape must be a list of sizes .*, got \[1, 3, 16.5, 16\]"),
        ({"config": 5}, "config must be a mapping, got 5"),
        ({"history": 5}, "history must be a list of epochs, got 5"),
        ({"init_from": 5}, "init_from must be a path, got 5"),
        ({"epochs_after_start": "4"}, "epochs_after_start must be a whole number >= 0, got '4'"),
    ],
)
def test_source_fields_of_the_wrong_type_are_one_line_naming_file_and_field(change, message, tmp_path):
    from test_scratch import pruned, write_run

    from svdbench.methods import Scratch

    write_run(tmp_path / "src", pruned(), **change)
    where = re.escape(f"method.architecture_from: {tmp_path / 'src' / 'results.json'}: ")
    with pytest.raises(ValueError, match=f"^{where}{message}$"):
        Scratch.create(architecture_from=str(tmp_path / "src"), budget_rule="scratch_b").starting_from(False)


def test_latency_names_a_missing_or_odd_input_shape(tmp_path):
    from svdbench.retime import _input_shape

    with pytest.raises(ValueError, match="^results.json has no input_shape$"):
        _input_shape({})
    with pytest.raises(ValueError, match=r"^results.json: input_shape must be a list of sizes \(\[1, C, H, W\]\)"):
        _input_shape({"input_shape": "abc"})
    assert _input_shape({"input_shape": [1, 3, 16, 16]}) == [3, 16, 16]


# ------------------- F2: a source's recorded relative init_from is read as that run read it, not from here


def _project(tmp_path: Path, launch: Path | None):
    """proj/outputs/dense (3 epochs, its dense.pt) and proj/outputs/l1 from it, recording init_from as an older
    svdbench did: relative (outputs/dense), with .hydra/hydra.yaml naming ``launch`` as its launch directory
    (none: no .hydra); and an unrelated other/outputs/dense of 6 epochs, the current directory."""
    import torch
    import yaml
    from test_scratch import pruned, resnet8, write_run

    from svdbench.checkpoint import save_dense_checkpoint

    proj, other = tmp_path / "proj", tmp_path / "other"
    write_run(proj / "outputs" / "dense", epochs_after_start=3)
    torch.manual_seed(1)
    digest = save_dense_checkpoint(resnet8(), proj / "outputs" / "dense")
    src = proj / "outputs" / "l1"
    write_run(src, pruned(), init_from="outputs/dense", dense_start=digest, epochs_after_start=2)
    if launch is not None:
        (src / ".hydra").mkdir()
        (src / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"cwd": str(launch)}}}))
    write_run(other / "outputs" / "dense", epochs_after_start=6)
    return src, other


def test_a_relative_init_from_is_read_against_the_sources_launch_directory(tmp_path, monkeypatch):
    from svdbench.methods import Scratch

    src, other = _project(tmp_path, launch=tmp_path / "proj")
    monkeypatch.chdir(other)  # it took other/outputs/dense's 6 epochs (8 in all), or refused from elsewhere
    assert Scratch.create(architecture_from=str(src)).starting_from(False).config.epochs == 3 + 2


def test_a_relative_init_from_without_a_recorded_launch_directory_is_refused(tmp_path, monkeypatch):
    from svdbench.methods import Scratch

    src, other = _project(tmp_path, launch=None)
    monkeypatch.chdir(other)
    with pytest.raises(ValueError, match="records its dense start as the relative path 'outputs/dense', and not the "
                                         "directory it was launched from"):  # fmt: skip
        Scratch.create(architecture_from=str(src)).starting_from(False)


def test_a_dense_start_replaced_since_is_refused(tmp_path, monkeypatch):
    """Another run made at the dense start's path since: its weights are not those the source started from."""
    import torch
    from test_scratch import resnet8

    from svdbench.checkpoint import save_dense_checkpoint
    from svdbench.methods import Scratch

    src, other = _project(tmp_path, launch=tmp_path / "proj")
    torch.manual_seed(2)
    save_dense_checkpoint(resnet8(), tmp_path / "proj" / "outputs" / "dense")
    with pytest.raises(ValueError, match=r"holds other weights than it started from \(another run made there since"):
        Scratch.create(architecture_from=str(src)).starting_from(False)


# ------------------------------- F2, F5: new records hold absolute paths; architecture_from from the launch dir


@pytest.mark.slow
def test_relative_init_from_and_architecture_from_with_job_chdir(tmp_path, run_py, tiny):
    """From tmp_path (the README's pattern, relative paths) with hydra.job.chdir=true: the l1 run records its
    init_from absolute; a scratch run of a relative architecture_from runs (it was refused inside the job,
    which resolved it against the job directory, after --plan had accepted it) and records it absolute."""

    def run(*args):
        proc = run_py(*tiny(), *args, "hydra.job.chdir=true", cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]

    run("method=dense", "hydra.run.dir=outputs/dense")
    run(
        "method=l1_filter", "method.speedup=2", "save_model=true", "init_from=outputs/dense", "hydra.run.dir=outputs/l1"
    )
    l1 = read_results(tmp_path / "outputs" / "l1" / "results.json")
    assert l1["init_from"] == str(tmp_path / "outputs" / "dense")
    run("method=scratch", "method.architecture_from=outputs/l1", "hydra.run.dir=outputs/scratch")
    res = read_results(tmp_path / "outputs" / "scratch" / "results.json")
    assert res["status"] == "completed" and res["config"]["method"]["epochs"] == 1 + 2
    assert res["config"]["method"]["architecture_from"] == str(tmp_path / "outputs" / "l1")
