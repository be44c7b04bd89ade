"""Sweep presets (conf/sweep), launcher presets (conf/hydra/launcher), the Optuna multi-objective sweep,
and failed jobs in a multirun: recorded in results.json, never stopping the other jobs."""

import itertools
import json
from pathlib import Path

import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from svdbench import app
from svdbench.methods import METHODS

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
#: the studies' shared parts (study_budget, study_data, vit_budget, vit_data), included by them, not sweeps of their own
PARTS = ("study_budget", "study_data", "vit_budget", "vit_data")
SWEEPS = sorted(p.stem for p in (CONF / "sweep").glob("*.yaml") if p.stem not in PARTS)


def axis(key: str, values: str) -> list[str]:
    """The values of one basic-sweeper axis (``a,b,c``, ``range(...)`` or a single value)."""
    override = OverridesParser.create().parse_overrides([f"{key}={values}"])[0]
    return list(override.sweep_string_iterator()) if override.is_sweep_override() else [str(values)]


def corners(params: dict) -> list[list[str]]:
    """Override lists for the first and last value of every axis of a basic-sweeper grid."""
    axes = []
    for key, values in params.items():
        vals = axis(key, values)
        axes.append([f"{key}={v}" for v in dict.fromkeys([vals[0], vals[-1]])])
    # the method group choice first, as Hydra applies it
    axes.sort(key=lambda a: not a[0].startswith("method="))
    return [list(c) for c in itertools.product(*axes)]


def test_every_preset_is_tested():
    assert {"svd_grid", "svd_grid_l1", "svd_grid_hoyer_square", "svd_energies", "dense", "prune_ratio",
            "prune_speedup", "trp_grid", "optuna_pareto"} <= set(SWEEPS)  # fmt: skip


#: presets that compose only once the runs they read exist (study_scratch: study_svd's architectures)
LATER = ("optuna_pareto", "study_scratch")


@pytest.mark.parametrize("name", [s for s in SWEEPS if s not in LATER])
def test_grid_preset_composes_at_every_corner(name, compose_cfg, build):
    cfg = compose_cfg([f"+sweep={name}"], hydra=True)
    assert cfg.hydra.mode == RunMode.MULTIRUN
    assert cfg.hydra.sweeper._target_ == "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    assert params and len(corners(params)) >= 2
    methods = set(axis("method", params["method"])) if "method" in params else set()
    assert methods <= set(METHODS)
    for point in corners(params):
        job = compose_cfg([f"+sweep={name}", *point])
        typed, method = build(job)
        for override in point:
            key, value = override.split("=", 1)
            if key != "method":
                assert str(OmegaConf.select(job, key)) == value or float(OmegaConf.select(job, key)) == float(value)


def test_svd_grids_sweep_lambda_energy_and_decomposition_per_regularizer(compose_cfg):
    kinds = {}
    for name in ("svd_grid", "svd_grid_l1", "svd_grid_hoyer_square"):
        cfg = compose_cfg([f"+sweep={name}"], hydra=True)
        assert {"method.decomposition", "regularizer.weight", "method.energy"} <= cfg.hydra.sweeper.params.keys()
        assert cfg.hydra.sweeper.params["method.decomposition"] == "channel,spatial"
        kinds[name] = cfg.regularizer.kind
    assert kinds == {"svd_grid": "hoyer", "svd_grid_l1": "l1", "svd_grid_hoyer_square": "hoyer_square"}
    assert list(compose_cfg(["+sweep=svd_energies"]).method.energies)


def test_optuna_preset_is_multi_objective_nsga2(compose_cfg, build):
    cfg = compose_cfg(["+sweep=optuna_pareto"], hydra=True)
    sw = cfg.hydra.sweeper
    assert "optuna" in sw._target_.lower() and sw.sampler._target_ == "optuna.samplers.NSGAIISampler"
    assert list(sw.direction) == ["maximize", "minimize"]
    assert sw.max_failure_rate == 1.0
    assert app.sweep_objectives(cfg.hydra) == 2
    job = compose_cfg(["+sweep=optuna_pareto", "method.decomposition=spatial", "regularizer.weight=0.001",
                       "method.energy=0.1"])  # fmt: skip
    build(job)


