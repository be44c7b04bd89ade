"""Reliability, third round (a hostile pass): every job's directory is checked before Hydra writes, for
a single run and for every job of a sweep (links, files of the wrong kind, foreign files, a running
holder, a starting point inside it, two jobs in one directory); a run that replaces another removes
exactly what that run recorded writing. Each case here wrote, deleted or hung before its fix."""

import json
import os
import shutil

import pytest
import torch
from conftest import fashion_mnist_files, refused

from svdbench import cli, preflight
from svdbench.app import resume_hint
from svdbench.command_line import CommandLine
from svdbench.errors import InputError
from svdbench.methods import Dense, SVDTraining
from svdbench.pipeline import run_experiment
from svdbench.results import find_results, read_results
from svdbench.rundir import RunLock, clear_run


@pytest.fixture(scope="module")
def points_run(tmp_path_factory, tiny_cfg):
    """A finished SVD-training run with one operating point (energy 0.1) and its deployed models."""
    run = tmp_path_factory.mktemp("points") / "run"
    run_experiment(tiny_cfg(save_model=True), SVDTraining.create(energy=0.05, energies=[0.1]), run)
    return run


@pytest.fixture(scope="module")
def dense_run(tmp_path_factory, tiny_cfg):
    run = tmp_path_factory.mktemp("dense") / "run"
    run_experiment(tiny_cfg(save_model=True), Dense(), run)
    return run


def files(d) -> dict:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ sweeps: every job its own directory


def test_a_presets_axes_in_one_subdir_are_refused_before_the_sweep(tmp_path, capsys, tiny):
    err = refused(capsys, "-m", "+sweep=svd_energies", *tiny(), "method.energies=[0.1]",
                  f"hydra.sweep.dir={tmp_path}/sw", "hydra.sweep.subdir=x")  # fmt: skip
    assert "hydra.sweep.subdir=x puts job 0 (" in err and "and job 1 (" in err and "in one directory" in err
    assert not (tmp_path / "sw").exists()


def test_a_subdir_naming_a_key_the_sweep_does_not_vary_is_refused(tmp_path, capsys, tiny):
    base = ["-m", *tiny(), "method=dense", f"hydra.sweep.dir={tmp_path}/sw"]
    err = refused(capsys, *base, "trainer.lr=0.002,0.004", "hydra.sweep.subdir=seed${seed}")
    assert "puts job 0 (trainer.lr=0.002) and job 1 (trainer.lr=0.004) in one directory" in err
    preflight.preflight(["run.py", *base, "seed=0,1", "hydra.sweep.subdir=seed${seed}"])  # distinct: accepted


def test_every_job_of_a_small_grid_is_checked_before_the_sweep(tmp_path, capsys, tiny):
    err = refused(capsys, "-m", *tiny(), "method=dense", "trainer.epochs=1,3", "trainer.budget=3,2",
                  f"hydra.sweep.dir={tmp_path}/sw")  # fmt: skip
    assert "trainer.budget=2 is less than the 3 training epochs" in err  # job 3 of 4: never a cross-axis job


def test_a_sweep_job_directory_that_is_a_link_is_refused(tmp_path, capsys, tiny):
    (tmp_path / "sw").mkdir()
    (tmp_path / "victim").mkdir()
    (tmp_path / "sw" / "1").symlink_to(tmp_path / "victim")
    err = refused(capsys, "-m", *tiny(), "method=dense", "seed=0,1", f"hydra.sweep.dir={tmp_path}/sw")
    assert err.startswith("config error: job 1 (seed=1") and "is a link" in err
    assert list((tmp_path / "victim").iterdir()) == []


# ------------------------------------------------------------------ a run's directory


@pytest.mark.parametrize("where", ["run", "energy_0.1"])
def test_a_run_or_point_directory_that_is_a_link_is_refused(tmp_path, capsys, tiny, where):
    (tmp_path / "victim").mkdir()
    run = tmp_path / "run"
    if where == "run":
        run.symlink_to(tmp_path / "victim")
    else:
        run.mkdir()
        (run / where).symlink_to(tmp_path / "victim")
    err = refused(capsys, *tiny(), "method=svd", "method.energies=[0.1]", f"hydra.run.dir={run}")
    assert "is a link" in err and list((tmp_path / "victim").iterdir()) == []


