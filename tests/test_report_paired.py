"""Matched targets and paired verdicts (svdbench.report.matched): the target a run was driven to, the
matched table's cells, the Student-t interval of the per-seed differences against a hand computation,
a case the unpaired rule calls level and the paired one does not, shared seeds, --reference, and the
report without any target."""

import json
import math
from pathlib import Path

import pytest

from svdbench import cli, report
from svdbench.report import matched_tables
from svdbench.report.matched import Paired, interval, t_quantile, target_of
from svdbench.results import RunRecord

#: Student's t quantile t_{0.975, 2} (tables; scipy.stats.t.ppf(0.975, 2) = 4.302652729...)
T_975_2 = 4.302653


def _result(root: Path, name: str, method: str, seed: int, top1: float, macs: int = 500, *, target=None,
            detail_target=None, knob: float = 0.0, realized: float | None = None, noisy: bool = False,
            **extra):  # fmt: skip
    """A completed results.json (dense MACs 1000): ``target`` as config.method.speedup, ``detail_target`` as
    method_details.speedup_target, ``realized`` as latency.runs[onnxruntime/cpu].speedup[64] (flagged ``noisy``)."""
    cfg = {"knob": knob, **({"speedup": target} if target is not None else {})}
    data = {"status": "completed", "method": method, "model": "resnet8", "dataset": "synthetic", "seed": seed,
            "config": {"seed": seed, "method": cfg}, "top1": top1, "macs": macs, "macs_dense": 1000,
            "params": 10, "params_dense": 100, **extra}  # fmt: skip
    if detail_target is not None:
        data["method_details"] = {"speedup_target": detail_target}
    if realized is not None:
        data["latency"] = {"runs": {"onnxruntime/cpu": {"speedup": {"64": realized}, "noisy": ["64"] * noisy}}}
    (root / name).mkdir(parents=True)
    (root / name / "results.json").write_text(json.dumps(data))


def _rec(method_cfg: dict, details: dict | None = None) -> RunRecord:
    return RunRecord("completed", "m", "resnet8", "synthetic", 0, {"method": method_cfg}, method_details=details)


def test_the_target_is_the_configs_speedup_else_the_methods_details():
    assert target_of(_rec({"speedup": 2.0}, {"speedup_target": 3.0})) == 2.0
    assert target_of(_rec({"speedup": None}, {"speedup_target": 3})) == 3.0
    assert target_of(_rec({"energy": 0.5}, {"speedup_target": 1.5})) == 1.5
    assert target_of(_rec({"energy": 0.5})) is None and target_of(_rec({"energy": 0.5}, {"speedup": 2.0})) is None
    assert target_of(_rec({"speedup": "2x"})) is None and target_of(_rec({"speedup": True})) is None


def test_the_paired_interval_is_the_hand_computation():
    mean, std, half = interval([0.5, 0.7, 0.6])
    hand_mean = (0.5 + 0.7 + 0.6) / 3
    hand_std = math.sqrt(sum((d - hand_mean) ** 2 for d in (0.5, 0.7, 0.6)) / (3 - 1))
    assert (mean, std) == pytest.approx((0.6, 0.1)) and (hand_mean, hand_std) == pytest.approx((0.6, 0.1))
    assert t_quantile(3) == pytest.approx(T_975_2, abs=1e-6)
    assert half == pytest.approx(T_975_2 * hand_std / math.sqrt(3), abs=1e-6)
    assert half == pytest.approx(0.248414, abs=1e-6)
    p = Paired(("resnet8", "synthetic", 1000), 2.0, "alpha", "beta", [0, 1, 2], [0, 1, 2], {0: 0.5, 1: 0.7, 2: 0.6})
    assert (p.low, p.high) == pytest.approx((0.6 - 0.248414, 0.6 + 0.248414), abs=1e-6)
    assert p.verdict == "alpha above beta at 2x" and p.note == ""
    flipped = Paired(p.task, 1.5, "beta", "alpha", p.seeds_a, p.seeds_b, {s: -d for s, d in p.diffs.items()})
    assert flipped.verdict == "alpha above beta at 1.5x"
    wide = Paired(p.task, 2.0, "alpha", "beta", [0, 1], [0, 1], {0: 1.0, 1: -0.5})
    assert wide.low < 0 < wide.high and wide.verdict == "level"
    one = Paired(p.task, 2.0, "alpha", "beta", [0], [0], {0: 3.0})
    assert (one.verdict, one.half, one.low) == ("single seed, no verdict", None, None)


