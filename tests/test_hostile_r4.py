"""Round 4 of the hostile pass (area r4a, /tmp/hostile/r4a/findings.md): the resumable Optuna study in SQLite
(F4), names that are not UTF-8 in the report and the run's log (F6), a YAML nested too deep where Hydra writes
(F7), a set ``$SVDBENCH_DATA`` without the Fashion-MNIST files (F11)."""

import json
import logging
import os
import re

import pytest
from conftest import ROOT, record, refused
from packaging.requirements import Requirement

from svdbench import app, cli
from svdbench.data import DatasetError, check_files, fashion_mnist_root, load_dataset
from svdbench.data.files import FASHION_FILES
from svdbench.errors import InputError, printable
from svdbench.report import build_report
from svdbench.rundir import check_run_dir, check_sweep_dir

#: a directory name that is not UTF-8 (Latin-1 "café", from an old archive), as Python hands it over
LATIN1 = os.fsdecode(b"caf\xe9")
DEEP = "[" * 20000 + "]" * 20000 + "\n"


# ---------------------------------------------------------------------- F4: Optuna's SQLite storage


def test_sqlalchemy_is_bounded_below_2_for_optuna_2():
    """optuna 2.10's RDB storage stamps its schema version without a commit, which only SQLAlchemy < 2
    (autocommit) keeps: pyproject.toml must say so while optuna is held below 3."""
    text = (ROOT / "pyproject.toml").read_text().split("dependencies = [", 1)[1].split("]", 1)[0]
    deps = {r.name.lower(): r for r in map(Requirement, re.findall(r'^    "([A-Za-z][^"]*)",$', text, re.M))}
    assert "3.0" not in deps["optuna"].specifier  # optuna 2
    assert "sqlalchemy" in deps and "2.0" not in deps["sqlalchemy"].specifier
    assert "1.4.54" in deps["sqlalchemy"].specifier


def test_optuna_sqlite_storage_opens_and_reopens(tmp_path):
    """The study docs/sweeps.md makes resumable: created in SQLite, then loaded again (SQLAlchemy 2 failed
    the first open with ``assert version is not None``)."""
    import optuna

    url = f"sqlite:///{tmp_path / 'study.db'}"
    for _ in range(2):
        study = optuna.create_study(study_name="s", storage=url, directions=["maximize", "minimize"],
                                    load_if_exists=True)  # fmt: skip
        study.add_trial(optuna.trial.create_trial(values=[1.0, 2.0], params={}, distributions={}))
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 2


@pytest.mark.slow
def test_the_documented_resumable_optuna_study_runs_and_resumes(tmp_path, run_py, tiny):
    """``python run.py -m +sweep=optuna_pareto ... hydra.sweeper.storage=sqlite:///svd_pareto.db`` (docs/sweeps.md),
    run from tmp_path: two trials recorded in the .db, and a second sweep adds its trial to the same study."""
    import optuna

    def sweep(name: str, trials: int):
        proc = run_py("-m", "+sweep=optuna_pareto", *tiny(), f"hydra.sweeper.n_trials={trials}",
                      "hydra.sweeper.n_jobs=1", "hydra.sweeper.storage=sqlite:///svd_pareto.db",
                      f"hydra.sweep.dir={tmp_path / name}", cwd=tmp_path)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr + proc.stdout
        results = [json.loads(p.read_text()) for p in (tmp_path / name).glob("*/results.json")]
        assert len(results) == trials and all(r["status"] == "completed" for r in results)

    sweep("op", 2)
    url = f"sqlite:///{tmp_path / 'svd_pareto.db'}"
    trials = optuna.load_study(study_name="svd_pareto", storage=url).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    sweep("op2", 1)  # resumed: the same study goes on
    assert len(optuna.load_study(study_name="svd_pareto", storage=url).trials) == 3


# ---------------------------------------------------------------------- F6: names that are not UTF-8


def test_printable_shows_the_bytes_of_a_name_that_is_not_utf8():
    assert printable(LATIN1) == "caf\\xe9"
    assert printable(os.fsdecode(b"/r/y\xff/results.json")) == "/r/y\\xff/results.json"
    assert printable("ünï cødé 🚀 €") == "ünï cødé 🚀 €"  # valid text as it is
    assert printable("a\ud800b") == "a\\ud800b"  # a lone surrogate of no byte