@pytest.mark.parametrize(
    "overrides, name",
    [(["hydra.job.name=foo"], "foo.log"), (["hydra.output_subdir=meta"], "meta"), ([], "run.log"), ([], ".hydra")],
)
def test_hydras_own_log_and_folder_are_checked_under_their_configured_names(tmp_path, capsys, tiny, overrides, name):
    victim = tmp_path / "precious.txt"
    victim.write_text("precious")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / name).symlink_to(victim)
    err = refused(capsys, *tiny(), "method=dense", *overrides, f"hydra.run.dir={tmp_path / 'run'}")
    assert f"{name} is a link" in err and victim.read_text() == "precious"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: (d / ".hydra").write_text("x"), ".hydra is not a directory"),
        (lambda d: (d / "run.log").mkdir(), "run.log is not a regular file"),
        (lambda d: (d / "results.json").mkdir(), "results.json is not a regular file"),
        (lambda d: (d / "energy_0.1").write_text("notes"), "energy_0.1, the directory of an operating point, is not"),
        (lambda d: os.mkfifo(d / "checkpoint.pt"), "checkpoint.pt is not a regular file"),
    ],
)  # fmt: skip
def test_a_name_svdbench_or_hydra_writes_holding_the_wrong_kind_is_refused(tmp_path, capsys, tiny, make, message):
    run = tmp_path / "run"
    run.mkdir()
    make(run)
    err = refused(capsys, *tiny(), "method=svd", "method.energies=[0.1]", f"hydra.run.dir={run}")
    assert message in err


def test_foreign_files_in_a_point_directory_are_refused(tmp_path, capsys, tiny):
    point = tmp_path / "run" / "energy_0.1"
    point.mkdir(parents=True)
    (point / "deployed.json").write_text('{"mine": 1}')
    err = refused(capsys, *tiny(), "method=svd", "method.energies=[0.1]", f"hydra.run.dir={tmp_path / 'run'}")
    assert "energy_0.1 holds deployed.json but no results.json" in err


def test_a_foreign_file_beside_a_valid_checkpoint_is_refused(tmp_path, capsys, tiny, tiny_cfg):
    run = tmp_path / "run"
    run_experiment(tiny_cfg(keep_checkpoints=True, save_model=False), SVDTraining.create(energy=0.05), run)
    (run / "results.json").unlink()  # as a killed run leaves it: its checkpoints, no result
    (run / "deployed.pt").write_text("my deployed model")
    err = refused(capsys, *tiny(), "method=svd", f"hydra.run.dir={run}")
    assert "holds deployed.pt but no results.json" in err
    assert (run / "deployed.pt").read_text() == "my deployed model"


def test_a_held_run_directory_is_refused_before_hydra_writes(tmp_path, capsys, tiny):
    run = tmp_path / "run"
    run.mkdir()
    with RunLock(run):
        err = refused(capsys, *tiny(), "method=dense", "resume=false", f"hydra.run.dir={run}")
    assert f"is in use by another svdbench run (pid {os.getpid()})" in err
    assert list(run.iterdir()) == []  # no .hydra/, no log


def test_a_time_stamped_directory_is_pinned_to_the_one_checked_and_held(tmp_path, capsys, tiny):
    """${now:...} in hydra.run.dir / hydra.sweep.dir: Hydra would read the clock again; preflight pins the
    directory it checked (as the override after the others) and holds it, so a second command started in the
    same minute is refused instead of sharing it."""
    stamp = "${now:%Y-%m-%d}"
    try:
        argv = preflight.preflight(["run.py", *tiny(), f"hydra.run.dir={tmp_path}/r/{stamp} x", "--config-name",
                                    "config"])  # fmt: skip
        (where,) = [p for p in (tmp_path / "r").iterdir()]
        assert argv[-3:] == [f"hydra.run.dir='{where}'", "--config-name", "config"]
        with pytest.raises(InputError, match="is in use by another svdbench run"):
            RunLock.check_free(where)  # held from preflight on
        argv = preflight.preflight(["run.py", "-m", *tiny(), "seed=0,1", f"hydra.sweep.dir={tmp_path}/s/{stamp}"])
        (sweep,) = [p for p in (tmp_path / "s").iterdir()]
        assert argv[-1] == f"hydra.sweep.dir={sweep}" and sorted(p.name for p in sweep.iterdir()) == ["0", "1"]
    finally:
        RunLock.release_held()
    err = refused(capsys, *tiny(), f"hydra.run.dir={tmp_path}/r/{stamp} x")  # the same minute: exists already
    assert err.startswith(f"config error: hydra.run.dir: the time-stamped directory {where} exists already (a "
                          "command started in the same second, or minute or day by its pattern)")  # fmt: skip
    assert err.endswith(f"to resume or replace what is there, give hydra.run.dir={where}; else a finer pattern "
                        "(%f: microseconds)")  # fmt: skip


