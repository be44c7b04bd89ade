"""docs/extending.md, done exactly as it says: its files written into a directory outside the
package, its commands run (only made smaller: one epoch, no latency timing). The user's method
runs, is found completed on a rerun, resumes from a checkpoint, sweeps and appears in the report."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "extending.md"
SMALLER = " trainer.epochs=1 trainer.progress=false measure.latency=false"


def doc_files() -> dict[str, str]:
    """``# file: <path>`` first line of a fenced block -> the block's text."""
    blocks = re.findall(r"```\w*\n# file: (\S+)\n(.*?)```", DOC.read_text(), re.S)
    return {path: text for path, text in blocks}


@pytest.fixture(scope="module")
def project(tmp_path_factory, env):
    """The project of the doc, its commands run once."""
    files = doc_files()
    assert {"my_bench.py", "conf/method/linear_svd.yaml", "conf/model/small_cnn.yaml", "conf/dataset/stripes.yaml",
            "commands.sh"} <= files.keys()  # fmt: skip
    proj = tmp_path_factory.mktemp("user") / "my_project"
    for path, text in files.items():
        (proj / path).parent.mkdir(parents=True, exist_ok=True)
        (proj / path).write_text(text)
    script = "\n".join(ln + SMALLER if "run.py" in ln else ln for ln in files["commands.sh"].splitlines())
    path = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    run_env = {**env, "SVDBENCH": str(ROOT), "PYTHONPATH": str(proj), "PATH": path}
    proc = subprocess.run(["bash", "-euc", script], cwd=proj, env=run_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proj, proc, run_env


def results(path: Path) -> dict:
    return json.loads((path / "results.json").read_text())


@pytest.mark.slow
def test_the_users_method_model_and_dataset_run(project):
    proj, proc, _ = project
    res = results(proj / "runs" / "one")
    assert res["status"] == "completed"
    assert (res["method"], res["model"], res["dataset"]) == ("linear_svd", "small_cnn", "stripes")
    assert res["config"]["method"]["_target_"] == "my_bench.LinearSVD" and "regularizer" not in res["config"]
    assert res["macs"] < res["macs_dense"]  # the fully connected layers were factorised
    assert res["method_details"]["ranks"] and res["headline"] == ["method.energy"]
    assert "already holds a completed run" in proc.stdout + proc.stderr  # the second command found it


@pytest.mark.slow
def test_the_sweep_and_the_report(project):
    proj, _, _ = project
    energies = sorted(results(p.parent)["config"]["method"]["energy"] for p in (proj / "runs" / "sweep").rglob(
        "results.json"))  # fmt: skip
    assert energies == [0.05, 0.3]
    summary = json.loads((proj / "runs" / "report" / "summary.json").read_text())
    rows = {(r["method"], r["settings"]) for r in summary["rows"]}
    assert {("linear_svd", "energy=0.05"), ("linear_svd", "energy=0.1"), ("linear_svd", "energy=0.3")} <= rows
    assert any(r["method"] == "dense" for r in summary["rows"])
    assert all(r["delta_top1"] != "" for r in summary["rows"])  # each row is compared with the dense reference


@pytest.mark.slow
def test_the_users_method_resumes_from_its_checkpoint_and_refuses_typos(project):
    proj, _, run_env = project
    args = [sys.executable, str(ROOT / "run.py"), "--config-dir", "conf", "method=linear_svd", "model=small_cnn",
            "dataset=stripes", *SMALLER.split()]  # fmt: skip
    first = subprocess.run([*args, "keep_checkpoints=true", "hydra.run.dir=runs/ck"], cwd=proj, env=run_env,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    done = results(proj / "runs" / "ck")
    (proj / "runs" / "ck" / "results.json").unlink()  # as if the run had died after its last checkpoint
    again = subprocess.run([*args, "keep_checkpoints=true", "hydra.run.dir=runs/ck"], cwd=proj, env=run_env,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert again.returncode == 0 and "stage train restored from its checkpoint" in again.stdout + again.stderr
    resumed = results(proj / "runs" / "ck")
    assert (resumed["top1"], resumed["macs"], resumed["history"]) == (done["top1"], done["macs"], done["history"])
    typo = subprocess.run([*args, "+method.enrgy=0.2", "hydra.run.dir=runs/typo"], cwd=proj, env=run_env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert typo.returncode == 2 and not (proj / "runs" / "typo").exists()
    assert typo.stderr.strip() == "config error: Key 'enrgy' not in 'LinearSVDConfig' (key: method.enrgy)"
    bad = subprocess.run([*args, "method.energy=1.5", "hydra.run.dir=runs/bad"], cwd=proj, env=run_env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.stderr.strip() == "config error: method.energy must be in [0, 1), got 1.5"
