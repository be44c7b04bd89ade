"""Round 10 of the hostile pass (area r10a, /tmp/hostile/r10a/findings.md): the files svdbench reads back
(F1: only a regular file of bounded size), a source's recorded relative paths (F2, F5: read as the run read
them), a completed record short of optional fields (F3), a deployed.json or results.json of the wrong types
or values (F4, F6)."""

import contextlib
import os
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