@pytest.mark.slow
def test_two_commands_in_one_minute_of_a_minute_stamp_do_not_share_a_directory(tmp_path, start_run_py, tiny):
    procs = [start_run_py(*tiny(), f"method={m}", f"hydra.run.dir={tmp_path}/" + "${now:%Y-%m-%d_%H-%M}")
             for m in ("svd", "trp")]  # fmt: skip
    codes = sorted(p.wait(timeout=300) for p in procs)
    if len(list(tmp_path.iterdir())) == 2:  # the minute turned between the two starts: two directories
        return
    (run,) = list(tmp_path.iterdir())
    done = json.loads((run / "results.json").read_text())["method"]
    assert codes == [0, 2] and f"method={done}" in (run / ".hydra" / "overrides.yaml").read_text()
    assert "in use" not in (run / "run.log").read_text() and "exists already" not in (run / "run.log").read_text()


def test_a_starting_point_inside_the_run_directory_is_refused_and_kept(tmp_path, capsys, tiny, dense_run):
    run = tmp_path / "run"
    shutil.copytree(dense_run, run)
    before = files(run)
    err = refused(capsys, *tiny(), "method=dense", f"init_from={run}", "resume=false", f"hydra.run.dir={run}")
    assert f"init_from={run} lies in this run's own directory" in err and files(run) == before


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["init_from=NOWHERE"], "init_from: no dense checkpoint at"),
        (["model=timm", "model.name='resnet1*'"], "model.name=resnet1* is not a timm model"),
        (["model.name=resnet9"], "model.name=resnet9 is not a cifar_resnet model"),
        *([] if torch.cuda.is_available() else [(["trainer.device=cuda"], "trainer.device=cuda but no CUDA")]),
        (["dataset=fashion_mnist", "dataset.root=NOWHERE", "dataset.download=false"],
         "Fashion-MNIST files not found in NOWHERE"),
        (["dataset=cifar10", "dataset.root=NOWHERE", "dataset.download=false"],
         "cifar10 not found: expected NOWHERE/cifar-10-batches-py"),
        (["dataset=imagenet", "dataset.root=NOWHERE"], "imagenet needs dataset.root with train/ and val/"),
    ],
)  # fmt: skip
def test_inputs_found_later_before_are_refused_before_hydra_writes(tmp_path, capsys, tiny, overrides, message):
    overrides = [o.replace("NOWHERE", str(tmp_path / "nowhere")) for o in overrides]
    err = refused(capsys, *tiny(), "method=dense", *overrides, f"hydra.run.dir={tmp_path / 'run'}")
    assert message.replace("NOWHERE", str(tmp_path / "nowhere")) in err and not (tmp_path / "run").exists()


