"""W&B tracking, offline only: runs are written under WANDB_DIR and nothing is sent (WANDB_MODE=offline,
no API key, WANDB_BASE_URL pointing at a closed local port)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from svdbench import tracking
from svdbench.config import LoggerConfig
from svdbench.results import RunRecord

ROOT = Path(__file__).resolve().parents[1]


def offline_env(wandb_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(WANDB_MODE="offline", WANDB_DIR=str(wandb_dir), WANDB_BASE_URL="http://127.0.0.1:9",
               WANDB_SILENT="true", HOME=str(wandb_dir.parent), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # fmt: skip
    return env


def records(path: Path):
    """The protobuf records of a .wandb file (LevelDB-style log: 7-byte header, 32 KiB blocks,
    chunks with a 7-byte header: crc32, length, type full/first/middle/last)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, buf = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (2, 3):
            buf = chunk if kind == 2 else buf + chunk
            continue
        if kind not in (1, 4):
            continue
        rec = pb.Record()
        rec.ParseFromString(chunk if kind == 1 else buf + chunk)
        yield rec


def read_run(run_dir: Path) -> dict:
    """group, tags, exit code, summary and history keys of one offline run."""
    out = {"summary": {}, "history": set(), "exit": None}
    for rec in records(next(run_dir.glob("run-*.wandb"))):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out.update(group=rec.run.run_group, name=rec.run.display_name, tags=list(rec.run.tags))
        elif kind == "exit":
            out["exit"] = rec.exit.exit_code
        elif kind == "summary":
            for u in rec.summary.update:
                out["summary"]["/".join(u.nested_key) or u.key] = json.loads(u.value_json)
        elif kind == "history":
            out["history"] |= {"/".join(i.nested_key) or i.key for i in rec.history.item}
    return out