def test_launcher_presets_compose(compose_cfg):
    joblib = compose_cfg(["hydra/launcher=local_parallel"], hydra=True).hydra.launcher
    assert joblib._target_.endswith("JoblibLauncher") and joblib.n_jobs == 2 and joblib.backend == "loky"
    slurm = compose_cfg(["+sweep=svd_grid", "hydra/launcher=slurm", "hydra.launcher.partition=gpu"], hydra=True)
    slurm = slurm.hydra.launcher
    assert slurm._target_.endswith("submitit_launcher.SlurmLauncher")
    assert slurm.partition == "gpu" and slurm.gpus_per_node == 1 and slurm.max_num_timeout == 3
    assert slurm.submitit_folder.endswith(".submitit/%j") and slurm.signal_delay_s > 0


def test_objective_and_failure_value_follow_the_sweeper():
    basic = OmegaConf.create({"sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"}})
    optuna = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    single = OmegaConf.create({"sweeper": {"_target_": optuna, "direction": "maximize"}})
    multi = OmegaConf.create({"sweeper": {"_target_": optuna, "direction": ["maximize", "minimize"]}})
    res = {"top1": 91.5, "macs": 1234}
    assert app.objective(basic, res) == 91.5 and app.objective(single, res) == 91.5
    assert app.objective(multi, res) == (91.5, 1234)
    assert app.failed_job(basic, "x") != app.failed_job(basic, "x")  # NaN: the basic sweeper goes on
    for hc in (single, multi):  # Optuna records a FAIL trial from an exception (a NaN breaks its bookkeeping)
        with pytest.raises(RuntimeError, match="job failed: x"):
            app.failed_job(hc, "x")


