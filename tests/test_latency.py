"""Latency measurement and ONNX export: structure and sanity of the figures, ONNX against PyTorch,
the pipeline's ``latency`` record. No timing ratio is asserted here (machines are noisy):
``benchmarks/`` measures those."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import svdbench
from svdbench import latency, onnx_export, summary, timing
from svdbench.config import MeasureConfig
from svdbench.methods import Dense, SVDTraining
from svdbench.models import build_model
from svdbench.pipeline import run_experiment

ROOT = Path(__file__).resolve().parents[1]
STATS = {"median_ms", "p10_ms", "p25_ms", "p75_ms", "p90_ms", "mean_ms", "images_per_s", "repeats", "warmup"}


def deployed_resnet8(in_channels=1, energy=0.3):
    net = build_model("cifar_resnet", "resnet8", 10, in_channels)
    svdbench.decompose(net, "channel", "svd")
    svdbench.prune(net, energy=energy)
    return svdbench.export(net).eval()


def check_stats(by_batch, sizes):
    assert set(by_batch) == {str(b) for b in sizes}
    for b, st in by_batch.items():
        assert STATS <= st.keys()
        assert 0 < st["p10_ms"] <= st["median_ms"] <= st["p90_ms"]
        assert st["images_per_s"] == pytest.approx(int(b) / (st["median_ms"] / 1e3))
        assert st["repeats"] >= 1


def test_time_callable_adapts_and_orders_percentiles():
    calls = []
    st = timing.time_callable(lambda: calls.append(1), 4, max_seconds=0.05, warmup=2, max_repeats=7)
    assert st["repeats"] == 7 and len(calls) == 2 + 7  # a free call fills the cap
    assert st["p10_ms"] <= st["median_ms"] <= st["p90_ms"]
    fixed = timing.time_callable(lambda: None, 1, repeats=3, warmup=0)
    assert fixed["repeats"] == 3 and fixed["warmup"] == 0
    with pytest.raises(ValueError):
        timing.time_callable(lambda: None, 0)


def test_call_stats_quartiles_match_numpy():
    ms = [5.0, 1.0, 3.0, 9.0, 7.0, 2.0, 8.0]
    st = timing.call_stats(ms, 4, 2)
    for q in (10, 25, 75, 90):
        assert st[f"p{q}_ms"] == pytest.approx(float(np.percentile(ms, q)))
    assert (st["median_ms"], st["repeats"], st["warmup"]) == (5.0, 7, 2)


def fake_measure(per_round_ms):
    """A measure function (timing -> measure_latency-shaped dict) whose k-th call takes per_round_ms[k] ms."""
    calls = iter(per_round_ms)

    def measure(t):
        ms = next(calls)
        st = timing.call_stats([ms, ms], 8, 1)
        return {"runtime": "fake", "device": "cpu", "threads": 1, "by_batch": {"8": {**st, "times_ms": [ms, ms]}}}

    return measure


def test_models_timed_in_turn_pool_the_rounds_and_record_each_rounds_ratio():
    dep, den, ratios = timing.in_turn(fake_measure([1.0, 1.0, 1.0]), fake_measure([2.0, 2.0, 2.2]), timing.Timing())
    assert ratios == {"8": pytest.approx([2.0, 2.0, 2.2])} and not timing.noisy(ratios["8"])
    assert den["by_batch"]["8"]["median_ms"] == 2.0 and den["by_batch"]["8"]["repeats"] == 6  # pooled
    assert "times_ms" not in den["by_batch"]["8"] and dep["rounds"] == 3
    # the load changed while the dense model was timed: rounds 1.0x, 2.0x, 2.0x
    pair = latency._pair(*timing.in_turn(fake_measure([1, 1, 1]), fake_measure([1, 2, 2]), timing.Timing()), None)
    assert pair["noisy"] == ["8"] and pair["speedup"] == {"8": pytest.approx(2.0)}
    assert summary.speedups_text(pair) == "2.00x at batch 8 (noisy: rounds 1.00-2.00x, not to be trusted)"
    # rounds that agree (1.0x each) while their pooled medians do not (dense 1 ms against 2 ms in every other call)
    pooled = latency._pair({"by_batch": {"8": {"median_ms": 2.0}}}, {"by_batch": {"8": {"median_ms": 1.0}}},
                           {"8": [1.0, 1.0, 1.0]}, None)  # fmt: skip
    assert pooled["speedup"] == {"8": 0.5} and pooled["noisy"] == ["8"]
    steady = latency._pair(*timing.in_turn(fake_measure([1, 1, 1]), fake_measure([2, 2, 2]), timing.Timing()), None)
    assert summary.speedups_text(steady) == "2.00x at batch 8"


def test_a_round_has_its_share_of_the_budget():
    seen = []
    measure = fake_measure([1.0] * 6)
    timing.in_turn(lambda t: seen.append(t) or measure(t), lambda t: seen.append(t) or measure(t),
                   timing.Timing(max_seconds=3.0, min_repeats=5, max_repeats=50))  # fmt: skip
    assert len(seen) == 6 and {(t.max_seconds, t.min_repeats, t.max_repeats) for t in seen} == {(1.0, 2, 17)}


def test_onnx_export_does_not_import_latency():
    code = "import sys, svdbench.onnx_export as m; print('svdbench.latency' in sys.modules, m.Timing.__module__)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert proc.stdout.split() == ["False", "svdbench.timing"], proc.stderr


def test_measure_latency_structure_and_training_flag_restored():
    net = build_model("cifar_resnet", "resnet8", 10, 1).train()
    rng = torch.get_rng_state()
    res = latency.measure_latency(net, (1, 1, 16, 16), batch_sizes=(1, 8), timing=timing.Timing(max_seconds=0.2))
    assert torch.equal(rng, torch.get_rng_state())  # the global random stream is untouched
    assert net.training
    assert res["runtime"] == "pytorch-eager" and res["device"] == "cpu"
    assert res["threads"] == torch.get_num_threads() and res["input_shape"] == [1, 16, 16]
    check_stats(res["by_batch"], (1, 8))
    with pytest.raises(ValueError):
        latency.measure_latency(net, (1, 28, 28), batch_sizes=())


def test_latency_report_pairs_deployed_with_dense():
    dense = build_model("cifar_resnet", "resnet8", 10, 1)
    rep = latency.latency_report(deployed_resnet8(), dense, (1, 16, 16), batch_sizes=[1, 4], max_seconds=0.1,
                                 mac_speedup=2.0)  # fmt: skip
    run = rep["runs"]["pytorch-eager/cpu"]
    check_stats(run["deployed"], (1, 4))
    check_stats(run["dense"], (1, 4))
    for b in ("1", "4"):
        assert run["speedup"][b] == pytest.approx(run["dense"][b]["median_ms"] / run["deployed"][b]["median_ms"])
        assert run["realized_over_mac"][b] == pytest.approx(run["speedup"][b] / 2.0)
    assert rep["batch_sizes"] == [1, 4] and rep["skipped"] == {}


def test_run_latency_builds_the_dense_reference_without_touching_the_random_stream():
    built = []

    def make_dense():
        built.append(build_model("cifar_resnet", "resnet8", 10, 1))  # random initialisation draws from the RNG
        return built[-1]

    measure = MeasureConfig(batch_sizes=[2], max_seconds=0.05, onnx=False)
    deployed = deployed_resnet8()
    rng = torch.get_rng_state()
    rep = latency.run_latency(deployed, make_dense, (1, 1, 16, 16), "cpu", measure, mac_speedup=2.0)
    assert torch.equal(rng, torch.get_rng_state()) and len(built) == 1
    assert list(rep["runs"]) == ["pytorch-eager/cpu"] and rep["mac_speedup"] == 2.0
    check_stats(rep["runs"]["pytorch-eager/cpu"]["dense"], (2,))

    def broken():
        raise RuntimeError("no such model\nsecond line")

    assert latency.run_latency(deployed, broken, (1, 16, 16), "cpu", measure) == {
        "error": "RuntimeError: no such model"
    }


onnx_missing = pytest.mark.skipif(
    __import__("svdbench.onnx_export").onnx_export.unavailable() is not None, reason="onnx/onnxruntime not installed"
)


@onnx_missing
@pytest.mark.parametrize("kind", ["deployed", "dense"])
def test_onnx_export_matches_pytorch(tmp_path, kind, caplog):
    net = deployed_resnet8() if kind == "deployed" else build_model("cifar_resnet", "resnet8", 10, 1).eval()
    path = tmp_path / f"{kind}.onnx"
    caplog.set_level(logging.INFO)
    exp = onnx_export.export_onnx(net, (1, 28, 28), path)
    assert not [r for r in caplog.records if r.name.startswith(("onnxscript", "onnx_ir"))]  # no pass-by-pass log
    assert path.is_file() and exp.exporter in ("dynamo", "torchscript")
    assert exp.max_abs_diff <= exp.tolerance < 1e-2
    sess = onnx_export.session(path)
    x = timing.random_input((1, 28, 28), 5)  # the batch axis is dynamic
    got = torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0])
    with torch.inference_mode():
        assert torch.allclose(got, net(x), atol=1e-4, rtol=1e-4)
    res = onnx_export.measure_onnx_latency(sess, (1, 28, 28), batch_sizes=(1, 4), timing=timing.Timing(max_seconds=0.1))
    assert res["runtime"] == "onnxruntime" and res["threads"] == torch.get_num_threads()
    check_stats(res["by_batch"], (1, 4))


@onnx_missing
def test_onnx_check_detects_a_mismatch(tmp_path, monkeypatch):
    net = build_model("cifar_resnet", "resnet8", 10, 1).eval()
    real = onnx_export.session

    class Wrong:  # a session whose output is off by 1
        def __init__(self, path, threads=None):
            self.s = real(path, threads)

        def run(self, names, feed):
            return [o + 1.0 for o in self.s.run(names, feed)]

    monkeypatch.setattr(onnx_export, "session", Wrong)
    with pytest.raises(onnx_export.OnnxCheckError, match="differs from PyTorch"):
        onnx_export.export_onnx(net, (1, 28, 28), tmp_path / "m.onnx", dynamo=False)


def test_onnx_absence_is_one_skip_line(monkeypatch):
    monkeypatch.setattr(onnx_export, "unavailable", lambda: "not installed: onnxruntime (ImportError)")
    rep = latency.latency_report(deployed_resnet8(), build_model("cifar_resnet", "resnet8", 10, 1), (1, 16, 16),
                                 batch_sizes=[2], max_seconds=0.05, onnx=True)  # fmt: skip
    assert rep["skipped"] == {"onnxruntime/cpu": "not installed: onnxruntime (ImportError)"}
    assert list(rep["runs"]) == ["pytorch-eager/cpu"]


@pytest.mark.slow
def test_compiled_latency_is_timed_beside_eager_and_threads_are_pinned():
    before = torch.get_num_threads()
    dense = build_model("cifar_resnet", "resnet8", 10, 1)
    rep = latency.latency_report(deployed_resnet8(), dense, (1, 16, 16), batch_sizes=[2], max_seconds=0.05,
                                 compile=True, threads=1, mac_speedup=2.0)  # fmt: skip
    assert list(rep["runs"]) == ["pytorch-eager/cpu", "pytorch-compile/cpu"] and rep["skipped"] == {}
    run = rep["runs"]["pytorch-compile/cpu"]
    check_stats(run["deployed"], (2,))
    assert run["speedup"]["2"] == pytest.approx(run["dense"]["2"]["median_ms"] / run["deployed"]["2"]["median_ms"])
    assert rep["threads"] == run["threads"] == 1 and torch.get_num_threads() == before  # restored


def test_a_model_that_does_not_compile_is_one_skip_line(monkeypatch):
    def refuse(model, *a, **kw):
        raise RuntimeError("backend not available")

    monkeypatch.setattr(torch, "compile", refuse)
    rep = latency.latency_report(deployed_resnet8(), build_model("cifar_resnet", "resnet8", 10, 1), (1, 16, 16),
                                 batch_sizes=[2], max_seconds=0.05, compile=True)  # fmt: skip
    assert rep["skipped"] == {"pytorch-compile/cpu": "torch.compile failed: RuntimeError: backend not available"}
    assert list(rep["runs"]) == ["pytorch-eager/cpu"]


def test_measure_config_checks_ranges():
    with pytest.raises(ValueError, match="measure.batch_sizes"):
        MeasureConfig(batch_sizes=[1, 0])
    with pytest.raises(ValueError, match="measure.max_seconds"):
        MeasureConfig(max_seconds=0)


@pytest.mark.slow
def test_pipeline_records_latency(tmp_path, tiny_cfg):
    cfg = tiny_cfg(measure=MeasureConfig(batch_sizes=[1, 8], max_seconds=0.1, onnx=True), save_model=False)
    res = run_experiment(cfg, SVDTraining.create(energy=0.3), tmp_path / "run")
    on_disk = json.loads((tmp_path / "run" / "results.json").read_text())
    lat = on_disk["latency"]
    assert lat == json.loads(json.dumps(res["latency"]))
    assert lat["mac_speedup"] == pytest.approx(res["speedup"]) and lat["batch_sizes"] == [1, 8]
    expected = {"pytorch-eager/cpu"} | ({"onnxruntime/cpu"} if not lat["skipped"] else set())
    assert set(lat["runs"]) == expected
    for run in lat["runs"].values():
        check_stats(run["deployed"], (1, 8))
        check_stats(run["dense"], (1, 8))
        assert set(run["speedup"]) == {"1", "8"} and all(v > 0 for v in run["speedup"].values())
    assert "latency" in on_disk["wall_time"]


@pytest.mark.slow
def test_pipeline_latency_off(tmp_path, tiny_cfg):
    cfg = tiny_cfg(measure=MeasureConfig(latency=False), save_model=False)
    res = run_experiment(cfg, Dense(), tmp_path / "run")
    assert "latency" not in res and res["status"] == "completed"
