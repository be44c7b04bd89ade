"""Measured latency as the report's cost axis (``svdbench report --x latency``) and timing finished
runs after the fact (``svdbench latency``)."""

import json
from pathlib import Path

import pytest

from svdbench import cli, report
from svdbench.axes import MACS, latency_axis


def _result(root: Path, name: str, method: str, top1: float, macs: int, lat: float | None, dense_lat: float = 8.0,
            cfg: float = 0.0):  # fmt: skip
    """A completed results.json whose onnxruntime figures at batch 64 are ``lat`` (deployed) and ``dense_lat``."""
    data = {"status": "completed", "method": method, "model": "resnet8", "dataset": "synthetic", "seed": 0,
            "config": {"seed": 0, "method": {"knob": cfg}}, "top1": top1, "macs": macs, "macs_dense": 1000,
            "params": 10, "params_dense": 100}  # fmt: skip
    if lat is not None:
        data["latency"] = {"threads": 1, "runs": {"onnxruntime/cpu": {
            "deployed": {"64": {"median_ms": lat}}, "dense": {"64": {"median_ms": dense_lat}}}}}  # fmt: skip
    (root / name).mkdir(parents=True)
    (root / name / "results.json").write_text(json.dumps(data))


def test_the_latency_axis_puts_fronts_tables_and_hypervolume_on_measured_time(tmp_path):
    # alpha has fewer MACs but runs slower than beta: the MAC front and the latency front disagree
    _result(tmp_path, "d", "dense", 90.0, 1000, 8.0)
    _result(tmp_path, "a", "alpha", 88.0, 500, 10.0)
    _result(tmp_path, "b", "beta", 88.0, 800, 4.0)
    on_macs = report.build_report([tmp_path], tmp_path / "macs")
    on_time = report.build_report([tmp_path], tmp_path / "lat", axis=latency_axis("onnxruntime/cpu", 64))
    front = lambda rep: {r.method for r in rep.rows if r.on_overall_front and r.method != "dense"}  # noqa: E731
    assert front(on_macs) == {"alpha"} and front(on_time) == {"beta"}
    beta = next(r for r in on_time.rows if r.method == "beta")
    assert (beta.mean("x"), beta.mean("xspeed")) == (4.0, 2.0)  # the recorded median; dense 8 ms / 4 ms
    hv = {q.method: q.mean for q in on_time.quality}
    assert hv["alpha"] == 0.0 and hv["beta"] == pytest.approx(1.0 * (88.0 - 85.0))  # log2(2) x (88 - y_ref 85)
    md = (tmp_path / "lat" / "report.md").read_text()
    assert "| latency (ms) | realized speed-up |" in md and "| 4.000 | 2.00x |" in md
    assert "log2 of the realized speed-up (dense / deployed median latency, onnxruntime/cpu, batch 64)" in md
    assert "latency_ms_mean" in (tmp_path / "lat" / "comparison.csv").read_text().splitlines()[0]
    assert "latency (ms)" not in (tmp_path / "macs" / "report.md").read_text()  # the MAC report is unchanged


def test_runs_without_latency_are_left_out_with_one_warning(tmp_path, capsys):
    _result(tmp_path, "a", "alpha", 88.0, 500, 10.0)
    _result(tmp_path, "b", "beta", 87.0, 400, None)
    _result(tmp_path, "c", "beta", 86.0, 300, None, cfg=1.0)
    rep = report.build_report([tmp_path], tmp_path / "rep", axis=latency_axis("onnxruntime/cpu", 64))
    warnings = [x for x in capsys.readouterr().err.splitlines() if x.startswith("warning")]
    assert len(warnings) == 1 and "2 of 3 runs have no latency figure for onnxruntime/cpu at batch 64" in warnings[0]
    assert [r.method for r in rep.rows] == ["alpha"]
    assert cli.main(["report", str(tmp_path), "--out", str(tmp_path / "r2"), "--x", "latency", "--batch", "1"]) == 1
    assert cli.main(["report", str(tmp_path), "--x", "latency", "--runtime", "tpu"]) == 2
    assert MACS.missing(rep.rows[0].runs[0].rec) is None


@pytest.mark.slow
def test_latency_command_times_finished_runs_and_keeps_everything_else(tmp_path, run_py, tiny, capsys):
    out = tmp_path / "run"
    proc = run_py(*tiny("save_model", "measure"), "save_model=true", "measure.latency=false", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    before = json.loads((out / "results.json").read_text())
    assert before.get("latency") is None
    args = ["latency", str(out), "--batch-sizes", "2", "--max-seconds", "0.05", "--threads", "1"]
    assert cli.main(args) == 0
    after = json.loads((out / "results.json").read_text())
    lat = after.pop("latency")
    assert {k: v for k, v in before.items() if k != "latency"} == after  # every other key as it was
    run = lat["runs"]["pytorch-eager/cpu"]
    assert lat["threads"] == run["threads"] == 1 and lat["mac_speedup"] == before["speedup"]
    assert run["speedup"]["2"] == pytest.approx(run["dense"]["2"]["median_ms"] / run["deployed"]["2"]["median_ms"])
    assert cli.main(args) == 0 and "skipped (has latency" in capsys.readouterr().out
    rep = report.build_report([out], tmp_path / "rep", axis=latency_axis("pytorch-eager/cpu", 2))
    assert rep.rows[0].mean("x") == run["deployed"]["2"]["median_ms"]
