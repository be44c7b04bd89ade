"""``method.speedup`` and ``method.speedups`` end to end on the tiny configuration (conf/debug/tiny.yaml),
for SVD training, post-hoc SVD and TRP: the recorded speed-up (fvcore's) reaches the target at the
smallest energy that does (a brute-force scan of the trained model the method compressed), and every
``speedups`` point equals a separate run with that ``speedup``."""

import copy
import json

import pytest
from speedup_scan import assert_smallest, brute_force

from svdbench import preflight
from svdbench.methods.svd import SpeedupTargets
from svdbench.pipeline import run_experiment

pytestmark = pytest.mark.slow

METHODS = ("svd", "svd_posthoc", "trp")
#: what a point and a separate run with its speedup must share (not times, paths, config, point_of)
SAME = ("status", "top1", "val_top1", "macs", "macs_total", "params", "speedup", "ranks", "stage_top1", "history",
        "method_details")  # fmt: skip


@pytest.mark.parametrize("method", METHODS)
def test_the_run_reaches_the_target_at_the_smallest_energy(method, tmp_path, compose_cfg, tiny, monkeypatch):
    seen = []
    search = SpeedupTargets.target_energy

    def capture(self, model):  # the decomposed, trained model compress searches on
        seen.append(copy.deepcopy(model))
        return search(self, model)

    monkeypatch.setattr(SpeedupTargets, "target_energy", capture)
    plan = preflight.plan(compose_cfg([*tiny(), f"method={method}", "method.speedup=2"]))
    res = run_experiment(plan.cfg, plan.method, tmp_path / "run")
    details = res["method_details"]
    assert res["status"] == "completed" and res["speedup"] >= 2 and len(seen) == 1
    assert details["speedup_reached"] == res["speedup"] == res["macs_dense"] / res["macs"]
    assert details["speedup_target"] == 2.0 and res["config"]["method"]["speedup"] == 2.0
    assert res["config"]["method"]["energy"] is None and res["config"]["method"]["threshold"] is None
    scan = brute_force(seen[0], res["macs_dense"], round_to=1, merge=True, shape=res["input_shape"])
    assert_smallest(details["energy_used"], details["speedup_reached"], scan, 2.0)


def read(run_dir):
    res = json.loads((run_dir / "results.json").read_text())
    return {k: res.get(k) for k in SAME}


@pytest.mark.parametrize("method", METHODS)
def test_speedups_points_equal_separate_runs(method, tmp_path, run_py, tiny):
    def run(name, *overrides):
        out = tmp_path / name
        proc = run_py(*tiny(), f"method={method}", *overrides, f"hydra.run.dir={out}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        return out

    points = run("points", "method.speedups=[1.5,2]")
    assert sorted(p.name for p in points.iterdir() if (p / "results.json").exists()) == ["speedup_1.5", "speedup_2"]
    main = json.loads((points / "results.json").read_text())
    assert [p["label"] for p in main["operating_points"]] == ["speedup_1.5", "speedup_2"]
    assert "energy_used" not in main["method_details"]  # the main result keeps its energy (or threshold)
    targets = (1.5, 2) if method == "svd" else (2,)
    for x in targets:
        alone = read(run(f"speedup_{x}", f"method.speedup={x}"))
        point = read(points / f"speedup_{x:g}")
        assert point == alone and point["speedup"] >= x and point["method_details"]["speedup_target"] == x
    low, high = (json.loads((points / f"speedup_{x}" / "results.json").read_text()) for x in ("1.5", "2"))
    assert low["method_details"]["energy_used"] <= high["method_details"]["energy_used"]
    assert low["macs"] >= high["macs"]
