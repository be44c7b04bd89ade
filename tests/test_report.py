"""`svdbench report` on a real tiny multirun (dense and svd, two settings each), plus corrupt, partial
and failed results.json files, and the aggregation over seeds on constructed copies."""

import copy
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from svdbench import cli, report
from svdbench.report import render, tables
from svdbench.report.columns import TYPED

ROOT = Path(__file__).resolve().parents[1]


def svdbench_cmd():
    exe = Path(sys.executable).parent / "svdbench"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "svdbench.cli"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, run_py, tiny):
    """4 jobs: method dense and svd x trainer.epochs 1 and 2 (a few seconds in all)."""
    d = tmp_path_factory.mktemp("multirun") / "sweep"
    proc = run_py("-m", "method=dense,svd", "trainer.epochs=1,2", *tiny("trainer.epochs"), f"hydra.sweep.dir={d}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list(d.rglob("results.json"))) == 4
    assert (d / "report" / "report.md").is_file() and (d / "report" / "report.html").is_file()  # a sweep's end
    return d


def _records_budgets(sweep: Path) -> int:
    """1 when the sweep's runs record epochs_after_start (then its epochs 1 and 2 differ in budget), else 0."""
    return int(any("epochs_after_start" in json.loads(p.read_text()) for p in sweep.rglob("results.json")))


def _budget_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("warning:") and "compares runs" in ln]


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
    budget = _budget_lines(proc.stderr)
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("warning:") and ln not in budget]
    assert len(warnings) == 3, proc.stderr
    # the sweep varies trainer.epochs, so (where the runs record it) its budgets differ: one line for the task
    assert len(budget) == _records_budgets(sweep), proc.stderr
    assert all("resnet8/synthetic compares runs with different budgets: epochs after the start" in b for b in budget)
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
def test_report_defaults_to_first_path(sweep, env, tmp_path):
    src = tmp_path / "runs"
    shutil.copytree(sweep, src)
    proc = subprocess.run([*svdbench_cmd(), "report", str(src)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (src / "report" / "comparison.md").is_file() and (src / "report" / "pareto.svg").is_file()
    assert "warning" not in "".join(ln for ln in proc.stderr.splitlines() if ln not in _budget_lines(proc.stderr))
    # the report directory holds no results.json: a second report reads the same runs
    assert cli.main(["report", str(src)]) == 0


def test_nothing_found_is_an_error(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) == 1
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
    assert t.comparison.columns == render.header(tables.COMPARISON, TYPED) and len(t.comparison.rows) == 4
    for row, r in zip(t.comparison.rows, rep.rows, strict=True):
        cells = dict(zip(t.comparison.columns, row, strict=True))
        assert cells["method"] == r.method and cells["top1"] == r.mean("top1") and cells["macs"] == r.mean("macs")
        assert cells["delta_top1"] == r.delta and cells["n_seeds"] == 1
        assert cells["front"] == ("overall" if r.on_overall_front else "method" if r.on_method_front else "")
    overall = [["overall", *row] for row, r in zip(t.comparison.rows, rep.rows, strict=True) if r.on_overall_front]
    by_method = [[r.method, *row] for row, r in zip(t.comparison.rows, rep.rows, strict=True) if r.on_method_front]
    assert overall and t.fronts.rows == overall + by_method and t.fronts.columns == ["scope", *t.comparison.columns]
    assert t.failed.columns == ["method", "model", "dataset", "seed", "error", "path"]
    assert t.failed.rows == [["svd", "resnet8", "synthetic", "3", "x", str(src / "failed" / "results.json")]]
    assert t.markdown == (tmp_path / "rep" / "comparison.md").read_text()
    assert t.png == tmp_path / "rep" / "pareto.png" and t.out == tmp_path / "rep"
    assert t.sources == sorted(str(p.parent) for p in src.rglob("results.json") if p.parent.name != "failed")


# ---------------------------------------------------------------- fair comparisons (synthetic results files)


def _result(root: Path, name: str, method: str, seed: int, top1: float, macs: int, cfg: float = 0.0, **extra):
    """A minimal completed results.json (valid for RunRecord.from_dict) in ``root/name``; ``cfg`` tells
    configurations of one method apart; ``extra``: val_top1, epochs_after_start, dense_start, ..."""
    data = {"status": "completed", "method": method, "model": "resnet8", "dataset": "synthetic", "seed": seed,
            "config": {"seed": seed, "method": {"knob": cfg}}, "top1": top1, "macs": macs, "macs_dense": 1000,
            "params": 10, "params_dense": 100, **extra}  # fmt: skip
    (root / name).mkdir(parents=True)
    (root / name / "results.json").write_text(json.dumps(data))


def test_budget_warning_for_mixed_epochs_after_the_start(tmp_path, capsys):
    _result(tmp_path, "d", "dense", 0, 90.0, 1000, epochs_after_start=4)
    _result(tmp_path, "a", "alpha", 0, 88.0, 500, epochs_after_start=4)
    _result(tmp_path, "b", "beta", 0, 87.0, 400, epochs_after_start=1)
    _result(tmp_path, "c", "beta", 0, 86.0, 300, cfg=1.0)  # older file: not compared on the field
    rep = report.build_report([tmp_path], tmp_path / "rep")
    (line,) = _budget_lines(capsys.readouterr().err)
    assert line == "warning: resnet8/synthetic compares runs with different budgets: epochs after the start 1, 4"
    assert "dense start" not in line
    assert rep.budget == [line.removeprefix("warning: ")]
    md = (tmp_path / "rep" / "report.md").read_text()
    assert md.index("different budgets: epochs after the start 1, 4") < md.index("| method | model |")
    assert json.loads((tmp_path / "rep" / "summary.json").read_text())["budget_warnings"] == rep.budget


def test_a_run_with_its_own_epochs_rule_is_not_a_budget_warning(tmp_path, capsys):
    _result(tmp_path, "d", "dense", 0, 90.0, 1000, epochs_after_start=4)
    _result(tmp_path, "a", "alpha", 0, 88.0, 500, epochs_after_start=4)
    _result(tmp_path, "s", "scratch", 0, 89.0, 500, epochs_after_start=28, method_details={"epochs_rule": "scratch_e"})
    assert report.build_report([tmp_path], tmp_path / "rep").budget == []
    assert not _budget_lines(capsys.readouterr().err)
    _result(tmp_path, "b", "beta", 0, 87.0, 400, epochs_after_start=1)  # a method's own budget still counts
    assert report.build_report([tmp_path], tmp_path / "rep").budget == [
        "resnet8/synthetic compares runs with different budgets: epochs after the start 1, 4"
    ]


def test_budget_warning_for_mixed_dense_starts(tmp_path, capsys):
    h1, h2, h3 = ("sha256:" + c * 64 for c in "abe")
    _result(tmp_path, "d", "dense", 0, 90.0, 1000, epochs_after_start=4)
    _result(tmp_path, "a", "alpha", 0, 88.0, 500, epochs_after_start=4, dense_start=h1)
    _result(tmp_path, "b", "beta", 0, 87.0, 400, epochs_after_start=4, dense_start=h2)
    _result(tmp_path, "a1", "alpha", 1, 88.0, 500, epochs_after_start=4, dense_start=h3)  # seed 1's own start
    report.build_report([tmp_path], tmp_path / "rep")
    (line,) = _budget_lines(capsys.readouterr().err)
    assert "dense start" in line and "budget" not in line
    assert "(seed 0: sha256:aaaaaaaaaaaa, sha256:bbbbbbbbbbbb)" in line and "seed 1" not in line
    assert "dense start" in (tmp_path / "rep" / "report.md").read_text()


def test_no_budget_warning_when_the_budgets_match(tmp_path, capsys):
    h, h1 = "sha256:" + "c" * 64, "sha256:" + "f" * 64
    # dense runs are the starts: their epochs (8 from scratch here) and dense_start are not compared
    _result(tmp_path, "d", "dense", 0, 90.0, 1000, epochs_after_start=8, dense_start="sha256:" + "d" * 64)
    _result(tmp_path, "d2", "dense", 1, 80.0, 1000, cfg=1.0, epochs_after_start=9)
    _result(tmp_path, "a", "alpha", 0, 88.0, 500, epochs_after_start=4, dense_start=h)
    _result(tmp_path, "b", "beta", 0, 87.0, 400, epochs_after_start=4, dense_start=h)
    _result(tmp_path, "a1", "alpha", 1, 88.0, 500, epochs_after_start=4, dense_start=h1)  # each seed its own start
    _result(tmp_path, "b1", "beta", 1, 87.0, 400, epochs_after_start=4, dense_start=h1)
    _result(tmp_path, "c", "beta", 0, 86.0, 300, cfg=1.0)  # older file without the fields
    rep = report.build_report([tmp_path], tmp_path / "rep")
    assert "warning" not in capsys.readouterr().err and rep.budget == []
    assert "compares runs" not in (tmp_path / "rep" / "report.md").read_text()


def test_selection_on_validation_changes_the_front(tmp_path):
    # test top-1: A (90) dominates B (85) at equal MACs; validation top-1: B (85) dominates A (80)
    _result(tmp_path, "a", "alpha", 0, 90.0, 500, val_top1=80.0)
    _result(tmp_path, "b", "beta", 0, 85.0, 500, val_top1=85.0)

    def overall(select):
        rep = report.build_report([tmp_path], tmp_path / f"rep_{select}", select=select)
        return rep, {r.method for r in rep.rows if r.on_overall_front}

    rep, front = overall("val")
    assert front == {"beta"} and rep.selection.metric == "val"
    md = (tmp_path / "rep_val" / "report.md").read_text()
    assert "fronts selected on validation top-1 (test top-1 shown)" in md
    assert "| alpha | resnet8 | synthetic | - | 90.00 | 80.00 |" in md  # test shown, val beside it
    rows = read_csv(tmp_path / "rep_val" / "comparison.csv")
    assert [(r["method"], r["val_top1_mean"], r["val_top1_std"]) for r in rows] == [
        ("alpha", "80.0000", "0.0000"), ("beta", "85.0000", "0.0000")]  # fmt: skip
    assert json.loads((tmp_path / "rep_val" / "summary.json").read_text())["selection"]["metric"] == "val"
    rep, front = overall("test")
    assert front == {"alpha"} and rep.selection.metric == "test"
    assert "fronts selected on test top-1" in (tmp_path / "rep_test" / "report.md").read_text()


def test_selection_falls_back_to_test_without_a_validation_split(tmp_path):
    _result(tmp_path, "a", "alpha", 0, 90.0, 500, val_top1=80.0)
    _result(tmp_path, "b", "beta", 0, 85.0, 500)  # no validation split
    rep = report.build_report([tmp_path], tmp_path / "rep")
    assert rep.selection.metric == "test" and {r.method for r in rep.rows if r.on_overall_front} == {"alpha"}
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "fronts selected on test top-1: no validation split recorded" in md
    assert "| beta | resnet8 | synthetic | - | 85.00 | - |" in md
    assert json.loads((tmp_path / "rep" / "summary.json").read_text())["selection"]["metric"] == "test"


def test_hypervolume_per_seed_and_verdicts(tmp_path):
    # dense reference 90 -> y_ref 85; macs_dense 1000, so 250 MACs is x = 2 and 125 MACs is x = 3
    for seed in (0, 1, 2):
        _result(tmp_path, f"d{seed}", "dense", seed, 90.0, 1000)
        _result(tmp_path, f"a{seed}", "alpha", seed, (95.0, 96.0, 97.0)[seed], 250)  # 20, 22, 24
        _result(tmp_path, f"b{seed}", "beta", seed, (95.5, 96.0, 96.5)[seed], 250)  # 21, 22, 23
        _result(tmp_path, f"g{seed}", "gamma", seed, (97.0, 97.5, 98.0)[seed], 125)  # 36, 37.5, 39
    # a dominated configuration of gamma and one below y_ref change nothing
    _result(tmp_path, "g_dom", "gamma", 0, 90.0, 250, cfg=1.0)
    _result(tmp_path, "g_low", "gamma", 0, 80.0, 100, cfg=2.0)
    rep = report.build_report([tmp_path], tmp_path / "rep")
    q = {x.method: x for x in rep.quality}
    assert set(q) == {"alpha", "beta", "gamma"}  # dense sits at x = 0: not ranked
    assert q["alpha"].per_seed == pytest.approx({0: 20.0, 1: 22.0, 2: 24.0})
    assert (q["alpha"].mean, q["alpha"].std) == pytest.approx((22.0, 2.0))
    assert (q["beta"].mean, q["beta"].std) == pytest.approx((22.0, 1.0))
    assert (q["gamma"].mean, q["gamma"].std) == pytest.approx((37.5, 1.5))
    assert q["gamma"].y_ref == pytest.approx(85.0)
    texts = {(v.a.method, v.b.method): v.text for v in rep.verdicts}
    assert texts == {("alpha", "beta"): "level", ("alpha", "gamma"): "gamma > alpha", ("beta", "gamma"): "gamma > beta"}
    assert all(v.note == "" for v in rep.verdicts)

    out = tmp_path / "rep"
    md = (out / "report.md").read_text()
    assert "## Front quality" in md and "minus 5 points" in md
    assert "| resnet8 | synthetic | alpha | 3 | 22.000 ± 2.000 |" in md
    assert "- resnet8/synthetic: **level**: alpha 22.000 ± 2.000 vs beta 22.000 ± 1.000; |gap| 0.000 ≤ spread" in md
    assert "**gamma > alpha**: gamma 37.500 ± 1.500 vs alpha 22.000 ± 2.000; |gap| 15.500 > spread 3.500" in md
    hv = {r["method"]: r for r in read_csv(out / "hypervolume.csv")}
    assert float(hv["gamma"]["hv_mean"]) == pytest.approx(37.5) and hv["gamma"]["seeds"] == "0 1 2"
    assert hv["gamma"]["selection"] == "test"
    assert [r["verdict"] for r in read_csv(out / "verdicts.csv")] == ["level", "gamma > alpha", "gamma > beta"]
    tex = (out / "hypervolume.tex").read_text()
    assert "\\toprule" in tex and "37.500 $\\pm$ 1.500" in tex
    summary = json.loads((out / "summary.json").read_text())
    assert {h["method"]: h["hv_mean"] for h in summary["hypervolume"]} == pytest.approx(
        {"alpha": 22.0, "beta": 22.0, "gamma": 37.5})  # fmt: skip
    assert [v["verdict"] for v in summary["verdicts"]] == ["level", "gamma > alpha", "gamma > beta"]
    t = report.report_tables(rep)
    hv_columns = ["model", "dataset", "method", "n_seeds", "hv_mean", "hv_std", "y_ref", "selection"]
    assert t.hypervolume.columns == hv_columns and len(t.hypervolume.rows) == 3
    assert "gamma > alpha" in t.quality_markdown


def test_single_seed_verdicts_say_there_is_no_spread(tmp_path):
    _result(tmp_path, "a", "alpha", 0, 95.0, 250)  # 2 * (95 - 88) = 14
    _result(tmp_path, "b", "beta", 0, 94.0, 250)  # 2 * (94 - 88) = 12
    _result(tmp_path, "c", "gamma", 0, 94.0, 250)  # the same as beta
    rep = report.build_report([tmp_path], tmp_path / "rep")
    # no dense reference: y_ref = lowest top-1 (94) - 1 = 93
    assert all(q.y_ref == pytest.approx(93.0) and "no dense reference" in q.reference for q in rep.quality)
    texts = {(v.a.method, v.b.method): (v.text, v.note) for v in rep.verdicts}
    assert texts[("alpha", "beta")] == ("single seed, no verdict", "single seed: no spread")  # no ranking
    assert texts[("beta", "gamma")] == ("single seed, no verdict", "single seed: no spread")
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "**single seed, no verdict**: alpha" in md and "single seed: no spread" in md and " > beta" not in md
    _result(tmp_path, "a1", "alpha", 1, 95.0, 250)
    _result(tmp_path, "b1", "beta", 1, 93.0, 250)  # two seeds of alpha and beta, one of gamma
    texts = {(v.a.method, v.b.method): v.text for v in report.build_report([tmp_path], tmp_path / "rep").verdicts}
    assert texts[("alpha", "beta")] == "alpha > beta" and texts[("alpha", "gamma")] == "single seed, no verdict"


def test_verdicts_on_validation_use_validation_top1(tmp_path):
    # test top-1 says alpha's fronts are far better; validation says beta's are, by more than the spread
    for seed in (0, 1):
        _result(tmp_path, f"d{seed}", "dense", seed, 90.0, 1000, val_top1=90.0)
        _result(tmp_path, f"a{seed}", "alpha", seed, 99.0, 500, val_top1=86.0 + seed * 0.5)
        _result(tmp_path, f"b{seed}", "beta", seed, 86.0, 500, val_top1=89.0 + seed * 0.5)
    val = report.build_report([tmp_path], tmp_path / "val")
    assert [v.text for v in val.verdicts] == ["beta > alpha"]
    assert {q.method: q.mean for q in val.quality} == pytest.approx({"alpha": 1.25, "beta": 4.25})
    test = report.build_report([tmp_path], tmp_path / "test", select="test")
    assert [v.text for v in test.verdicts] == ["alpha > beta"]


def _three_methods(root: Path) -> None:
    """Dense, alpha and beta over two seeds, alpha and beta driven to a 2x target (alpha reached 4x)."""
    for seed in (0, 1):
        _result(root, f"d{seed}", "dense", seed, 90.0, 1000)
        _result(root, f"a{seed}", "alpha", seed, 95.0 + seed, 250, method_details={"speedup_target": 2.0})
        _result(root, f"b{seed}", "beta", seed, 92.0 + seed, 500, method_details={"speedup_target": 2.0})


@pytest.mark.slow
def test_wandb_offline_logs_the_hypervolume_matched_and_paired_tables(tmp_path):
    _three_methods(tmp_path / "runs")
    wdir = tmp_path / "wandb_report"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(WANDB_MODE="offline", WANDB_DIR=str(wdir), WANDB_BASE_URL="http://127.0.0.1:9", WANDB_SILENT="true",
               HOME=str(tmp_path), OMP_NUM_THREADS="1")  # fmt: skip
    proc = subprocess.run([*svdbench_cmd(), "report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep"),
                           "--wandb"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (run,) = sorted((wdir / "wandb").glob("offline-run-*"))
    logged = {p.name.split("_")[0]: p for p in (run / "files" / "media" / "table").glob("*.table.json")}
    assert {"comparison", "pareto", "hypervolume", "matched", "paired"} <= set(logged)
    hv = json.loads(logged["hypervolume"].read_text())
    assert hv["columns"] == render.header(tables.QUALITY, TYPED)
    assert [(r[2], r[3]) for r in hv["data"]] == [("alpha", 2), ("beta", 2)]
    local = report.report_tables(report.build_report([tmp_path / "runs"], tmp_path / "again"))
    for name in ("matched", "paired"):
        t = json.loads(logged[name].read_text())
        assert t["columns"] == getattr(local, name).columns and len(t["data"]) == len(getattr(local, name).rows) > 0
    assert json.loads(logged["paired"].read_text())["data"][0][-2] == "alpha above beta at 2x"


@pytest.mark.filterwarnings("ignore:Pydantic V1 style:DeprecationWarning")  # inside wandb_workspaces
def test_wandb_report_shows_front_quality(tmp_path, saved_wandb_report):
    """The saved W&B Report (save() intercepted, no network) ends with the hypervolume table and the verdicts."""
    import wandb_workspaces.reports.v2 as wr

    _three_methods(tmp_path / "runs")
    doc = saved_wandb_report(report.build_report([tmp_path / "runs"], tmp_path / "rep"))
    grids = [b for b in doc.blocks if isinstance(b, wr.PanelGrid)]
    assert [p.table_name for p in grids[2].panels] == ["hypervolume"]
    assert any(isinstance(b, wr.MarkdownBlock) and "**alpha > beta**" in b.text for b in doc.blocks)
    assert [p.table_name for p in grids[3].panels] == ["matched", "paired"]