@pytest.mark.slow
def test_optuna_two_trials_return_top1_and_macs(tmp_path, run_py, tiny):
    d = tmp_path / "optuna"
    proc = run_py("-m", "+sweep=optuna_pareto", "hydra.sweeper.n_trials=2", *tiny(), f"hydra.sweep.dir={d}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in sorted(d.glob("*/results.json"))]
    assert len(results) == 2 and all(r["status"] == "completed" for r in results)
    solutions = yaml.safe_load((d / "optimization_results.yaml").read_text())["solutions"]
    assert solutions
    told = {(r["top1"], float(r["macs"])) for r in results}
    assert all(tuple(s["values"]) in told for s in solutions)
    assert all(len(s["values"]) == 2 for s in solutions)


@pytest.mark.slow
def test_optuna_failed_trials_are_recorded_and_the_study_goes_on(tmp_path, run_py, tiny):
    d = tmp_path / "optuna_fail"
    proc = run_py("-m", "+sweep=optuna_pareto", "hydra.sweeper.n_trials=2", "init_from=/nonexistent/dense", *tiny(),
                  f"hydra.sweep.dir={d}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    for job in ("0", "1"):
        res = json.loads((d / job / "results.json").read_text())
        assert res["status"] == "failed" and "no dense checkpoint" in res["error"]
    assert yaml.safe_load((d / "optimization_results.yaml").read_text())["solutions"] == []


@pytest.mark.slow
def test_failed_jobs_in_a_joblib_multirun_are_recorded_and_do_not_stop_the_others(tmp_path, run_py, tiny):
    """An added key, or a starting point that is not there, stops the sweep before any job (exit code 2,
    nothing written); lr 1e30 x 0.01: job 0 diverges (fails after training started), job 1 completes;
    both run, each leaves a results.json, exit code 0."""
    d = tmp_path / "sweep"
    proc = run_py("-m", "hydra/launcher=local_parallel", "method=dense", "trainer.optimizer=sgd",
                  "trainer.lr=1e30,0.01", *tiny(), f"hydra.sweep.dir={d}", "+job=a,b")  # fmt: skip
    assert proc.returncode == 2 and "Key 'job' not in 'Config'" in proc.stderr  # an added key: nothing runs
    assert not d.exists()
    proc = run_py("-m", "hydra/launcher=local_parallel", "method=dense", "trainer.optimizer=sgd",
                  "trainer.lr=1e30,0.01", "init_from=null,/nonexistent/dense", *tiny(),
                  f"hydra.sweep.dir={d}")  # fmt: skip
    assert proc.returncode == 2 and "(trainer.lr=1e+30 init_from=/nonexistent/dense): init_from: no " in proc.stderr
    assert not d.exists()
    proc = run_py("-m", "hydra/launcher=local_parallel", "method=dense", "trainer.optimizer=sgd",
                  "trainer.lr=1e30,0.01", *tiny(), f"hydra.sweep.dir={d}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = [json.loads((d / j / "results.json").read_text()) for j in ("0", "1")]
    assert res[0]["status"] == "failed" and "became nan" in res[0]["error"] and res[0]["history"] == []
    assert res[1]["status"] == "completed"


def test_a_bad_value_anywhere_in_a_command_line_sweep_stops_it_before_any_job(tmp_path, run_py, tiny):
    d = tmp_path / "sweep"
    proc = run_py("-m", "method=dense", "trainer.lr=0.01,-1", *tiny(), f"hydra.sweep.dir={d}", timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == "config error: trainer.lr must be > 0, got -1.0"
    assert not d.exists()


@pytest.mark.slow
def test_single_run_input_error_still_writes_nothing(tmp_path, run_py, tiny):
    out = tmp_path / "run"
    proc = run_py(*tiny(), "init_from=/nonexistent/dense", f"hydra.run.dir={out}")
    assert proc.returncode == 2
    assert "no dense checkpoint" in proc.stderr + proc.stdout
    assert not (out / "results.json").exists()


@pytest.mark.parametrize("name", ["study_svd", "study_round_to", "study_posthoc", "study_filter", "study_trp"])
def test_study_presets_share_one_budget_and_their_seeds_dense_start(name, compose_cfg, build):
    """docs/results.md: every method starts from its seed's dense run of +sweep=study_dense, trains on the
    same 10000 images and spends 4 epochs after it (3 training + 1 fine-tuning, or 4 fine-tuning for a
    method that does not train), driven to 1.5x, 2x and 3x, three seeds, two jobs at a time."""
    dense = compose_cfg(["+sweep=study_dense", "seed=1"], hydra=True)
    dense_dir = f"{dense.hydra.sweep.dir}/{dense.hydra.sweep.subdir}"
    cfg = compose_cfg([f"+sweep={name}", "seed=1"], hydra=True)
    assert cfg.init_from == dense_dir == "outputs/study/dense/seed1"
    assert cfg.dataset.train_subset == dense.dataset.train_subset == 10000
    assert (cfg.trainer.epochs, cfg.trainer.budget, cfg.measure.latency) == (3, 4, False)
    assert cfg.hydra.launcher.n_jobs == 2 and cfg.hydra.mode == RunMode.MULTIRUN
    assert str(cfg.hydra.sweep.dir).startswith("outputs/study/")
    assert "seed: 0,1,2" in OmegaConf.to_yaml(cfg.hydra.sweeper.params)
    subdir = OmegaConf.to_container(cfg.hydra.sweep, resolve=False)["subdir"]
    assert "seed${seed}" in subdir  # one named directory per job and seed: a rerun keeps completed runs
    targets = sorted({*(cfg.method.get("speedups") or []), cfg.method.speedup} - {None})
    assert targets == [1.5, 2.0, 3.0] or str(cfg.hydra.sweeper.params["method.speedup"]) == "1.5,2.0,3.0"
    with open_dict(cfg):
        del cfg["hydra"]
    typed, method = build(cfg)
    trains = method.train_epochs is None
    assert (method.finetune_epochs, trains) in ((1, True), (4, False))
