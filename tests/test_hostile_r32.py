"""Round 32 of the hostile pass (the W&B records of r32b F1-F3 are in tests/test_tracked_runs.py).

- r32a F1 (traceback): a results.json whose ``operating_points`` is a number was a traceback in a report and in a
  rerun (a string or a mapping was iterated without a word); ``point_of`` of another type named the wrong run.
- r32a F2 (traceback after work): an Optuna sweep of three directions trained its first trial, then failed in
  Optuna's traceback with no report (svdbench returns at most top-1 and MACs).
- r32a F3: the Optuna sweeper's own default direction (an enum) was refused as if it were not minimize; it is
  refused for what it is: svdbench maximises top-1.
- r32b F4, F5: a stop with ``checkpoint=false`` named no checkpoint an earlier run left (it is resumed next); a
  Ctrl-C as the run ended said to resume it.
- r33b F1: a sweep job that failed on a full disk or a NaN loss printed no line.
- r33a F1: ``--plan`` or ``--cfg job`` read by ``| head`` ended in a BrokenPipeError traceback.
- r33a F2: ``--split`` by a key every run holds at its default said no run had it.
- r33a F3: a "noisy" speed-up whose rounds agree named them as the reason; the pooled figure lay outside them."""

import json
import logging
import re
import subprocess
import sys

import pytest
from conftest import ENV, ROOT, record, refused
from omegaconf import OmegaConf

from svdbench import app
from svdbench.report.load import load_runs
from svdbench.report.rows import split_methods
from svdbench.results import RESULTS_FILE, RunRecord
from svdbench.summary import speedups_text


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [("operating_points", 5, "operating_points is 5, not a list of points"),
     ("operating_points", "abc", "operating_points is 'abc', not a list of points"),
     ("operating_points", {"a": 1}, "operating_points is {'a': 1}, not a list of points"),
     ("operating_points", [1, 2], "operating_points is [1, 2], not a list of points"),
     ("point_of", 7, "point_of is 7, not a run directory"),
     ("point_of", ["a"], "point_of is ['a'], not a run directory")],
)  # fmt: skip
def test_a_points_field_of_another_type_is_named_and_the_file_skipped(tmp_path, field, value, said):
    run = record(tmp_path / "A", **{field: value})
    data = json.loads((run / RESULTS_FILE).read_text())
    with pytest.raises(ValueError, match=f"^{re.escape(said)}$"):
        RunRecord.from_dict(data)
    runs, _, skipped = load_runs([run])
    assert runs == [] and skipped == [(run / RESULTS_FILE, said)]


def test_a_rerun_into_a_run_whose_points_field_is_a_number_is_one_line(capsys, tmp_path, tiny):
    run = record(tmp_path / "A", operating_points=5)
    err = refused(capsys, *tiny(), f"hydra.run.dir={run}")
    assert err == (f"config error: {run / RESULTS_FILE} is not a svdbench result (operating_points is 5, not a list "
                   "of points): svdbench replaces only its own runs; use another run directory")  # fmt: skip


@pytest.mark.parametrize(
    ("direction", "shown"),
    [(["'hydra.sweeper.direction=[maximize,minimize,minimize]'"], "[maximize, minimize, minimize]"),
     (["hydra.sweeper.direction=minimize"], "minimize"),
     (["'hydra.sweeper.direction=[minimize,minimize]'"], "[minimize, minimize]"),
     ([], "minimize")],  # the Optuna sweeper's own default, an enum
)  # fmt: skip
def test_an_optuna_direction_svdbench_does_not_return_is_one_line_before_any_trial(capsys, tiny, direction, shown):
    args = [*tiny(), "hydra/sweeper=optuna", "hydra.sweeper.n_trials=1", *[d.strip("'") for d in direction],
            "seed=range(0,3)"]  # fmt: skip
    assert refused(capsys, "-m", *args) == (
        f"config error: hydra.sweeper.direction is {shown}: svdbench returns top-1, to maximize, and for a second "
        "objective the MACs, to minimize: give maximize or [maximize,minimize]"
    )