def test_a_report_over_a_directory_name_that_is_not_utf8(tmp_path, capsys):
    """``svdbench report`` over runs one of which lies in ``caf\\xe9``: written (both runs), every text file
    valid UTF-8 with the name shown as ``caf\\xe9`` (it refused the whole set, naming no file)."""
    runs = tmp_path / "runs"
    record(runs / "dense", "dense", 0, 90.0, 1000)
    record(runs / LATIN1, "trp", 0, 88.0, 500)
    failed = runs / os.fsdecode(b"bad\xff")
    failed.mkdir()
    (failed / "results.json").write_text(json.dumps({"status": "failed", "method": "svd", "error": "x"}))
    out = tmp_path / "rep"
    assert cli.main(["report", str(runs), "--out", str(out)]) == 0, capsys.readouterr().err
    assert "2 runs in 2 configurations, 1 failed" in capsys.readouterr().out
    texts = {p.name: p.read_bytes().decode("utf-8") for p in out.iterdir() if p.suffix in (".md", ".csv", ".json",
                                                                                          ".tex", ".html")}  # fmt: skip
    assert "caf\\xe9" in texts["comparison.csv"] and "caf\\\\xe9" in texts["report.html"]  # in plotly's JSON
    assert "bad\\xff" in texts["failed.csv"] and "bad\\xff" in texts["report.md"]
    summary = json.loads(texts["summary.json"])
    assert any(f["path"].endswith("bad\\xff/results.json") for f in summary["failed"])
    assert not any("\\udc" in t for t in texts.values())  # no lone surrogate escaped into any file
    # the same in a report built here, and again over its own output (a rerun)
    assert build_report([runs], out).rows


def test_the_log_shows_a_name_that_is_not_utf8_escaped(tmp_path, capfd):
    """Hydra's log file (UTF-8) and console get a run directory ``y\\xff`` as ``y\\xff``: no
    "--- Logging error ---" traceback (the filter :func:`svdbench.app.printable_log` installs)."""
    root = logging.getLogger()
    handler = logging.FileHandler(tmp_path / "run.log", encoding="utf-8")
    root.addHandler(handler)
    try:
        app.printable_log()
        app.printable_log()  # once per handler, however often a multirun's jobs install it
        assert sum(isinstance(f, app.PrintableRecords) for f in handler.filters) == 1
        where = os.fsdecode(b"/runs/y\xff")
        app.log.warning("dense in %s", where)
        try:
            raise OSError(f"cannot write {where}")
        except OSError:
            app.log.exception("job failed")
    finally:
        root.removeHandler(handler)
        handler.close()
        for h in root.handlers:  # pytest's own, left as they were
            h.filters = [f for f in h.filters if not isinstance(f, app.PrintableRecords)]
    assert "Logging error" not in capfd.readouterr().err
    text = (tmp_path / "run.log").read_text(encoding="utf-8")
    assert "dense in /runs/y\\xff" in text and "OSError: cannot write /runs/y\\xff" in text


@pytest.mark.slow
def test_a_run_into_a_directory_name_that_is_not_utf8_logs_it_escaped(tmp_path, run_py, tiny):
    run_dir = tmp_path / os.fsdecode(b"y\xff")
    proc = run_py(*tiny(), "method=dense", f"hydra.run.dir='{run_dir}'")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Logging error" not in proc.stdout + proc.stderr and "Traceback" not in proc.stdout + proc.stderr
    assert json.loads((run_dir / "results.json").read_text())["status"] == "completed"
    log = (run_dir / "run.log").read_text(encoding="utf-8")
    assert f"in {tmp_path}/y\\xff:" in log and f"results: {tmp_path}/y\\xff/results.json" in log


# ---------------------------------------------------------------------- F7: YAML nested too deep


@pytest.mark.parametrize(
    "name, text",
    [(".hydra/overrides.yaml", DEEP), (".hydra/config.yaml", "a: " + DEEP), (".hydra/hydra.yaml", "d: 2020-13-45\n")],
)
def test_a_run_dir_holding_a_yaml_nested_too_deep_is_foreign(tmp_path, name, text):
    """A ``[[[...]]]`` 20000 deep (RecursionError in PyYAML: a 3000-line traceback) or a date PyYAML cannot
    build (ValueError) where Hydra writes: a file no run of svdbench wrote, in one line."""
    (tmp_path / ".hydra").mkdir()
    (tmp_path / name).write_text(text)
    with pytest.raises(InputError, match=rf"holds {re.escape(name)}, which no run of svdbench wrote"):
        check_run_dir(tmp_path)


