"""`svdbench report` on a real tiny multirun (dense and svd, two settings each), plus corrupt, partial
and failed results.json files, and the aggregation over seeds on constructed copies."""

import copy
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from svdbench import report

ROOT = Path(__file__).resolve().parents[1]


def svdbench_cmd():
    exe = Path(sys.executable).parent / "svdbench"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "svdbench.report"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, run_py, tiny):
    """4 jobs: method dense and svd x trainer.epochs 1 and 2 (a few seconds in all)."""
    d = tmp_path_factory.mktemp("multirun") / "sweep"
    proc = run_py("-m", "method=dense,svd", "trainer.epochs=1,2", *tiny("trainer.epochs"), f"hydra.sweep.dir={d}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list(d.rglob("results.json"))) == 4
    return d


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_report_command_writes_tables_fronts_and_plot(sweep, env, tmp_path):
    src = tmp_path / "runs"
    shutil.copytree(sweep, src)
    (src / "corrupt").mkdir()
    (src / "corrupt" / "results.json").write_text('{"status": "completed", "top1": ')
    partial = json.loads((src / "0" / "results.json").read_text())
    del partial["macs"]
    (src / "partial").mkdir()
    (src / "partial" / "results.json").write_text(json.dumps(partial))
    (src / "failed").mkdir()
    (src / "failed" / "results.json").write_text(
        json.dumps(
            {
                "status": "failed",
                "method": "svd",
                "model": "resnet8",
                "dataset": "synthetic",
                "seed": 3,
                "error": "RuntimeError: loss became NaN in stage train, epoch 2",
            }
        )  # fmt: skip
    )
    out = tmp_path / "out"
    proc = subprocess.run([*svdbench_cmd(), "report", str(src), "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 3, proc.stderr
    assert any("corrupt" in w and "not valid JSON" in w for w in warnings)
    assert any("partial" in w and "missing keys: macs" in w for w in warnings)
    assert any("failed" in w and "NaN" in w for w in warnings)

    for stem in ("comparison", "comparison_dense", "comparison_svd"):
        for ext in ("md", "csv", "tex"):
            assert (out / f"{stem}.{ext}").stat().st_size > 0
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (out / "pareto.svg").read_text()

    rows = read_csv(out / "comparison.csv")
    assert [r["method"] for r in rows] == ["dense", "dense", "svd", "svd"]
    assert {r["settings"] for r in rows if r["method"] == "dense"} == {"tr.epochs=1", "tr.epochs=2"}
    assert all("decomposition=channel" in r["settings"] and "tr.epochs=" in r["settings"] for r in rows[2:])
    assert all(r["n_seeds"] == "1" and r["model"] == "resnet8" and r["dataset"] == "synthetic" for r in rows)
    # delta against the dense reference (one seed each: the more accurate dense configuration)
    dense = [r for r in rows if r["method"] == "dense"]
    ref = max(float(r["top1_mean"]) for r in dense)
    for r in rows:
        assert float(r["delta_top1"]) == pytest.approx(float(r["top1_mean"]) - ref, abs=1e-3)
    # the overall front: no front member is dominated by any row
    front = [r for r in rows if r["on_overall_front"] == "1"]
    assert front
    for f in front:
        assert not any(
            float(o["top1_mean"]) >= float(f["top1_mean"]) and float(o["macs_mean"]) <= float(f["macs_mean"])
            and (float(o["top1_mean"]) > float(f["top1_mean"]) or float(o["macs_mean"]) < float(f["macs_mean"]))
            for o in rows
        )  # fmt: skip
    assert {r["scope"] for r in read_csv(out / "pareto.csv")} >= {"overall", "dense", "svd"}

    md = (out / "report.md").read_text()
    assert "## Failed" in md and "loss became NaN" in md and "## Skipped files" in md
    assert md.count("| dense | resnet8 | synthetic |") >= 2
    assert [r["seed"] for r in read_csv(out / "failed.csv")] == ["3"]
    tex = (out / "comparison.tex").read_text()
    assert "\\toprule" in tex and "tr.epochs=1" in tex and "\\%" in tex
    assert len(read_csv(out / "comparison_svd.csv")) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["rows"]) == 4 and len(summary["failed"]) == 1 and len(summary["skipped"]) == 3


@pytest.mark.slow
def test_python_m_report_defaults_to_first_path(sweep, env, tmp_path):
    src = tmp_path / "runs"
    shutil.copytree(sweep, src)
    proc = subprocess.run([sys.executable, "-m", "svdbench.report", str(src)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (src / "report" / "comparison.md").is_file() and (src / "report" / "pareto.svg").is_file()
    assert "warning" not in proc.stderr
    # the report directory holds no results.json: a second report reads the same runs
    assert report.main([str(src)]) == 0


def test_nothing_found_is_an_error(tmp_path, capsys):
    assert report.main([str(tmp_path)]) == 1
    assert "no usable results.json" in capsys.readouterr().err


def _copy(res, path: Path, **changes):
    r = copy.deepcopy(res)
    r.update(changes)
    if "seed" in changes:
        r["config"]["seed"] = changes["seed"]
    path.mkdir(parents=True)
    (path / "results.json").write_text(json.dumps(r))


@pytest.mark.slow
def test_seeds_are_averaged_duplicates_dropped_and_paths_ignored(sweep, env, tmp_path, capsys):
    svd = next(json.loads(p.read_text()) for p in sorted(sweep.rglob("results.json"))
               if json.loads(p.read_text())["method"] == "svd")  # fmt: skip
    dense = next(json.loads(p.read_text()) for p in sorted(sweep.rglob("results.json"))
                 if json.loads(p.read_text())["method"] == "dense")  # fmt: skip
    _copy(svd, tmp_path / "a" / "s0", seed=0, top1=60.0, macs=1_000_000)
    _copy(svd, tmp_path / "a" / "s1", seed=1, top1=70.0, macs=1_200_000)
    # the same configuration and seed found twice (a copied directory): counted once, with a warning
    _copy(svd, tmp_path / "b" / "s1", seed=1, top1=10.0, macs=1_200_000)
    # another data root and checkpoint settings do not make another configuration
    other_paths = copy.deepcopy(svd)
    other_paths["config"]["dataset"]["root"] = "/elsewhere"
    other_paths["config"]["keep_checkpoints"] = True
    _copy(other_paths, tmp_path / "c" / "s2", seed=2, top1=80.0, macs=1_100_000)
    _copy(dense, tmp_path / "d" / "s0", seed=0, top1=75.0)
    _copy(dense, tmp_path / "d" / "s1", seed=1, top1=77.0)
    rep = report.build_report([tmp_path], tmp_path / "rep")
    assert "same configuration and seed 1" in capsys.readouterr().err
    by = {r.method: r for r in rep.rows}
    s = by["svd"]
    assert sorted(s.seeds) == [0, 1, 2]
    assert s.mean("top1") == pytest.approx(70.0) and s.stats["top1_std"] == pytest.approx(10.0)
    assert s.mean("macs") == pytest.approx(1_100_000)
    assert s.delta == pytest.approx(70.0 - 76.0)
    assert "70.00 ± 10.00" in (tmp_path / "rep" / "comparison.md").read_text()
    assert "70.00 $\\pm$ 10.00" in (tmp_path / "rep" / "comparison.tex").read_text()


def test_latex_escaping():
    assert report.latex_escape("reg.kind=hoyer_square, 50% & #1") == r"reg.kind=hoyer\_square, 50\% \& \#1"


@pytest.mark.slow
def test_split_makes_one_method_per_value_with_its_own_front(sweep, env, tmp_path):
    svd = next(json.loads(p.read_text()) for p in sorted(sweep.rglob("results.json"))
               if json.loads(p.read_text())["method"] == "svd")  # fmt: skip
    for dec, top1, macs in (("channel", 60.0, 1_000_000), ("spatial", 65.0, 900_000)):
        r = copy.deepcopy(svd)
        r["config"]["method"]["decomposition"] = dec
        _copy(r, tmp_path / dec, seed=0, top1=top1, macs=macs)
    plain = report.build_report([tmp_path], tmp_path / "rep0")
    assert {r.method for r in plain.rows} == {"svd"}
    assert [r.on_method_front for r in plain.rows] == [False, True]  # spatial dominates within "svd"
    rep = report.build_report([tmp_path], tmp_path / "rep", split=["method.decomposition"])
    by = {r.method: r for r in rep.rows}
    assert set(by) == {"svd (channel)", "svd (spatial)"}
    assert by["svd (channel)"].on_method_front and not by["svd (channel)"].on_overall_front
    assert "| svd (spatial) |" in (tmp_path / "rep" / "comparison_svd__spatial_.md").read_text()


@pytest.mark.slow
def test_report_tables_are_what_wandb_logs(sweep, env, tmp_path):
    src = tmp_path / "runs"
    shutil.copytree(sweep, src)
    (src / "failed").mkdir()
    failed = {"status": "failed", "method": "svd", "model": "resnet8", "dataset": "synthetic", "seed": 3, "error": "x"}
    (src / "failed" / "results.json").write_text(json.dumps(failed))
    rep = report.build_report([src], tmp_path / "rep")
    t = report.report_tables(rep)
    assert t.columns == report.REPORT_COLUMNS and len(t.rows) == len(rep.rows) == 4
    for row, r in zip(t.rows, rep.rows, strict=True):
        cells = dict(zip(t.columns, row, strict=True))
        assert cells["method"] == r.method and cells["top1"] == r.mean("top1") and cells["macs"] == r.mean("macs")
        assert cells["delta_top1"] == r.delta and cells["n_seeds"] == 1
        assert cells["front"] == ("overall" if r.on_overall_front else "method" if r.on_method_front else "")
    overall = [["overall", *row] for row, r in zip(t.rows, rep.rows, strict=True) if r.on_overall_front]
    by_method = [[r.method, *row] for row, r in zip(t.rows, rep.rows, strict=True) if r.on_method_front]
    assert overall and t.front_rows == overall + by_method
    assert t.failed_columns == ["method", "model", "dataset", "seed", "error", "path"]
    assert t.failed_rows == [["svd", "resnet8", "synthetic", "3", "x", str(src / "failed" / "results.json")]]
    assert t.markdown == (tmp_path / "rep" / "comparison.md").read_text()
    assert t.png == tmp_path / "rep" / "pareto.png" and t.out == tmp_path / "rep"
    assert t.sources == sorted(str(p.parent) for p in src.rglob("results.json") if p.parent.name != "failed")