def _moving_together(root: Path) -> None:
    """Three seeds whose accuracies move with the seed (one dense start per seed): alpha is 0.5, 0.7, 0.6 above
    beta in each seed, while both spread by 10 points over the seeds. Both at 2x (500 of 1000 MACs); alpha's
    target is its config's, beta's its method_details'. Dense (60) puts y_ref at 55."""
    for seed, base in enumerate((80.0, 90.0, 98.8)):
        _result(root, f"d{seed}", "dense", seed, 60.0, 1000)
        _result(root, f"a{seed}", "alpha", seed, base + (0.5, 0.7, 0.6)[seed], target=2.0, realized=1.5)
        _result(root, f"b{seed}", "beta", seed, base, detail_target=2.0)


def test_paired_finds_what_the_unpaired_rule_calls_level(tmp_path):
    _moving_together(tmp_path / "runs")
    rep = report.build_report([tmp_path / "runs"], tmp_path / "rep")
    (alpha, beta) = rep.targets.matched
    a, b = alpha.cells[2.0], beta.cells[2.0]
    assert (alpha.method, beta.method, a.seeds, b.seeds) == ("alpha", "beta", [0, 1, 2], [0, 1, 2])
    # the unpaired rule: the mean gap (0.6) is far below std_A + std_B (about 20): level
    assert a.mean - b.mean == pytest.approx(0.6) and abs(a.mean - b.mean) < a.std + b.std
    (hv_verdict,) = rep.verdicts  # the hypervolume verdict, on the same runs, is the unpaired rule: level
    assert hv_verdict.text == "level"
    # paired: the same 0.5, 0.7, 0.6 in every seed
    (p,) = rep.targets.paired
    assert p.diffs == pytest.approx({0: 0.5, 1: 0.7, 2: 0.6})
    assert (p.mean, p.std, p.n) == pytest.approx((0.6, 0.1, 3))
    assert p.low == pytest.approx(0.6 - T_975_2 * 0.1 / math.sqrt(3), abs=1e-5) and p.low > 0
    assert p.verdict == "alpha above beta at 2x"

    out = tmp_path / "rep"
    md = (out / "report.md").read_text()
    assert md.index("## Front quality") < md.index("## Matched targets") < md.index("## Paired verdicts")
    assert md.index("## Paired verdicts") < md.index("## Failed")
    assert "| resnet8 | synthetic | alpha | 90.20 ± 9.46 (1.50x) |" in md  # realized where measured
    assert "| resnet8 | synthetic | beta | 89.60 ± 9.41 |" in md  # none measured: no realized speed-up
    assert "| 2x | alpha | beta | 3 | +0.60 ± 0.10 | [+0.35, +0.85] | alpha above beta at 2x |  |" in md
    assert {p.name for p in out.iterdir()} >= {"matched.md", "matched.csv", "matched.tex", "paired.csv", "paired.tex"}
    paired_csv = (out / "paired.csv").read_text().splitlines()
    assert paired_csv[1].startswith("resnet8,synthetic,1000,2,alpha,beta,3,0 1 2,0.6000,0.1000,")
    assert ",4.302653,0.3516,0.8484,alpha above beta at 2x," in paired_csv[1]
    summary = json.loads((out / "summary.json").read_text())
    (sp,) = summary["paired"]
    assert (sp["a"], sp["b"], sp["n"], sp["verdict"]) == ("alpha", "beta", 3, "alpha above beta at 2x")
    assert sp["ci_low"] == pytest.approx(p.low) and sp["diffs"] == pytest.approx({"0": 0.5, "1": 0.7, "2": 0.6})
    assert [m["method"] for m in summary["matched"]] == ["alpha", "beta"]
    assert summary["matched"][0]["cells"][0]["realized_speedup"] == 1.5
    assert summary["matched"][1]["cells"][0]["realized_speedup"] is None