def test_a_sweep_dir_holding_a_multirun_yaml_nested_too_deep_is_foreign(tmp_path):
    (tmp_path / "multirun.yaml").write_text(DEEP)
    with pytest.raises(InputError, match="holds multirun.yaml, which no run of svdbench wrote"):
        check_sweep_dir(tmp_path)


def test_run_py_refuses_a_deep_overrides_yaml_in_one_line(tmp_path, capsys, tiny):
    run = tmp_path / "a6"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(DEEP)
    err = refused(capsys, *tiny(), "method=dense", f"hydra.run.dir={run}")
    assert "holds .hydra/overrides.yaml, which no run of svdbench wrote" in err
    sweep = tmp_path / "sw6"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(DEEP)
    err = refused(capsys, "-m", *tiny(), "method=dense", "seed=0", f"hydra.sweep.dir={sweep}")
    assert "holds multirun.yaml, which no run of svdbench wrote" in err
    assert sorted(os.listdir(sweep)) == ["multirun.yaml"]


# ---------------------------------------------------------------------- F11: $SVDBENCH_DATA


def fashion_cfg(**kw):
    from svdbench.config import DatasetConfig

    return DatasetConfig(name="fashion_mnist", **{"download": False, "val_size": 0, **kw})


def test_a_set_svdbench_data_that_does_not_exist_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SVDBENCH_DATA", str(tmp_path / "typo"))
    with pytest.raises(DatasetError, match=rf"^\$SVDBENCH_DATA={re.escape(str(tmp_path))}/typo does not exist"):
        fashion_mnist_root(None)
    for download in (False, True):  # no silent fall-back to the system's copy, nor a download elsewhere
        with pytest.raises(DatasetError, match="SVDBENCH_DATA"):
            check_files(fashion_cfg(download=download))


def test_a_set_svdbench_data_without_every_file_names_what_is_missing(tmp_path, monkeypatch, write_fashion_mnist):
    folder = write_fashion_mnist(tmp_path / "fm")
    (folder / f"{FASHION_FILES['test_labels']}.gz").unlink()
    monkeypatch.setenv("SVDBENCH_DATA", str(folder))
    with pytest.raises(DatasetError, match=r"does not hold the Fashion-MNIST files \(missing: t10k-labels-idx1-ubyte,"):
        fashion_mnist_root(None)
    with pytest.raises(DatasetError, match="missing: train-images"):
        monkeypatch.setenv("SVDBENCH_DATA", str(tmp_path))
        fashion_mnist_root(None)


def test_a_set_svdbench_data_is_read_and_named_in_the_debug_log(tmp_path, monkeypatch, write_fashion_mnist, caplog):
    folder = write_fashion_mnist(tmp_path / "fm")
    monkeypatch.setenv("SVDBENCH_DATA", str(folder))
    assert fashion_mnist_root(None) == folder
    assert fashion_mnist_root(str(folder)) == folder  # dataset.root first
    monkeypatch.setenv("SVDBENCH_DATA", "")  # set but empty: as unset
    assert fashion_mnist_root(str(folder)) == folder
    monkeypatch.setenv("SVDBENCH_DATA", str(folder))
    with caplog.at_level(logging.DEBUG, logger="svdbench"):
        b = load_dataset(fashion_cfg(), batch_size=8, eval_batch_size=8, seed=0)
    assert b.num_train == 20
    assert f"Fashion-MNIST from {folder} ($SVDBENCH_DATA)" in caplog.text


def test_run_py_refuses_a_wrong_svdbench_data_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SVDBENCH_DATA", "/nonexistent/typo")
    err = refused(capsys, "dataset=fashion_mnist", "method=dense", "trainer.epochs=1",
                  f"hydra.run.dir={tmp_path / 'e9'}")  # fmt: skip
    assert "$SVDBENCH_DATA=/nonexistent/typo does not exist" in err
    assert not (tmp_path / "e9").exists()
