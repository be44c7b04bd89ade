"""Cases of the third hostile pass (issue 20) that are not about one run directory's rules: what
svdbench latency, report and the data loader make of odd inputs. Each failed before its fix."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch

from svdbench import cli
from svdbench.data import DatasetSplits, TensorSplits, load_dataset
from svdbench.errors import DatasetError, InputError
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


def _record(root, name, method, top1, macs, **extra):
    data = {"status": "completed", "method": method, "model": "resnet8", "dataset": "synthetic", "seed": 0,
            "config": {"seed": 0, "method": {"knob": macs}}, "top1": top1, "macs": macs, "macs_dense": 1000,
            "params": 10, "params_dense": 100, **extra}  # fmt: skip
    (root / name).mkdir(parents=True)
    (root / name / "results.json").write_text(json.dumps(data))
    return root / name / "results.json"


def _latency(ms):
    return {"runs": {"pytorch-eager/cpu": {"deployed": {"1": {"median_ms": ms}}, "dense": {"1": {"median_ms": 2.0}}}}}


@pytest.mark.parametrize(
    "extra, why",
    [
        ({"method_details": [1]}, "method_details is [1], not a mapping"),
        ({"latency": "fast"}, "latency is 'fast', not a mapping"),
        ({"latency": {"runs": "x"}}, "latency.runs is not a mapping of runtimes"),
    ],
)
def test_a_wrongly_typed_optional_field_skips_the_file_with_a_warning(tmp_path, capsys, extra, why):
    _record(tmp_path / "runs", "d", "dense", 90.0, 1000)
    bad = _record(tmp_path / "runs", "a", "alpha", 88.0, 500, **extra)
    assert cli.main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep")]) == 0
    err = capsys.readouterr().err
    assert f"skipping {bad}" in err and why in err


def test_a_latency_that_is_no_time_is_no_figure(tmp_path, capsys):
    _record(tmp_path / "runs", "d", "dense", 90.0, 1000, latency=_latency(2.0))
    _record(tmp_path / "runs", "a", "alpha", 88.0, 500, latency=_latency(1.0))
    _record(tmp_path / "runs", "b", "beta", 87.0, 400, latency=_latency(float("inf")))
    _record(tmp_path / "runs", "c", "gamma", 86.0, 300, latency=_latency(1e-320))
    args = ["--x", "latency", "--runtime", "pytorch-eager/cpu", "--batch", "1"]
    assert cli.main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep"), *args]) == 0
    assert "2 of 4 runs have no latency figure" in capsys.readouterr().err
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert sorted(r["method"] for r in summary["rows"]) == ["alpha", "dense"]


def test_json_nested_too_deeply_is_one_line_in_a_run_and_a_warning_in_a_report(tmp_path, capsys, tiny_cfg):
    deep = _record(tmp_path / "runs", "a", "alpha", 88.0, 500)
    data = json.loads(deep.read_text())
    node = data["config"]["method"]
    for _ in range(900):
        node["a"] = {}
        node = node["a"]
    deep.write_text(json.dumps(data))
    _record(tmp_path / "runs", "d", "dense", 90.0, 1000)
    assert cli.main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep")]) == 0
    assert "config is nested more than 32 levels deep" in capsys.readouterr().err
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match="nested too deeply"):
        run_experiment(tiny_cfg(), Dense(), run)


@pytest.mark.parametrize("odd, what", [(lambda t: t.to_sparse(), "a sparse_coo tensor"),
                                       (lambda t: torch.empty(t.shape, device="meta"), "a meta tensor")])  # fmt: skip
def test_a_starting_point_of_sparse_or_meta_tensors_is_one_line(tmp_path, saved_run, tiny_cfg, odd, what):
    state = torch.load(saved_run / "dense.pt", weights_only=True)
    state["conv1.weight"] = odd(state["conv1.weight"])
    torch.save(state, tmp_path / "dense.pt")
    with pytest.raises(InputError, match=rf"holds {what} \(conv1.weight\), not weights"):
        run_experiment(tiny_cfg(init_from=str(tmp_path / "dense.pt")), Dense(), tmp_path / "run")


def test_a_limit_is_printed_rounded_down_and_thread_counts_are_bounded(capsys):
    from svdbench.checks import rounded_down
    from svdbench.config import MAX_THREADS, MeasureConfig

    assert rounded_down(21.679) == "21.67" and rounded_down(2.0) == "2.00"
    with pytest.raises(ValueError, match=rf"measure.threads must be in \[1, {MAX_THREADS}\]"):
        MeasureConfig(threads=100_000)
    with pytest.raises(SystemExit):
        cli.main(["latency", ".", "--threads", "100000"])
    assert f"invalid thread count in [1, {MAX_THREADS}] value: '100000'" in capsys.readouterr().err


def test_a_latency_report_of_untimed_runs_says_so(tmp_path, capsys):
    _record(tmp_path / "runs", "d", "dense", 90.0, 1000)
    assert cli.main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep"), "--x", "latency"]) == 1
    err = capsys.readouterr().err
    assert "none of the 1 completed runs has a figure on the axis: latency (onnxruntime/cpu, batch 64)" in err


@pytest.mark.slow
def test_a_wandb_project_wandb_refuses_is_one_line_after_the_report(tmp_path, capsys):
    _record(tmp_path / "runs", "d", "dense", 90.0, 1000)
    out = tmp_path / "rep"
    code = cli.main(["report", str(tmp_path / "runs"), "--out", str(out), "--wandb", "--mode", "offline",
                     "--project", "a/b"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "the report is written, but W&B did not take it (" in err and "Traceback" not in err
    assert (out / "report.md").is_file()


def _tensors():
    return (torch.rand(64, 3, 8, 8) * 255).to(torch.uint8), torch.randint(0, 10, (64,))


def _splits(**change):
    x, y = _tensors()
    fields = {"train": (x, y), "test": (x, y), "num_classes": 10, "mean": (0.5,) * 3, "std": (0.5,) * 3, **change}
    return TensorSplits(**fields)


def numpy_arrays(cfg, seed):
    x, y = _tensors()
    return _splits(train=(x.numpy(), y.numpy()))


def two_means(cfg, seed):
    return _splits(mean=(0.5, 0.5), std=(0.5, 0.5))


def negative_pad(cfg, seed):
    return _splits(pad=-3)


def text_classes(cfg, seed):
    return _splits(num_classes="10")


def float_classes(cfg, seed):
    return _splits(num_classes=10.0)


class Triples(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return torch.rand(3, 8, 8), 0, "extra"


class LaterLabels(torch.utils.data.Dataset):
    def __len__(self):
        return 32

    def __getitem__(self, i):
        return torch.rand(3, 8, 8), 0 if i == 0 else 57


def triples(cfg, seed):
    return DatasetSplits(train=Triples(), test=Triples(), num_classes=10, input_shape=(3, 8, 8))


def later_labels(cfg, seed):
    return DatasetSplits(train=LaterLabels(), test=LaterLabels(), num_classes=10, input_shape=(3, 8, 8))


@pytest.mark.parametrize(
    "fn, message",
    [
        (numpy_arrays, "train: must be (images, labels) as torch tensors"),
        (two_means, "mean=(0.5, 0.5), one number per image channel (3)"),
        (negative_pad, "pad=-3 must be an integer >= 0"),
        (text_classes, "has num_classes='10': an integer, at least 2"),
        (float_classes, "has num_classes=10.0: an integer, at least 2"),
        (triples, "train: a sample must be (image tensor, label), got a tuple of 3"),
    ],
)
def test_a_dataset_of_ones_own_with_fields_of_the_wrong_kind_is_one_line(tiny_cfg, fn, message):
    cfg = tiny_cfg(dataset={"_target_": f"{__name__}.{fn.__name__}", "name": "mine"}).dataset
    with pytest.raises(DatasetError, match=re.escape(message)):
        load_dataset(cfg, batch_size=8, eval_batch_size=8)


def test_a_label_out_of_range_after_the_first_sample_is_one_line_in_training(tmp_path, tiny_cfg):
    cfg = tiny_cfg(dataset={"_target_": f"{__name__}.later_labels", "name": "mine", "val_size": 0})
    with pytest.raises(DatasetError, match=r"a training label is 57, outside \[0, 10\)"):
        run_experiment(cfg, Dense(), tmp_path / "run")


def test_a_cut_run_whose_starting_point_was_replaced_is_refused(tmp_path, saved_run, tiny_cfg):
    from svdbench.errors import CheckpointError
    from svdbench.methods import SVDTraining

    dense = tmp_path / "dense"
    shutil.copytree(saved_run, dense)
    run = tmp_path / "run"
    cfg = tiny_cfg(init_from=str(dense), keep_checkpoints=True)
    run_experiment(cfg, SVDTraining.create(energy=0.05), run)
    for f in run.iterdir():  # as a run killed before it deployed leaves it: its checkpoints
        if f.name not in ("checkpoint.pt", "stage_train.pt", "stage_finetune.pt"):
            f.unlink()
    state = torch.load(dense / "dense.pt", weights_only=True)
    state["conv1.weight"] = state["conv1.weight"] * 2  # the dense run replaced by another
    torch.save(state, dense / "dense.pt")
    with pytest.raises(CheckpointError, match="continues from other init_from weights than those there now"):
        run_experiment(cfg, SVDTraining.create(energy=0.05), run)


def test_an_idx_file_longer_than_its_header_says_so(tmp_path):
    import gzip

    from svdbench.data.files import _read_idx

    path = tmp_path / "labels.gz"
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big") + bytes([1, 2, 3, 4]))
    with pytest.raises(DatasetError, match=r"longer than its header says \(it holds 4 values, its header says 3\)"):
        _read_idx(path)


def test_a_config_dir_option_svdbench_also_has_is_named_as_unused(tmp_path, capsys, tiny):
    from svdbench import preflight

    (tmp_path / "cfg" / "dataset").mkdir(parents=True)
    (tmp_path / "cfg" / "dataset" / "synthetic.yaml").write_text("name: synthetic\nnum_train: 64\n")
    with pytest.raises(SystemExit):
        preflight.preflight(["run.py", "--config-dir", str(tmp_path / "cfg"), *tiny(), "--cfg", "job"])
    err = capsys.readouterr().err
    mine = tmp_path / "cfg" / "dataset" / "synthetic.yaml"
    assert f"warning: {mine} is not used: svdbench's own dataset/synthetic" in err


def test_an_empty_init_from_is_refused_not_taken_as_none(tiny, capsys):
    from svdbench import preflight

    with pytest.raises(SystemExit):
        preflight.preflight(["run.py", *tiny(), "init_from="])
    assert "init_from is empty: give a dense run's directory, or null" in capsys.readouterr().err


def test_ctrl_c_in_a_report_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    from svdbench.report import build as build_module

    _record(tmp_path / "runs", "d", "dense", 90.0, 1000)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build_module, "plot", interrupted)
    assert cli.main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep")]) == 130
    assert capsys.readouterr().err.strip().endswith("svdbench report: interrupted (SIGINT); what it had not "
                                                    "finished was not written")  # fmt: skip
    assert not (tmp_path / "rep").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("written", ["{d}/", "{d}/dense.pt", "{d}/./"])
def test_one_starting_point_written_another_way_is_the_same_run(tmp_path, saved_run, tiny_cfg, written):
    from svdbench.methods import SVDTraining

    dense = tmp_path / "dense"
    shutil.copytree(saved_run, dense)
    run = tmp_path / "run"
    first = run_experiment(tiny_cfg(init_from=str(dense)), SVDTraining.create(energy=0.05), run)
    again = run_experiment(tiny_cfg(init_from=written.format(d=dense)), SVDTraining.create(energy=0.05), run)
    assert again == first  # the completed run, returned: not "another config"


def test_a_config_of_ones_own_named_with_config_name_in_config_dir_composes(tmp_path, tiny, capsys):
    from svdbench import preflight

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "myexp.yaml").write_text("defaults:\n  - config\n  - _self_\nseed: 3\n")
    with pytest.raises(SystemExit) as stop:
        preflight.preflight(["run.py", "--config-dir", str(tmp_path / "mine"), "--config-name", "myexp", *tiny(),
                             "-c", "job"])  # fmt: skip
    assert stop.value.code == 0 and "\nseed: 3\n" in capsys.readouterr().out
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "config.yaml").write_text("seed: 4\n")
    with pytest.raises(SystemExit):
        preflight.preflight(["run.py", "--config-dir", str(tmp_path / "top"), *tiny(), "-c", "job"])
    out, err = capsys.readouterr()
    assert f"warning: {tmp_path / 'top' / 'config.yaml'} is not used: svdbench's own config.yaml" in err
    assert "\nseed: 0\n" in out


def features_only(num_classes, in_channels):
    return torch.nn.Conv2d(in_channels, 4, 3)  # no head: (N, 4, H, W), not (N, classes)


def test_a_model_without_one_logit_per_class_is_one_line(tmp_path, tiny_cfg):
    from svdbench.config import ModelConfig

    cfg = tiny_cfg()
    cfg.model = ModelConfig(_target_=f"{__name__}.features_only", name="mine")
    with pytest.raises(InputError, match=r"model mine gives outputs of shape \(2, 4, 14, 14\) for 2 images: expected"):
        run_experiment(cfg, Dense(), tmp_path / "run")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--experimental-rerun", "x.pickle"], "--experimental-rerun is not supported: it unpickles a file"),
        (["--bogus"], "unknown option --bogus"),
        (["--conf", "x"], "--conf is ambiguous: --config-path, --config-name, --config-dir"),
        (["-m", "hydra.job.name=p,q"], "hydra.job.name=p,q: Hydra's own keys cannot be swept"),
        (["--multi", "seed=0,1", "hydra.sweep.subdir=same"], "hydra.sweep.subdir=same puts job 0"),
    ],
)
def test_options_svdbench_does_not_run_are_refused_and_abbreviations_read_as_hydra_reads_them(
    tmp_path, tiny, capsys, args, message
):
    from svdbench import preflight

    options = [a for a in args if a.startswith("-")]  # Hydra reads the options before the overrides
    overrides = [a for a in args if not a.startswith("-")]
    with pytest.raises(SystemExit) as stop:
        preflight.preflight(["run.py", *options, *tiny(), *overrides, f"hydra.sweep.dir={tmp_path / 'sw'}"])
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_overrides_on_both_sides_of_an_option_are_one_line_and_nothing_is_made(tmp_path, tiny, capsys):
    from svdbench import preflight

    with pytest.raises(SystemExit) as stop:
        preflight.preflight(["run.py", *tiny(), "seed=0,1", "-m", f"hydra.sweep.dir={tmp_path / 'sw'}"])
    assert stop.value.code == 2 and "the overrides must come together" in capsys.readouterr().err
    assert not (tmp_path / "sw").exists()


# Hostile pass round 4 (r4b): links, races on a made parent, an ASCII locale, orphans, odd lock files.


def test_runs_reached_through_linked_directories_are_found_once(tmp_path, capsys):
    from svdbench.results import find_results

    _record(tmp_path / "runs", "d", "dense", 90.0, 1000)
    _record(tmp_path / "runs", "a", "alpha", 88.0, 500)
    links = tmp_path / "links"
    links.mkdir()
    (links / "d").symlink_to(tmp_path / "runs" / "d")
    (links / "a").symlink_to(tmp_path / "runs" / "a")
    (links / "a_again").symlink_to(tmp_path / "runs" / "a")  # the same run twice: once
    (links / "loop").symlink_to(links)  # a loop: not entered again
    (links / "up").symlink_to(tmp_path)  # above: runs/ once more, its runs already found
    found = find_results([links])
    assert sorted(p.resolve() for p in found) == sorted((tmp_path / "runs" / n / "results.json") for n in "ad")
    study = tmp_path / "study"  # a real run beside a link to another
    _record(study, "real", "alpha", 88.0, 500)
    (study / "dense_link").symlink_to(tmp_path / "runs" / "d")
    assert cli.main(["report", str(study), "--out", str(tmp_path / "rep")]) == 0
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert sorted(r["method"] for r in summary["rows"]) == ["alpha", "dense"]
    assert cli.main(["report", str(links), "--out", str(tmp_path / "rep2")]) == 0


def test_latency_times_a_run_reached_through_a_linked_directory(tmp_path, saved_run, capsys):
    real = tmp_path / "real"
    shutil.copytree(saved_run, real)
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "run").symlink_to(real)
    assert cli.main(["latency", str(tmp_path / "links"), "--max-seconds", "0.05", "--batch-sizes", "1"]) == 0
    assert "[1/1]" in capsys.readouterr().out
    assert json.loads((real / "results.json").read_text())["latency"]["runs"]


def test_the_write_check_keeps_what_another_command_made_in_a_parent_it_made(tmp_path, monkeypatch):
    import tempfile

    from svdbench import rundir

    real = tempfile.TemporaryFile

    def meanwhile(*args, **kwargs):  # another run into a sibling under the new parent, between mkdir and removal
        (tmp_path / "exp" / "B").mkdir()
        (tmp_path / "exp" / "B" / "results.json").write_text("{}")
        return real(*args, **kwargs)

    monkeypatch.setattr(rundir.tempfile, "TemporaryFile", meanwhile)
    rundir.check_sweep_dir(tmp_path / "exp" / "A", what="run directory")
    assert (tmp_path / "exp" / "B" / "results.json").read_text() == "{}"
    assert not (tmp_path / "exp" / "A").exists()
    monkeypatch.undo()
    rundir.check_sweep_dir(tmp_path / "new" / "deep" / "A", what="run directory")  # alone: all it made removed
    assert not (tmp_path / "new").exists()


def test_a_report_in_an_ascii_locale_writes_utf8_files(tmp_path, env, root):
    import subprocess
    import sys

    _record(tmp_path / "runs", "d", "dense", 90.0, 1000)
    _record(tmp_path / "runs", "a", "alphé", 88.0, 500)
    ascii_env = {
        **env,
        "LC_ALL": "C",
        "LANG": "C",
        "PYTHONUTF8": "0",
        "PYTHONCOERCECLOCALE": "0",
        "PYTHONIOENCODING": "",
    }
    out = tmp_path / "rep"
    proc = subprocess.run([sys.executable, "-m", "svdbench.cli", "report", str(tmp_path / "runs"), "--out", str(out)],
                          env=ascii_env, cwd=root, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    texts = [p for p in out.rglob("*") if p.suffix in (".md", ".csv", ".tex", ".json", ".html")]
    assert texts and all(p.read_bytes().decode("utf-8") for p in texts)
    assert "alphé" in (out / "report.md").read_text(encoding="utf-8")


def test_latency_removes_the_temporary_file_a_killed_latency_left(tmp_path, capsys):
    results = _record(tmp_path / "runs", "a", "alpha", 88.0, 500, latency=_latency(1.0))
    orphan = results.parent / ".results.json.9jnrxl_9.tmp"
    orphan.write_text('{"status": ')
    assert cli.main(["latency", str(tmp_path / "runs"), "--batch-sizes", "1"]) == 0  # the record's batch size
    assert "skipped (has latency" in capsys.readouterr().out
    assert not orphan.exists() and results.is_file()


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_fifo_or_directory_at_a_lock_name_is_named_as_not_svdbenchs_lock(tmp_path, capsys, monkeypatch, kind):
    import os

    from svdbench import rundir
    from svdbench.report import outdir

    def plant(path):
        os.mkfifo(path) if kind == "fifo" else path.mkdir()

    lock = tmp_path / "run" / ".svdbench.lock"
    lock.parent.mkdir()
    plant(lock)
    with pytest.raises(InputError, match=rf"^{lock} is not a regular file, not svdbench's lock: remove it$"):
        rundir.RunLock(lock.parent).__enter__()
    results = _record(tmp_path / "runs", "a", "alpha", 88.0, 500)
    plant(results.parent / ".svdbench.lock")
    assert cli.main(["latency", str(tmp_path / "runs"), "--force"]) == 1
    assert f"not timed: {results.parent / '.svdbench.lock'} is not a regular file, not svdbench's lock" in (
        capsys.readouterr().out
    )

    class Planted(rundir.RunLock):  # the report's lock, whatever its name, found taken by a FIFO or directory
        def __init__(self, run_dir, name=rundir.LOCK, wait=False):
            super().__init__(run_dir, name, wait)
            if not os.path.lexists(self.path):
                plant(self.path)

    monkeypatch.setattr(outdir, "RunLock", Planted)
    assert cli.main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep")]) != 0
    assert "is not a regular file, not svdbench's lock: remove it" in capsys.readouterr().err