def test_a_relative_data_root_is_the_launch_directorys_also_when_the_job_changes_directory(tmp_path, run_py, tiny):
    fashion_mnist_files(tmp_path / "fm", n_train=40, n_test=20)
    data = ["dataset=fashion_mnist", "dataset.root=fm", "dataset.download=false", "dataset.val_size=0"]
    proc = run_py(*tiny("dataset"), *data, "method=dense", "hydra.job.chdir=true", "hydra.run.dir=run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = read_results(tmp_path / "run" / "results.json")
    assert record["config"]["dataset"]["root"] == str(tmp_path / "fm") and record["samples"]["train"] == 40


def test_a_foreign_results_json_is_refused_with_resume_false_before_work(tmp_path, capsys, tiny):
    (tmp_path / "results.json").write_text('{"accuracy": 0.9}')
    err = refused(capsys, *tiny(), "method=dense", "resume=false", f"hydra.run.dir={tmp_path}")
    assert "is not a svdbench result" in err and sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_a_missing_config_dir_is_one_line(tmp_path, capsys, tiny):
    err = refused(capsys, "--config-dir", str(tmp_path / "nope"), *tiny(), f"hydra.run.dir={tmp_path / 'run'}")
    assert err == f"config error: --config-dir {tmp_path / 'nope'}: no such directory"


# ------------------------------------------------------------------ replacing a run: exactly what it wrote


def test_resume_false_in_a_copied_directory_removes_the_copied_points(tmp_path, tiny_cfg, points_run):
    run = tmp_path / "moved"
    shutil.copytree(points_run, run)  # its records name the old location
    run_experiment(tiny_cfg(resume=False), SVDTraining.create(energy=0.05, energies=[0.2]), run)
    assert [p.parent.name for p in find_results([run])] == ["energy_0.2", "moved"]


def test_resume_false_keeps_what_the_previous_run_did_not_write(tmp_path, points_run):
    run = tmp_path / "run"
    shutil.copytree(points_run, run)
    (run / "model.pt").write_text("mine")  # the previous run saved deployed.pt/json, never a model.pt
    (run / "dense.pt").write_text("mine")  # nor a dense.pt (factorised training)
    shutil.copytree(run / "energy_0.1", run / "energy_0.1_keep")  # the user's copy of a point
    removed = {p.relative_to(run).as_posix() for p in clear_run(run)}
    assert removed == {"results.json", "deployed.pt", "deployed.json", *(f"energy_0.1/{n}" for n in
                       ("results.json", "deployed.pt", "deployed.json"))}  # fmt: skip
    assert (run / "model.pt").read_text() == "mine" and (run / "dense.pt").read_text() == "mine"
    assert (run / "energy_0.1_keep" / "results.json").is_file() and not (run / "energy_0.1").exists()


def test_a_point_held_by_latency_is_not_cleared_under_it(tmp_path, points_run):
    run = tmp_path / "run"
    shutil.copytree(points_run, run)
    before = files(run)
    with RunLock(run / "energy_0.1"), pytest.raises(InputError, match="energy_0.1 is in use"):
        clear_run(run)
    assert {k: v for k, v in files(run).items() if "lock" not in k} == {
        k: v for k, v in before.items() if "lock" not in k
    }


def test_the_record_names_what_the_run_wrote(points_run, dense_run):
    assert read_results(points_run / "results.json")["files"] == ["deployed.pt", "deployed.json"]
    assert read_results(points_run / "energy_0.1" / "results.json")["files"] == ["deployed.pt", "deployed.json"]
    assert read_results(dense_run / "results.json")["files"] == ["dense.pt", "deployed.pt", "deployed.json"]


# ------------------------------------------------------------------ reading what is there


def test_a_fifo_named_results_json_is_skipped_not_opened(tmp_path, capsys, points_run):
    shutil.copytree(points_run, tmp_path / "a")
    (tmp_path / "b").mkdir()
    os.mkfifo(tmp_path / "b" / "results.json")
    assert tmp_path / "b" / "results.json" not in find_results([tmp_path])
    assert "b/results.json: not a regular file, skipped" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--threads", "0"], ["--max-seconds", "nan"], ["--batch-sizes", "0"]])
def test_latency_options_are_checked_before_any_run_is_loaded(tmp_path, capsys, option):
    with pytest.raises(SystemExit) as stop:
        cli.main(["latency", str(tmp_path), *option])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and f"argument {option[0]}: invalid" in err and f"value: '{option[1]}'" in err


def test_a_file_torch_refuses_is_named_without_torchs_unsafe_advice(tmp_path, tiny_cfg, points_run):
    torch.save({"w": torch.nn.Linear(2, 2)}, tmp_path / "evil.pt")  # a pickled module, not tensors only
    for start, why in [(tmp_path / "evil.pt", "it holds Python objects besides tensors"),
                       (points_run / "results.json", "not a torch file")]:  # fmt: skip
        with pytest.raises(InputError) as err:
            run_experiment(tiny_cfg(init_from=str(start)), Dense(), tmp_path / "r")
        assert f"cannot read {start}: {why}" in str(err.value) and "weights_only=False" not in str(err.value)


def test_under_torchrun_only_rank_0_checks_the_lock(tmp_path, capsys, tiny, monkeypatch):
    """Rank 0 takes the run lock while the other ranks are still in their preflight: a rank other than 0
    must not take rank 0's lock for another run's (seen in a loaded CI run)."""
    run = tmp_path / "run"
    run.mkdir()
    argv = ["run.py", *tiny(), "method=dense", "resume=false", f"hydra.run.dir={run}"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    with RunLock(run):
        monkeypatch.setenv("RANK", "1")
        preflight.preflight(argv)  # no SystemExit: rank 1 goes on to join rank 0
        monkeypatch.setenv("RANK", "0")
        with pytest.raises(SystemExit):
            preflight.preflight(argv)
    assert "is in use by another svdbench run" in capsys.readouterr().err


def test_resume_false_removes_the_points_of_a_run_killed_before_it_listed_them(tmp_path, tiny_cfg, points_run):
    run = tmp_path / "run"
    shutil.copytree(points_run, run)
    record = read_results(run / "results.json")
    record["operating_points"] = None  # as a run killed while making its points leaves it
    (run / "results.json").write_text(json.dumps(record))
    point = read_results(run / "energy_0.1" / "results.json")
    point["point_of"] = str(run)  # made from this directory
    (run / "energy_0.1" / "results.json").write_text(json.dumps(point))
    run_experiment(tiny_cfg(resume=False), Dense(), run)
    assert [p.parent.name for p in find_results([run])] == ["run"] and not (run / "energy_0.1").exists()


def test_a_point_directory_holding_a_run_of_its_own_is_refused(tmp_path, capsys, tiny, dense_run):
    run = tmp_path / "run"
    shutil.copytree(dense_run, run / "energy_0.3")  # the user's dense run, where the point would go
    before = files(run)
    err = refused(capsys, *tiny(), "method=svd", "method.energies=[0.3]", f"hydra.run.dir={run}")
    assert "energy_0.3, the directory of an operating point, holds a run of its own" in err and files(run) == before


def test_resume_false_is_refused_before_hydra_writes_while_a_point_is_in_use(tmp_path, capsys, tiny, points_run):
    run = tmp_path / "run"
    shutil.copytree(points_run, run)
    before = files(run)
    with RunLock(run / "energy_0.1"):
        err = refused(capsys, *tiny(), "method=dense", "resume=false", f"hydra.run.dir={run}")
    assert "energy_0.1 is in use by another svdbench run" in err
    assert {k: v for k, v in files(run).items() if "lock" not in k} == before


def test_an_edited_record_deletes_no_file_outside_svdbenchs_names(tmp_path, points_run):
    run = tmp_path / "run"
    shutil.copytree(points_run, run)
    (run / "notes.txt").write_text("mine")
    record = read_results(run / "results.json")
    record["files"] = ["notes.txt", "deployed.pt"]
    (run / "results.json").write_text(json.dumps(record))
    removed = {p.name for p in clear_run(run)}
    assert "notes.txt" not in removed and (run / "notes.txt").read_text() == "mine" and "deployed.pt" in removed


def test_a_directory_that_cannot_be_locked_says_so_and_latency_fails(tmp_path, points_run, monkeypatch, capsys):
    run = tmp_path / "run"
    shutil.copytree(points_run, run)
    real = os.open

    def denied(path, flags, *args):
        if str(path).endswith(".svdbench.lock"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, flags, *args)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(InputError, match=rf"^{run} cannot be written \(Permission denied\)"):
        RunLock(run).__enter__()
    assert cli.main(["latency", str(run), "--max-seconds", "0.05", "--batch-sizes", "1"]) == 1
    assert "in use by another" not in capsys.readouterr().out


def test_a_sweep_preset_without_dash_m_is_checked_as_the_sweep_it_is(tmp_path, capsys, tiny):
    """The sweep presets set hydra.mode=MULTIRUN: the command is a sweep and is checked whole before it starts."""
    err = refused(capsys, "+sweep=dense", *tiny(), f"hydra.sweep.dir={tmp_path}/sw", "hydra.sweep.subdir=same")
    assert "hydra.sweep.subdir=same puts job 0 (seed=0) and job 1 (seed=1) in one directory" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["+sweep=optuna_pareto", "method.energy=interval(0.5,5)"], "method.energy must be in [0, 1), got 4.99"),
        (["+sweep=optuna_pareto", "method.energy=interval(0.1,0.01)"], "its low end must be below its high end"),
        (["seed=range(0,0)"], "seed=range(0,0) sweeps no value"),
        (["+sweep=optuna_pareto", "hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials must be a count >= 1, got 0"),
        (["+sweep=optuna_pareto", "hydra.sweeper.n_jobs=0"], "hydra.sweeper.n_jobs must be a count >= 1, got 0"),
        (["+sweep=optuna_pareto", "hydra.sweeper.direction=sideways"], "direction must be minimize or maximize"),
        (["seed=0,1", "hydra.sweeper.max_batch_size=0"], "hydra.sweeper.max_batch_size must be a count >= 1, got 0"),
        (["seed=0,1", "hydra/launcher=local_parallel", "hydra.launcher.n_jobs=0"], "or -1 (every core), got 0"),
    ],
)
def test_a_sweeps_settings_and_both_ends_of_a_range_are_checked_before_it_starts(tmp_path, capsys, tiny, args, message):
    err = refused(capsys, "-m", *tiny(), *args, f"hydra.sweep.dir={tmp_path / 'sw'}")
    assert message in err and not (tmp_path / "sw").exists()


