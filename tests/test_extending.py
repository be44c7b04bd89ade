"""docs/extending.md, done exactly as it says: its files written into a directory outside the
package, its commands run (only made smaller: one epoch, no latency timing), its test file run. The
user's two methods (factorised training at a fixed rank, filter pruning by a criterion of their own),
model and dataset pass svdbench's contract checks, run, are found completed on a rerun, resume from a
checkpoint, sweep and appear in the report; the user's code names nothing private of svdbench."""

import ast
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
FILES = {"my_bench.py", "test_my_bench.py", "conf/method/factorized.yaml", "conf/method/variance_filter.yaml",
         "conf/model/small_cnn.yaml", "conf/dataset/stripes.yaml", "commands.sh"}  # fmt: skip


def doc_files() -> dict[str, str]:
    """``# file: <path>`` first line of a fenced block -> the block's text."""
    blocks = re.findall(r"```\w*\n# file: (\S+)\n(.*?)```", DOC.read_text(), re.S)
    return {path: text for path, text in blocks}


def private_names(code: str) -> list[str]:
    """Names starting with ``_`` that the code imports from svdbench or reads off an object (dunders aside)."""
    found = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("svdbench"):
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
            found += [node.module] if any(p.startswith("_") for p in node.module.split(".")) else []
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.endswith("__"):
            found.append(node.attr)
    return found


def test_the_users_code_names_nothing_private_of_svdbench():
    files = doc_files()
    assert FILES <= files.keys()
    for name in ("my_bench.py", "test_my_bench.py"):
        assert private_names(files[name]) == [], name
    assert private_names("from svdbench.pruning.groups import _plain\nx.y._z") == [
        "svdbench.pruning.groups._plain",
        "_z",
    ]


@pytest.fixture(scope="module")
def project(tmp_path_factory, env):
    """The project of the doc, its commands run once."""
    files = doc_files()
    proj = tmp_path_factory.mktemp("user") / "my_project"
    for path, text in files.items():
        (proj / path).parent.mkdir(parents=True, exist_ok=True)
        (proj / path).write_text(text)
    script = "\n".join(ln + SMALLER if "run.py" in ln else ln for ln in files["commands.sh"].splitlines())
    path = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    run_env = {**env, "SVDBENCH": str(ROOT), "PYTHONPATH": str(proj), "PATH": path}
    proc = subprocess.run(["bash", "-euc", script], cwd=proj, env=run_env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    return proj, proc, run_env


def results(path: Path) -> dict:
    return json.loads((path / "results.json").read_text())


@pytest.mark.slow
def test_the_users_contract_tests_pass(project):
    _, proc, _ = project
    assert re.search(r"^2 passed", proc.stdout, re.M), proc.stdout[-2000:]  # test_my_bench.py, first command


@pytest.mark.slow
def test_the_users_factorised_method_model_and_dataset_run(project):
    proj, proc, _ = project
    res = results(proj / "runs" / "one")
    assert res["status"] == "completed"
    assert (res["method"], res["model"], res["dataset"]) == ("factorized", "small_cnn", "stripes")
    assert res["config"]["method"]["_target_"] == "my_bench.FactorizedTraining" and "regularizer" not in res["config"]
    assert res["config"]["model"] == {"name": "small_cnn", "_target_": "my_bench.small_cnn", "kwargs": {"width": 16}}
    full, after = res["ranks"]["full"], res["ranks"]["after"]
    assert after == res["method_details"]["ranks"] == {n: max(1, round(r * 0.5)) for n, r in full.items()}
    assert full == {"0": 9, "4": 32} and res["macs"] < res["macs_dense"]  # min(Cout, Cin * 3 * 3) of both convs
    assert not (proj / "runs" / "one" / "dense.pt").exists() and res["headline"] == ["method.rank_share"]
    assert "already holds a completed run" in proc.stdout + proc.stderr  # the second command found it


@pytest.mark.slow
def test_the_users_criterion_prunes_to_the_targets_and_the_report_compares(project):
    proj, _, _ = project
    runs = [results(p.parent) for p in sorted((proj / "runs" / "sweep").rglob("results.json"))]
    assert sorted(r["config"]["method"]["speedup"] for r in runs) == [1.5, 3.0]
    for r in runs:
        assert r["method"] == "variance_filter" and r["method_details"]["criterion"] == "weight_variance"
        assert r["speedup"] >= r["config"]["method"]["speedup"]
    summary = json.loads((proj / "runs" / "report" / "summary.json").read_text())
    rows = {(r["method"], r["settings"]) for r in summary["rows"]}
    assert {("factorized", "rank_share=0.5"), ("variance_filter", "speedup=1.5"), ("variance_filter", "speedup=3")} <= {
        (m, s.split(", ")[-1] if m == "variance_filter" else s) for m, s in rows
    }  # fmt: skip
    assert any(r["method"] == "dense" for r in summary["rows"])
    assert all(r["delta_top1"] != "" for r in summary["rows"])  # each row is compared with the dense reference


@pytest.mark.slow
def test_the_users_method_resumes_from_its_checkpoint_and_refuses_typos(project):
    proj, _, run_env = project
    args = [sys.executable, str(ROOT / "run.py"), "--config-dir", "conf", "method=factorized", "model=small_cnn",
            "dataset=stripes", *SMALLER.split()]  # fmt: skip
    first = subprocess.run([*args, "keep_checkpoints=true", "hydra.run.dir=runs/ck"], cwd=proj, env=run_env,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    done = results(proj / "runs" / "ck")
    record = proj / "runs" / "ck" / "results.json"  # as if the run had died after its last checkpoint
    record.write_text(json.dumps({**done, "status": "running"}))
    again = subprocess.run([*args, "keep_checkpoints=true", "hydra.run.dir=runs/ck"], cwd=proj, env=run_env,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert again.returncode == 0 and "stage train restored from its checkpoint" in again.stdout + again.stderr
    resumed = results(proj / "runs" / "ck")
    assert (resumed["top1"], resumed["macs"], resumed["history"]) == (done["top1"], done["macs"], done["history"])
    typo = subprocess.run([*args, "+method.rank_shre=0.2", "hydra.run.dir=runs/typo"], cwd=proj, env=run_env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert typo.returncode == 2 and not (proj / "runs" / "typo").exists()
    assert typo.stderr.strip() == "config error: Key 'rank_shre' not in 'FactorizedConfig' (key: method.rank_shre)"
    bad = subprocess.run([*args, "method.rank_share=1.5", "hydra.run.dir=runs/bad"], cwd=proj, env=run_env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.stderr.strip() == "config error: method.rank_share must be in (0, 1], got 1.5"