def test_mode_and_group(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert tracking.resolve_mode(None) == "offline" and tracking.resolve_mode("online") == "online"
    monkeypatch.setenv("WANDB_MODE", "dryrun")
    assert tracking.resolve_mode("online") == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert tracking.resolve_mode("offline") == "disabled"
    assert tracking.group_from_sweep_dir("multirun/2024-05-01/12-00-00") == "2024-05-01_12-00-00"
    assert tracking.group_from_sweep_dir("/tmp/x/sweep") == "x_sweep"


def test_console_logger_tracks_nothing_and_never_imports_wandb(tmp_path):
    code = ("import sys; from svdbench import tracking, report, pipeline; from svdbench.config import LoggerConfig; "
            "t = tracking.start(LoggerConfig(), config={}, run_dir='.'); t.log_epoch({}); t.log_results({}); "
            "t.finish(1); print(type(t).__name__, 'wandb' in sys.modules)")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert proc.stdout.split() == ["Tracker", "False"], proc.stderr
    assert not (tmp_path / "wandb").exists()


def test_tracking_failures_never_stop_the_run(monkeypatch, tmp_path, caplog):
    import wandb

    def broken_init(**kw):
        raise RuntimeError("no network\nsecond line")

    monkeypatch.setattr(wandb, "init", broken_init)
    t = tracking.start(LoggerConfig(name="wandb"), config={}, run_dir=tmp_path)
    assert type(t) is tracking.Tracker and "W&B tracking off (mode" in caplog.text and "no network" in caplog.text

    class Run:
        dir = str(tmp_path)

        def log(self, *a, **k):
            raise OSError("disk full")

        def finish(self, exit_code=None):
            self.exit_code = exit_code

    run = Run()
    w = tracking.WandbTracker(run)
    w.log_epoch({"stage": "train", "epoch": 0, "train_loss": 1.0})
    w.log_results(RunRecord(status="completed", method="svd", model="m", dataset="d", seed=0, config={}, top1=1.0,
                            ranks={"full": {"a": 2}}))  # fmt: skip
    w.finish(exit_code=1)
    w.finish()
    assert run.exit_code == 1 and "could not log" in caplog.text


@pytest.fixture(scope="module")
def offline_sweep(tmp_path_factory, tiny):
    """Two jobs with logger=wandb offline: job 0 diverges (fails), job 1 completes."""
    base = tmp_path_factory.mktemp("wandb")
    wdir, sweep = base / "wandb_dir", base / "sweep"
    proc = subprocess.run([sys.executable, "run.py", "-m", "logger=wandb", "trainer.optimizer=sgd",
                           "trainer.lr=1e30,0.01", *tiny(), f"hydra.sweep.dir={sweep}"], cwd=ROOT,
                          env=offline_env(wdir), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return wdir, sweep


@pytest.mark.slow
def test_offline_runs_written_under_wandb_dir_and_nothing_sent(offline_sweep):
    wdir, sweep = offline_sweep
    runs = sorted((wdir / "wandb").glob("offline-run-*"))
    assert len(runs) == 2
    assert not list((wdir / "wandb").glob("run-*")), "an online run directory appeared"
    assert not (sweep / "0" / "wandb").exists()  # WANDB_DIR wins over the run directory
    info = [read_run(r) for r in runs]
    by_exit = {i["exit"]: i for i in info}
    assert set(by_exit) == {0, 1}  # the failed job was finished with exit code 1, the other with 0
    assert {i["group"] for i in info} == {tracking.group_from_sweep_dir(sweep)}
    assert all(i["tags"] == ["svd", "resnet8", "synthetic"] for i in info)
    assert by_exit[1]["name"].startswith("0-") and by_exit[0]["name"].startswith("1-")
    ok = by_exit[0]
    res = json.loads((sweep / "1" / "results.json").read_text())
    assert ok["summary"]["top1"] == res["top1"] and ok["summary"]["macs"] == res["macs"]
    assert ok["summary"]["speedup"] == res["speedup"] and ok["summary"]["params"] == res["params"]
    assert {"train/test_top1", "train/train_loss", "finetune/test_top1", "epoch"} <= ok["history"]
    ranks = next(r for r in runs if read_run(r)["exit"] == 0).glob("files/media/table/ranks_*.table.json")
    table = json.loads(next(ranks).read_text())
    assert table["columns"] == ["layer", "rank_full", "rank_after"]
    assert {row[0] for row in table["data"]} == set(res["ranks"]["full"])
    for r in runs:
        log = (r / "logs" / "debug-internal.log").read_text() if (r / "logs" / "debug-internal.log").exists() else ""
        assert "127.0.0.1:9" not in log


@pytest.mark.slow
def test_report_wandb_offline_logs_table_and_scatter_and_skips_the_report(offline_sweep, tmp_path):
    wdir, sweep = offline_sweep
    rdir = tmp_path / "wandb_report"
    exe = Path(sys.executable).parent / "svdbench"
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "svdbench.cli"]
    proc = subprocess.run([*cmd, "report", str(sweep), "--out", str(tmp_path / "rep"), "--wandb"], cwd=ROOT,
                          env=offline_env(rdir), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("W&B offline"))
    assert "skipped the W&B Report" in line and str(tmp_path / "rep" / "report.md") in line
    (run,) = sorted((rdir / "wandb").glob("offline-run-*"))
    tables = {p.name.split("_")[0] for p in (run / "files" / "media" / "table").glob("*.table.json")}
    assert {"comparison", "pareto", "failed"} <= tables
    info = read_run(run)
    assert info["exit"] == 0 and info["summary"]["configurations"] == 1 and info["summary"]["failed"] == 1
    assert any(k.startswith("pareto_scatter") for k in info["summary"])


@pytest.mark.slow
def test_report_wandb_disabled_writes_nothing(offline_sweep, tmp_path, capsys, monkeypatch):
    from svdbench import cli

    _, sweep = offline_sweep
    monkeypatch.setenv("WANDB_MODE", "offline")  # the explicit --mode wins
    assert cli.main(["report", str(sweep), "--out", str(tmp_path / "rep"), "--wandb", "--mode", "disabled"]) == 0
    assert "W&B disabled: nothing logged" in capsys.readouterr().out
    assert not list(tmp_path.rglob("offline-run-*"))


@pytest.mark.filterwarnings("ignore:Pydantic V1 style:DeprecationWarning")  # inside wandb_workspaces
@pytest.mark.slow
def test_wandb_report_is_built_from_the_local_report(offline_sweep, tmp_path, saved_wandb_report):
    """The online step, without the network: the W&B Report is assembled and its save() intercepted."""
    import wandb_workspaces.reports.v2 as wr

    from svdbench import report

    _, sweep = offline_sweep
    doc = saved_wandb_report(report.build_report([sweep], tmp_path / "rep"))
    assert doc.project == "svdbench" and doc.entity == "team"
    grids = [b for b in doc.blocks if isinstance(b, wr.PanelGrid)]
    scatter = grids[0].panels[0]
    assert isinstance(scatter, wr.ScatterPlot) and scatter.x.name == "macs" and scatter.y.name == "top1"
    assert {p.table_name for p in grids[1].panels} == {"comparison", "pareto"}
    assert any(isinstance(b, wr.MarkdownBlock) and "| svd |" in b.text for b in doc.blocks)