def test_a_float_interval_up_to_the_end_of_a_half_open_range_is_valid(tmp_path, capsys, tiny):
    with pytest.raises(SystemExit) as stop:  # --plan: every check, then exit 0
        preflight.preflight(["run.py", "-m", *tiny(), "+sweep=optuna_pareto", "method.energy=interval(0.0,1.0)",
                             f"hydra.sweep.dir={tmp_path / 'sw'}", "--plan"])  # fmt: skip
    assert stop.value.code == 0, capsys.readouterr().err


def test_a_job_name_with_a_path_is_refused(tmp_path, capsys, tiny):
    (tmp_path / "notes.log").write_text("user notes")
    err = refused(capsys, *tiny(), "hydra.job.name=../notes", f"hydra.run.dir={tmp_path / 'run'}")
    assert "hydra.job.name='../notes' must be a plain name" in err
    assert (tmp_path / "notes.log").read_text() == "user notes"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--resolve"], "--resolve only goes with --cfg or --help"),
        (["--package", "method"], "--package only goes with --cfg"),
        (["--shell-completion"], "--shell-completion needs install=bash"),
    ],
)
def test_hydras_own_flags_without_their_partner_are_one_line(tiny, capsys, args, message):
    assert message in refused(capsys, *args, *tiny())


@pytest.mark.parametrize("name, sweep", [("multirun.yaml", True), (".hydra/config.yaml", False),
                                         (".hydra/overrides.yaml", False)])  # fmt: skip