def test_shared_seeds_n_and_the_reached_speedup(tmp_path):
    # alpha: seeds 0 1 2 at 2x, reaching 2.5x (400 MACs: > 2 % off); beta: seeds 0 1 at 2x and seed 0 at 3x
    for seed in (0, 1, 2):
        _result(tmp_path, f"a{seed}", "alpha", seed, 90.0 + seed, 400, target=2.0)
    for seed in (0, 1):
        _result(tmp_path, f"b{seed}", "beta", seed, 89.0 + 2 * seed, 505, target=2.0)  # 1.98x: within 2 %
    _result(tmp_path, "b3", "beta", 0, 80.0, 333, target=3.0, knob=1.0)
    rep = report.build_report([tmp_path], tmp_path / "rep")
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| model | dataset | method | 2x | 3x |" in md
    assert "| resnet8 | synthetic | alpha | 91.00 ± 1.00 (MACs 2.50x) | - |" in md
    assert "| resnet8 | synthetic | beta | 90.00 ± 1.41 (n=2) | 80.00 (n=1) |" in md
    (p,) = rep.targets.paired  # only 2x has two methods
    assert (p.seeds, p.n, p.note) == ([0, 1], 2, "shared seeds 0 1 (alpha has 0 1 2)")
    assert p.diffs == {0: 1.0, 1: 0.0} and p.verdict == "level" and p.std == pytest.approx(math.sqrt(0.5))
    assert "shared seeds 0 1 (alpha has 0 1 2)" in md


def test_reference_compares_every_method_with_it(tmp_path):
    for seed in (0, 1, 2):
        for i, m in enumerate(("alpha", "beta", "gamma")):
            _result(tmp_path, f"{m}{seed}", m, seed, 90.0 + i + seed * 0.1 * i, target=2.0)
        _result(tmp_path, f"a3x{seed}", "alpha", seed, 80.0, 333, target=3.0, knob=1.0)
    every = report.build_report([tmp_path], tmp_path / "every")
    assert [(p.a, p.b) for p in every.targets.paired] == [("alpha", "beta"), ("alpha", "gamma"), ("beta", "gamma")]
    rep = report.build_report([tmp_path], tmp_path / "rep", reference="beta")
    assert [(p.target, p.a, p.b) for p in rep.targets.paired] == [(2.0, "alpha", "beta"), (2.0, "gamma", "beta")]
    assert [p.verdict for p in rep.targets.paired] == ["beta above alpha at 2x", "gamma above beta at 2x"]
    assert "each method against the reference beta" in (tmp_path / "rep" / "report.md").read_text()


