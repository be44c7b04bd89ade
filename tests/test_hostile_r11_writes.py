"""Reliability, round 11 (r11b: files written, concurrency and interruption; a hostile pass). Each case here
failed before its fix: a sweep whose end-of-sweep report was interrupted exiting 0 (F2)."""

import signal

import pytest
from omegaconf import OmegaConf

from svdbench import cli, sweep_report

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