def test_a_hydra_file_no_run_of_svdbench_wrote_is_refused_and_kept(tmp_path, capsys, tiny, name, sweep):
    where = tmp_path / "d"
    (where / name).parent.mkdir(parents=True)
    (where / name).write_text("my own: notes\n")
    args = ["-m", *tiny(), "seed=0", f"hydra.sweep.dir={where}"] if sweep else [*tiny(), f"hydra.run.dir={where}"]
    err = refused(capsys, *args)
    assert f"holds {name}, which no run of svdbench wrote" in err and (where / name).read_text() == "my own: notes\n"


def test_a_sweep_replacing_a_larger_one_is_refused_while_its_extra_runs_would_stay(tmp_path, capsys, tiny, dense_run):
    for job in ("0", "1", "2"):
        shutil.copytree(dense_run, tmp_path / "sw" / job)
    err = refused(capsys, "-m", *tiny(), "seed=0,1", "resume=false", f"hydra.sweep.dir={tmp_path / 'sw'}")
    assert "holds 1 run(s) this sweep does not replace (2), which a report of it would count" in err
    assert (tmp_path / "sw" / "2" / "results.json").is_file()


def test_a_run_lists_its_points_before_it_makes_them(tmp_path, tiny_cfg, monkeypatch):
    """A run cut while making its points has listed them: a replacing run clears them whatever path it
    reaches the directory by (a point's point_of is the path it was made under)."""
    from svdbench.points import OperatingPoints

    seen = []

    def cut(self, bench, runner, main, trained):
        seen.append(read_results(self.dir / "results.json")["operating_points"])
        raise KeyboardInterrupt

    monkeypatch.setattr(OperatingPoints, "make", cut)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(tiny_cfg(), SVDTraining.create(energy=0.05, energies=[0.1, 0.2]), tmp_path / "run")
    assert seen == [[{"label": "energy_0.1", "status": "pending"}, {"label": "energy_0.2", "status": "pending"}]]


def test_a_resume_false_sweep_finds_runs_it_does_not_replace_at_any_depth(tmp_path, capsys, tiny, dense_run):
    shutil.copytree(dense_run, tmp_path / "sw" / "g" / "0")  # an earlier sweep's subdir=g/${hydra.job.num}
    err = refused(capsys, "-m", *tiny(), "seed=0,1", "resume=false", f"hydra.sweep.dir={tmp_path / 'sw'}")
    assert "holds 1 run(s) this sweep does not replace (g/0)" in err
    shutil.rmtree(tmp_path / "sw")
    shutil.copytree(dense_run, tmp_path / "sw")  # a single run's directory, now a sweep's
    err = refused(capsys, "-m", *tiny(), "seed=0,1", "resume=false", f"hydra.sweep.dir={tmp_path / 'sw'}")
    assert "holds 1 run(s) this sweep does not replace (.)" in err


@pytest.mark.parametrize(
    "override, message",
    [
        ("hydra.job_logging.handlers.file.filename=/tmp/notes.txt", "must be a file in the run directory"),
        ("hydra.output_subdir=..", "hydra.output_subdir=.. must be a folder name in the run directory"),
        ("+hydra.callbacks.report.outdir=x", "hydra.callbacks.report.outdir is not a key of the sweep's report"),
        ("hydra.callbacks.report._target_=os.remove", "_target_ must be svdbench.sweep_report.ReportAtEnd"),
    ],
)
def test_where_hydra_writes_and_the_sweep_report_are_checked(tmp_path, capsys, tiny, override, message):
    err = refused(capsys, "-m", *tiny(), "seed=0,1", override, f"hydra.sweep.dir={tmp_path / 'sw'}")
    assert message in err and not (tmp_path / "sw").exists()


