"""Reliability, round 11 (r11b: files written, concurrency and interruption; a hostile pass). Each case here
failed before its fix: a sweep whose end-of-sweep report was interrupted exiting 0 (F2) and a file of yours
named ``.svdbench-kept.json`` deleted by a report (F4)."""

import signal

import pytest
from omegaconf import OmegaConf
from test_hostile_r10_writes import record

from svdbench import cli, sweep_report
from svdbench.report import build_report, outdir

# ------------------------------------------------------------------ F2: an interrupted sweep report is no success


@pytest.mark.parametrize(("signum", "how"), [(signal.SIGINT, "code"), (signal.SIGTERM, "code"),
                                             (signal.SIGINT, "raise"), (signal.SIGTERM, "raise")])  # fmt: skip
def test_a_sweep_whose_report_is_interrupted_exits_128_plus_the_signal(tmp_path, monkeypatch, caplog, signum, how):
    def interrupted(args):
        if how == "raise":  # the signal outside the report's own handling
            raise cli.Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        return 128 + signum

    monkeypatch.setattr(cli, "main", interrupted)
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "sw")}}})
    with pytest.raises(SystemExit) as stop:
        sweep_report.ReportAtEnd().on_multirun_end(config)
    assert stop.value.code == 128 + signum
    assert f"(exit {128 + signum}); make it with: svdbench report --out=" in caplog.text


def test_a_sweep_whose_report_fails_otherwise_still_ends_as_before(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(cli, "main", lambda args: 1)
    sweep_report.ReportAtEnd().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert "(exit 1); make it with: svdbench report" in caplog.text


# ------------------------------------------------------------------ F4: a .svdbench-kept.json of yours is kept


def test_a_file_of_yours_named_as_the_reports_kept_list_is_refused_and_kept(runs, tmp_path, capsys):
    out = tmp_path / "report"
    build_report([runs], out)
    summary = (out / "summary.json").read_bytes()
    (out / outdir.KEPT).write_text('["mine"]')
    assert cli.main(["report", "--out", str(out), str(runs)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: --out {out} holds {outdir.KEPT}, which this report writes: move yours or give another --out"
    assert (out / outdir.KEPT).read_text() == '["mine"]' and (out / "summary.json").read_bytes() == summary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "runs"]  # no staging, no lock left


def test_a_kept_list_a_killed_report_left_in_out_goes_with_the_old_report(runs, tmp_path):
    out = tmp_path / "report"
    build_report([runs], out)
    outdir._write_kept(out, ["notes.txt"])  # a report killed between its swap and removing its list
    (out / "notes.txt").write_text("mine")
    build_report([runs], out)
    assert not (out / outdir.KEPT).exists() and (out / "notes.txt").read_text() == "mine"


@pytest.fixture()
def runs(tmp_path):
    src = tmp_path / "runs"
    record(src / "d0", "dense", 0, 90.0, 1000)
    record(src / "a0", "alpha", 0, 88.0, 500)
    return src