def test_an_unknown_reference_is_a_one_line_error_naming_the_choices(tmp_path, capsys):
    for seed in (0, 1):
        _result(tmp_path / "runs", f"a{seed}", "alpha", seed, 90.0, target=2.0)
        _result(tmp_path / "runs", f"b{seed}", "beta", seed, 89.0, detail_target=2.0)
        _result(tmp_path / "runs", f"d{seed}", "dense", seed, 95.0, 1000)
    out = tmp_path / "rep"
    assert cli.main(["report", str(tmp_path / "runs"), "--out", str(out), "--reference", "dense"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --reference 'dense': not a method with runs at a target speed-up; one of: alpha, beta"
    assert not out.exists()  # nothing written
    assert cli.main(["report", str(tmp_path / "runs"), "--out", str(out), "--reference", "alpha"]) == 0


def test_several_configurations_at_one_target_are_told_apart(tmp_path):
    for seed in (0, 1):
        for knob, top1 in ((0.0, 90.0), (1.0, 91.0)):
            _result(tmp_path, f"a{knob}_{seed}", "alpha", seed, top1 + seed, target=2.0, knob=knob)
    rep = report.build_report([tmp_path], tmp_path / "rep")
    assert [m.method for m in rep.targets.matched] == ["alpha (knob=0)", "alpha (knob=1)"]
    (p,) = rep.targets.paired
    # the same gap in every seed: a zero-width interval, which excludes zero
    assert (p.mean, p.std, p.half) == (-1.0, 0.0, 0.0) and p.verdict == "alpha (knob=1) above alpha (knob=0) at 2x"
    with pytest.raises(ValueError, match=r"one of: alpha \(knob=0\), alpha \(knob=1\)$"):
        report.build_report([tmp_path], tmp_path / "rep2", reference="alpha")


def test_without_targets_the_sections_say_so_and_no_file_is_written(tmp_path):
    for seed in (0, 1):
        _result(tmp_path, f"a{seed}", "alpha", seed, 90.0)
        _result(tmp_path, f"b{seed}", "beta", seed, 89.0)
    rep = report.build_report([tmp_path], tmp_path / "rep")
    out = tmp_path / "rep"
    assert not [p for p in out.iterdir() if p.stem in ("matched", "paired")]
    md = (out / "report.md").read_text()
    no_matched = "No run has a target speed-up (`config.method.speedup`, else `method_details.speedup_target`)"
    assert f"## Matched targets\n\n{no_matched}: no matched table.\n" in md
    assert "## Paired verdicts\n\nNo run has a target speed-up: no paired verdicts.\n" in md
    summary = json.loads((out / "summary.json").read_text())
    assert summary["matched"] == [] and summary["paired"] == []
    t = report.report_tables(rep)
    assert t.matched.rows == [] and t.paired.rows == [] and "no matched table" in t.targets_markdown
    with pytest.raises(ValueError, match="no run has a target speed-up"):
        report.build_report([tmp_path], tmp_path / "rep2", reference="alpha")


def test_the_wandb_tables_are_the_files_columns(tmp_path):
    _moving_together(tmp_path / "runs")
    rep = report.build_report([tmp_path / "runs"], tmp_path / "rep")
    t = report.report_tables(rep)
    assert t.matched.columns == ["model", "dataset", "method", "top1_mean_2x", "top1_std_2x", "n_seeds_2x",
                                 "realized_speedup_2x", "macs_speedup_2x"]  # fmt: skip
    assert t.matched.rows[0][:4] == ["resnet8", "synthetic", "alpha", pytest.approx(90.2)]
    assert t.matched.rows[0][6] == 1.5 and t.matched.rows[1][6] is None
    assert t.paired.columns[:5] == ["model", "dataset", "target", "method_a", "method_b"]
    assert t.paired.rows[0][-2:] == ["alpha above beta at 2x", ""]
    assert t.targets_markdown == matched_tables.targets_markdown(rep.targets)
    assert "## Matched targets" in t.targets_markdown and "## Paired verdicts" in t.targets_markdown


@pytest.mark.filterwarnings("ignore:Pydantic V1 style:DeprecationWarning")  # inside wandb_workspaces
def test_the_wandb_report_shows_matched_targets(tmp_path, saved_wandb_report):
    """The saved W&B Report (save() intercepted, no network) has the matched and paired tables and their text."""
    import wandb_workspaces.reports.v2 as wr

    _moving_together(tmp_path / "runs")
    doc = saved_wandb_report(report.build_report([tmp_path / "runs"], tmp_path / "rep"))
    grids = [b for b in doc.blocks if isinstance(b, wr.PanelGrid)]
    assert [p.table_name for p in grids[-1].panels] == ["matched", "paired"]
    assert any(isinstance(b, wr.MarkdownBlock) and "alpha above beta at 2x" in b.text for b in doc.blocks)


def test_a_realized_speed_up_a_seed_flagged_as_noisy_is_marked_in_the_matched_table(tmp_path):
    for seed in range(2):
        _result(tmp_path / "runs", f"a{seed}", "alpha", seed, 90.0, target=2.0, realized=1.5, noisy=seed == 1)
        _result(tmp_path / "runs", f"b{seed}", "beta", seed, 90.0, target=2.0, realized=1.2)
    report.build_report([tmp_path / "runs"], tmp_path / "rep")
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| alpha | 90.00 ± 0.00 (1.50x noisy) |" in md and "| beta | 90.00 ± 0.00 (1.20x) |" in md
    assert "`noisy` where a seed's timing rounds disagreed by more than 20 %" in md