def test_a_deployed_model_of_svdbenchs_left_without_results_is_its_own(tmp_path, tiny_cfg, dense_run):
    """A run killed between writing its deployed model and its results.json: the directory is not refused
    for good; a rerun replaces the model with its own."""
    run = tmp_path / "run"
    shutil.copytree(dense_run, run)
    for name in ("results.json", "dense.pt"):
        (run / name).unlink()
    res = run_experiment(tiny_cfg(save_model=True), Dense(), run)
    assert res["status"] == "completed" and (run / "deployed.json").is_file()


def test_a_killed_points_temporary_files_go_with_the_run_they_belong_to(tmp_path, points_run):
    run = tmp_path / "run"
    shutil.copytree(points_run, run)
    (run / "energy_0.1" / ".deployed.pt.k1l2.tmp").write_bytes(b"half a model")
    clear_run(run)
    assert not (run / "energy_0.1").exists()


def test_a_resume_false_sampling_sweep_with_fewer_trials_is_refused(tmp_path, capsys, tiny, dense_run):
    for job in ("0", "1", "2"):
        shutil.copytree(dense_run, tmp_path / "sw" / job)
    err = refused(capsys, "-m", *tiny(), "+sweep=optuna_pareto", "hydra.sweeper.n_trials=1", "resume=false",
                  f"hydra.sweep.dir={tmp_path / 'sw'}")  # fmt: skip
    assert "holds 2 run(s) this sweep does not replace (1, ...)" in err


def test_a_start_of_another_architecture_or_no_weights_is_refused_before_a_plan_or_a_sweep(tmp_path, capsys, tiny,
                                                                                          dense_run):  # fmt: skip
    """init_from is checked against the model each job builds (names and shapes, from the config alone), before
    --plan prints and before a sweep's first job: nothing is written."""
    err = refused(capsys, "--plan", *tiny(), "method=svd", f"init_from={dense_run}", "model=resnet20",
                  f"hydra.run.dir={tmp_path}/p")  # fmt: skip
    assert f"init_from: {dense_run}/dense.pt holds another architecture (missing: layer1.1.conv1.weight" in err
    err = refused(capsys, "-m", *tiny(), "method=svd", f"init_from={dense_run}", "model=resnet20", "seed=0,1",
                  f"hydra.sweep.dir={tmp_path}/s")  # fmt: skip
    assert err.startswith("config error: job 0 (seed=0): init_from: ") and "holds another architecture" in err
    err = refused(capsys, "-m", *tiny(), "method=svd", f"init_from={dense_run}/results.json", "seed=0,1",
                  f"hydra.sweep.dir={tmp_path}/s")  # fmt: skip
    assert "results.json: not a torch file" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_completed_run_is_not_returned_for_other_start_weights(tmp_path, capsys, tiny, run_py, dense_run):
    """The same init_from text naming other weights now (the dense run replaced since, a relative path from
    another directory): the completed run is not this run; refused in one line, the run kept."""
    start = tmp_path / "dense"
    shutil.copytree(dense_run, start)
    run = tmp_path / "svd"
    argv = [*tiny(), "method=svd", f"init_from={start}", f"hydra.run.dir={run}"]
    assert run_py(*argv, timeout=300).returncode == 0
    with pytest.raises(SystemExit) as same:  # the same weights: the completed run, nothing to do
        preflight.preflight(["run.py", *argv])
    assert same.value.code == 0, capsys.readouterr().err
    state = torch.load(start / "dense.pt", weights_only=True)
    torch.save({k: v + 1 if v.is_floating_point() else v for k, v in state.items()}, start / "dense.pt")
    before = files(run)
    err = refused(capsys, *argv)
    assert "holds a completed run of this config that started from other weights than init_from" in err
    assert files(run) == before