def test_a_stop_with_checkpoint_false_names_the_checkpoint_an_earlier_run_left(tmp_path):
    """r32b F4: it said the next run "starts the run again from its beginning", but an earlier leg's checkpoint.pt
    was resumed, this leg's work lost without a word."""
    assert app.not_saved(tmp_path) == ("no checkpoint was saved (checkpoint=false): the same command starts the run "
                                       "again from its beginning")  # fmt: skip
    (tmp_path / "checkpoint.pt").write_bytes(b"x")
    assert app.not_saved(tmp_path) == (
        f"no checkpoint was saved (checkpoint=false): the same command resumes from the one an earlier run left "
        f"({tmp_path / 'checkpoint.pt'}), without this run's work since; resume=false starts again"
    )


@pytest.mark.parametrize("completed", [True, False])
def test_a_ctrl_c_as_the_run_ends_says_its_results_are_complete(tmp_path, caplog, completed):
    """r32b F5: a Ctrl-C at completion said "rerun ... to resume from the last epoch" though results.json said
    completed."""
    record(tmp_path, status="completed" if completed else "running")
    with caplog.at_level(logging.WARNING, logger="svdbench"), pytest.raises(SystemExit) as stop:
        app._interrupted(KeyboardInterrupt(), OmegaConf.create({"checkpoint": True}), tmp_path, None)
    assert stop.value.code == 130
    done = f"interrupted (SIGINT) as the run ended: the results in {tmp_path} are complete"
    assert (done in caplog.text) == completed and ("to resume" in caplog.text) != completed


@pytest.mark.slow
def test_a_sweep_job_that_diverges_says_so_in_a_line_of_its_own(tmp_path, run_py, tiny):
    """r33b F1: a sweep job that failed on a full disk or a NaN loss printed no line; with the end-of-sweep report off,
    nothing said it had failed."""
    sweep = tmp_path / "s"
    proc = run_py("-m", *tiny(), "trainer.optimizer=sgd", "trainer.lr=1e30", "hydra.callbacks.report.enabled=false",
                  f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]  # the sweep goes on
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "job 0 failed: loss became" in ln]
    assert len(lines) == 1 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [["+debug=tiny", "--plan"], ["--cfg", "job"]])
def test_a_plan_read_by_head_ends_quietly(args):
    """r33a F1: ``--plan | head -1`` or ``--cfg job | head -1`` ended in a BrokenPipeError traceback, exit 1."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout.readline()  # what `head -1` takes, then it closes the pipe
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err and "BrokenPipe" not in err, err[-2000:]


def test_split_by_a_key_every_run_holds_at_its_default_says_so(tmp_path, capsys):
    """r33a F2: ``--split method.round_to`` said "no run's config has this key", though every SVD run records it (at its
    default, which the configurations leave out)."""
    for seed in (0, 1):
        record(tmp_path / f"s{seed}", seed=seed, config={"seed": seed, "method": {"energy": 0.1, "round_to": 1}})
    runs = load_runs([tmp_path])[0]
    split_methods(runs, ["method.round_to", "method.nosuchkey"])
    err = capsys.readouterr().err
    assert "warning: --split method.round_to: every run has it at its default (1); nothing is split by it" in err
    assert "warning: --split method.nosuchkey: no run's config has this key; nothing is split by it" in err


def test_a_noisy_flag_says_which_rule_it_is():
    """r33a F3: "1.04x (noisy: rounds 1.03-1.04x)" named rounds that agree; the pooled figure lay outside them."""
    pair = {"speedup": {"1": 1.0436, "64": 1.5}, "speedup_rounds": {"1": [1.027, 1.037, 1.03], "64": [1.0, 1.6, 1.3]},
            "noisy": ["1", "64"]}  # fmt: skip
    assert speedups_text(pair) == ("1.04x at batch 1 (noisy: outside its rounds' 1.03-1.04x, not to be trusted), "
                                   "1.50x at batch 64 (noisy: rounds 1.00-1.60x, not to be trusted)")  # fmt: skip
