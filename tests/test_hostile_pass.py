"""Cases of the third hostile pass (issue 20) that are not about one run directory's rules: what
svdbench latency, report and the data loader make of odd inputs. Each failed before its fix."""

from __future__ import annotations

import shutil

import pytest

from svdbench import cli
from svdbench.data import load_dataset
from svdbench.errors import DatasetError
from svdbench.methods import Dense
from svdbench.pipeline import run_experiment


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory, tiny_cfg):
    run = tmp_path_factory.mktemp("saved") / "run"
    run_experiment(tiny_cfg(save_model=True), Dense(), run)
    return run


def test_latency_never_writes_through_a_linked_results_json(tmp_path, saved_run, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(saved_run, a)
    shutil.copytree(saved_run, b)
    (a / "results.json").unlink()
    (a / "results.json").symlink_to(b / "results.json")
    before = (b / "results.json").read_bytes()
    assert cli.main(["latency", str(a), "--max-seconds", "0.05", "--batch-sizes", "1"]) == 1
    assert "results.json is a link" in capsys.readouterr().out
    assert (a / "results.json").is_symlink() and (b / "results.json").read_bytes() == before


def test_latency_given_another_file_names_it(tmp_path, saved_run, capsys):
    run = tmp_path / "run"
    shutil.copytree(saved_run, run)
    (run / "notes.json").write_text("{}")
    assert cli.main(["latency", str(run / "notes.json"), "--max-seconds", "0.05"]) == 1
    assert f"{run / 'notes.json'} is not a results.json" in capsys.readouterr().out


def exits(cfg, seed):
    raise SystemExit(0)  # what a dataset module that parses its own command line does


def test_a_dataset_function_that_exits_is_one_line_not_the_end_of_the_run(tiny_cfg):
    cfg = tiny_cfg(dataset={"_target_": f"{__name__}.exits", "name": "mine"}).dataset
    with pytest.raises(DatasetError, match=r"\.exits' failed: SystemExit: 0"):
        load_dataset(cfg, batch_size=8, eval_batch_size=8)