@pytest.mark.parametrize(
    "argv, line",
    [
        (["--help", "method=bogus"], "Could not find 'method/bogus': choose from dense,"),
        (["--help", "trainer.epochs=abc"], "could not be converted to Integer (key: trainer.epochs)"),
        (["--info", "config", "method=bogus"], "Could not find 'method/bogus'"),
        (["--cfg", "hydra", "method=bogus"], "Could not find 'method/bogus'"),
        (["--hydra-help", "method=dense"], "--hydra-help prints Hydra's own help, of no config: give it no overrides"),
        (["-m", "seed=1,2", "--help"], "--help prints and runs nothing, of one run: drop -m"),
        (["-m", "--cfg", "hydra"], "--cfg prints and runs nothing, of one run: drop -m"),
        (["--help", "--config-name", "nope"], "Cannot find primary config 'nope'"),
        (["--help", "--config-dir", "nowhere"], "--config-dir nowhere: no such directory"),
        (["hydra.run.dir=/tmp/x_${now:}"], "${now:} needs a strftime pattern, e.g. ${now:%Y-%m-%d_%H-%M-%S}"),
        (["hydra.run.dir=/tmp/x\\${y}"], "a directory name with ${ (Hydra would resolve it again for its log)"),
        (
            ["-m", "seed=0,1", "hydra.sweep.dir=/tmp/s", "hydra.sweep.subdir=${now:%H}"],
            "hydra.sweep.subdir=${now:%H}: a job's directory cannot depend on the time it starts",
        ),
        (
            ["-m", "seed=0,1", "hydra.sweep.dir=/tmp/s", "hydra.sweep.subdir=${now :%H}"],
            "hydra.sweep.subdir=${now :%H}: a job's directory cannot depend on the time it starts",
        ),
        (
            ["-m", "seed=0,1", "hydra.sweep.dir=/tmp/s", "hydra.sweep.subdir=j\\${x}"],
            "hydra.sweep.subdir=j${x}: a directory",
        ),
    ],
)
def test_an_override_hydra_cannot_take_is_one_line_before_it_prints(capsys, argv, line):
    assert line in refused(capsys, *argv)


def test_help_info_and_config_with_good_overrides_are_left_to_hydra(capsys):
    for argv in (["--help", "method=trp"], ["--info", "config"], ["--cfg", "hydra", "method=dense"], ["--version"]):
        assert preflight.preflight(["run.py", *argv]) == ["run.py", *argv]


def test_a_glob_sweep_over_a_group_is_expanded_as_hydra_does(tmp_path, tiny):
    axes = preflight.sweep_axes(CommandLine([*tiny(), "method=glob(*,exclude=[scratch,svd*,random*,l1*,sfp,fpgm])"]))
    assert [a.values for a in axes if len(a.values) > 1] == [["method=dense", "method=trp"]]


@pytest.mark.parametrize(
    "override, line",
    [
        ("hydra.run.dir=~/x", "LexerNoViableAltException: hydra.run.dir=~/x (quote a value holding such characters"),
        ("hydra.run.dir='~/x'", "hydra.run.dir=~/x: Hydra does not expand ~ (it would make a directory named ~ here)"),
        ("hydra.job.name=" + "j" * 252, "hydra.job.name is 252 bytes long: its log file, <name>.log, must fit"),
    ],
)
def test_a_tilde_or_an_overlong_job_name_is_one_line_and_nothing_is_made(tmp_path, capsys, tiny, monkeypatch,
                                                                         override, line):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert line in refused(capsys, *tiny(), override, *(["hydra.run.dir=r"] if "job.name" in override else []))
    assert list(tmp_path.iterdir()) == []


def test_init_from_with_a_tilde_is_the_home_directorys(tmp_path, tiny, monkeypatch, compose_cfg):
    monkeypatch.setenv("HOME", str(tmp_path))
    planned = preflight.plan(compose_cfg([*tiny(), "method=svd", "init_from='~/dense'"]), base="/elsewhere")
    assert planned.init_from == tmp_path / "dense"


def test_the_resume_hint_of_an_interrupted_sweep_job_is_the_sweeps_command(tmp_path):
    hint = f"rerun the sweep's command with hydra.sweep.dir={tmp_path} to resume (its completed jobs are kept)"
    assert resume_hint(tmp_path / "0", str(tmp_path)) == hint  # the same directory, not a new time-stamped one
    assert resume_hint(tmp_path) == f"rerun with hydra.run.dir={tmp_path} to resume"


@pytest.mark.parametrize("spelling", ["${ now:%Y}", "${now :%Y}", "${hydra.job.env_set.S}"])
def test_a_time_stamp_in_any_spelling_or_through_another_key_is_pinned(tmp_path, tiny, spelling):
    extra = ["+hydra.job.env_set.S=${now:%Y}"] if "env_set" in spelling else []
    try:
        argv = preflight.preflight(["run.py", *tiny(), *extra, f"hydra.run.dir={tmp_path}/{spelling}"])
    finally:
        RunLock.release_held()
    (where,) = list(tmp_path.iterdir())
    assert argv[-1] == f"hydra.run.dir={where}" and where.name.isdigit()
