"""A report is written whole or not at all, into a directory that is new, empty or a report's; a rerun
leaves nothing of the previous report behind; names become file names and table cells safely."""

import errno
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading

import pytest
from conftest import ENV, ROOT, record

from svdbench import cli, errors
from svdbench.report import build as build_module
from svdbench.report import build_report, outdir
from svdbench.report.render import code_span, latex_escape, plot_text
from svdbench.report.tables import STEM_MAX, file_stems
from svdbench.rundir import LOCK, RunLock


@pytest.fixture()
def runs(runs):
    """The shared two runs and a third method (beta) to go away."""
    record(runs / "b0", "beta", 0, 87.0, 400)
    return runs


def test_a_rerun_leaves_no_table_of_a_method_that_is_gone(runs, tmp_path):
    out = tmp_path / "report"
    build_report([runs], out)
    assert (out / "comparison_beta.md").is_file()
    (out / "wandb").mkdir()
    (out / "wandb" / "offline-run").write_text("not uploaded yet")
    shutil.rmtree(runs / "b0")
    rep = build_report([runs], out)
    assert not (out / "comparison_beta.md").exists() and (out / "comparison_alpha.md").is_file()
    assert (out / "wandb" / "offline-run").read_text() == "not uploaded yet"  # not the report's: kept
    assert all(f.parent == out and f.is_file() for f in rep.files)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report.")]  # no staging left behind


def test_a_report_cut_while_writing_leaves_the_previous_one(runs, tmp_path, monkeypatch):
    out = tmp_path / "report"
    build_report([runs], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(build_module, "plot", full_disk)
    shutil.rmtree(runs / "b0")
    with pytest.raises(OSError, match=rf"the report was not written to {out}: No space left on device; the previous"):
        build_report([runs], out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report.")]


def test_out_must_be_new_empty_or_a_report_and_never_a_link(runs, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="holds files and no report"):
        build_report([runs], mine)
    assert (mine / "thesis.tex").read_text() == "precious"
    victim = tmp_path / "victim"
    victim.mkdir()
    (tmp_path / "linked").symlink_to(victim)
    with pytest.raises(ValueError, match="is a link"):
        build_report([runs], tmp_path / "linked")
    assert not any(victim.iterdir())


def test_a_linked_file_in_a_report_directory_is_replaced_not_written_through(runs, tmp_path):
    out = tmp_path / "report"
    build_report([runs], out)
    victim = tmp_path / "victim.md"
    victim.write_text("precious")
    (out / "report.md").unlink()
    (out / "report.md").symlink_to(victim)
    build_report([runs], out)
    assert victim.read_text() == "precious" and not (out / "report.md").is_symlink()


def test_two_names_of_one_file_name_are_kept_apart():
    stems = file_stems(["svd (a)", "svd_(a)", "trp"])
    assert stems["trp"] == "trp" and stems["svd (a)"] != stems["svd_(a)"]
    assert all(s.startswith("svd__a_-") for m, s in stems.items() if m != "trp")


def test_names_with_table_syntax_stay_in_their_cell(tmp_path):
    src = tmp_path / "runs"
    record(src / "x", "a|b\ncd", 0, 88.0, 500)
    record(src / "y", "a_(b)", 0, 87.0, 400)
    out = tmp_path / "report"
    build_report([src], out)
    table = (out / "comparison.md").read_text().splitlines()
    assert len(table) == 4 and any("| a\\|b cd |" in row for row in table[2:])  # one line per row
    assert "a\\_(b)" in (out / "comparison.tex").read_text()


def test_a_report_of_nothing_leaves_the_previous_report(runs, tmp_path, capsys):
    out = tmp_path / "report"
    build_report([runs], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["report", str(empty), "--out", str(out)]) == 1
    assert "no usable results.json" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_users_file_of_a_report_name_is_kept_by_the_next_report(runs, tmp_path):
    out = tmp_path / "report"
    build_report([runs], out)
    listed = json.loads((out / "summary.json").read_text())["files"]
    assert "report.md" in listed and "summary.json" in listed and "comparison_alpha.md" in listed
    (out / "comparison_mine.md").write_text("my notes")  # a report-like name the report did not write
    build_report([runs], out)
    assert (out / "comparison_mine.md").read_text() == "my notes"


def test_staging_left_by_a_killed_report_is_removed(runs, tmp_path):
    out = tmp_path / "report"
    build_report([runs], out)
    stem = outdir._names(out)[1]
    (tmp_path / f"{stem}abc.tmp").mkdir()  # what a report killed while writing leaves
    (tmp_path / f"{stem}abc.tmp" / "report.md").write_text("half")
    (tmp_path / f"{stem}def.old").mkdir()
    (tmp_path / ".report.2024-05.old").mkdir()  # yours, of a similar name: kept
    (tmp_path / ".report.svdbench-x.tmp").mkdir()  # yours too (an older version's staging name)
    build_report([runs], out)
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".old")))
    assert left == [".report.2024-05.old", ".report.svdbench-x.tmp"]


KILL_IN_SWAP = """
import os, sys
from pathlib import Path
from svdbench.report import build, outdir
def killed(out, tmp):  # the previous report moved aside, then SIGKILL before the new one takes its place
    old = Path(outdir.tempfile.mkdtemp(prefix=outdir._names(out)[1], suffix=".old", dir=out.parent))
    os.replace(out, old / out.name)
    os._exit(137)
outdir._swap = killed
build.build_report([sys.argv[1]], sys.argv[2])
"""


def test_a_report_killed_in_its_swap_loses_nothing_of_yours(runs, tmp_path):
    """A kill between moving your files into the staging and the new report taking --out's place: the next
    report puts the previous one back, then your files, and writes; nothing of yours is deleted."""
    out = tmp_path / "report"
    build_report([runs], out)
    (out / "notes.txt").write_text("mine")
    proc = subprocess.run([sys.executable, "-c", KILL_IN_SWAP, str(runs), str(out)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 137 and not out.exists()  # the state a kill there leaves
    build_report([runs], out)
    assert (out / "notes.txt").read_text() == "mine" and (out / "report.md").is_file()
    assert not (out / outdir.KEPT).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "runs"]


def test_a_killed_reports_staging_holding_an_entry_of_yours_that_cannot_go_back_is_kept(runs, tmp_path, capsys):
    out = tmp_path / "report"
    build_report([runs], out)
    staging = tmp_path / f"{outdir._names(out)[1]}abc.tmp"
    staging.mkdir()
    (staging / "notes.txt").write_text("moved")
    (staging / outdir.KEPT).write_text('["notes.txt"]')
    (out / "notes.txt").write_text("a new one of yours")
    build_report([runs], out)
    assert (staging / "notes.txt").read_text() == "moved" and (out / "notes.txt").read_text() == "a new one of yours"
    assert f"warning: {staging} holds what a killed report had moved out of --out" in capsys.readouterr().err


def test_reports_into_long_names_alike_have_their_own_lock_and_staging(runs, tmp_path):
    a, b = tmp_path / ("x" * 64 + "_a"), tmp_path / ("x" * 64 + "_b")
    assert len({*outdir._names(a), *outdir._names(b)}) == 4
    run = tmp_path / "run"
    assert outdir._names(run / "svdbench")[0] != LOCK  # a report into RUN/svdbench never waits for RUN's run
    for name in ("r" * 255, "\U0001f600" * 63):  # the longest legal names: 255 bytes (4-byte characters)
        build_report([runs], tmp_path / name)
        assert (tmp_path / name / "report.md").is_file()


def test_a_report_waiting_for_another_into_the_same_out_says_so(runs, tmp_path, capsys):
    out = tmp_path / "report"
    held = RunLock(tmp_path, name=outdir._names(out)[0]).__enter__()
    threading.Timer(1.0, held.__exit__).start()
    build_report([runs], out)
    assert f"waiting: another report is writing --out {out} (pid {os.getpid()})" in capsys.readouterr().err


def test_a_file_of_yours_named_as_one_this_report_writes_is_refused_and_kept(runs, tmp_path):
    out = tmp_path / "report"
    build_report([runs], out)
    (out / "comparison_gamma.md").write_text("my notes")  # a method the next report has
    record(runs / "g0", "gamma", 0, 86.0, 300)
    with pytest.raises(ValueError, match="holds comparison_gamma.md, which this report writes"):
        build_report([runs], out)
    assert (out / "comparison_gamma.md").read_text() == "my notes" and not (out / "comparison_gamma.csv").exists()


def test_a_long_out_name_is_written(runs, tmp_path):
    out = tmp_path / ("r" * 248)
    build_report([runs], out)
    assert (out / "report.md").is_file()


def test_report_directory_mode_follows_the_umask(runs, tmp_path):
    old = os.umask(0o022)
    try:
        build_report([runs], tmp_path / "report")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "report").stat().st_mode) == 0o755  # not mkdtemp's 0o700


def test_crafted_and_long_names_never_share_a_file():
    a, b = "svd (a)", "svd_(a)"
    crafted = f"svd__a_-{hashlib.sha1(a.encode()).hexdigest()[:8]}"  # another's stem and digest
    long1, long2 = "x" * 300, "x" * 299 + "y"
    stems = file_stems([a, b, crafted, long1, long2, "ä", "ö"])
    assert len(set(stems.values())) == 7
    assert all(len(s) <= STEM_MAX + 9 and s.isascii() for s in stems.values())


def test_names_are_shown_as_they_are_in_the_plot_and_the_latex_table(tmp_path):
    src = tmp_path / "runs"
    record(src / "x", "$x$ cost", 0, 88.0, 500)
    record(src / "y", "_hidden", 0, 87.0, 400)
    record(src / "z", "[opt] svd", 0, 86.0, 300)
    out = tmp_path / "report"
    build_report([src], out)
    assert plot_text("$x$ cost") == r"\$x\$ cost" and plot_text("_hidden") == " _hidden"
    tex = (out / "comparison.tex").read_text()
    assert r"{}[opt] svd" in tex and r"\$x\$ cost" in tex
    assert latex_escape("[a]") == "{}[a]" and latex_escape("a[b]") == "a[b]"


def test_paths_with_backticks_and_line_breaks_stay_one_code_span():
    assert code_span("a`b") == "``a`b``" and code_span("`a") == "`` `a ``"
    assert code_span("a\nb") == "`a\\nb`"


def test_a_split_key_no_run_has_is_a_warning(runs, tmp_path, capsys):
    build_report([runs], tmp_path / "report", split=["method.decompositon"])
    assert "warning: --split method.decompositon: no run's config has this key" in capsys.readouterr().err


@pytest.mark.parametrize("key", ["seed", "dataset.root", "trainer.eval_batch_size", "logger.mode", "method.energies"])
def test_a_split_by_a_bookkeeping_key_is_refused_naming_why(runs, tmp_path, key):
    with pytest.raises(ValueError, match=f"--split {re.escape(key)}: .* cannot split methods"):
        build_report([runs], tmp_path / "report", split=[key])
    assert not (tmp_path / "report").exists()


def test_a_summary_json_of_yours_does_not_make_a_report_directory(runs, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    files = {"summary.json": '{"mine": true}', "report.md": "my notes", "todo.txt": "keep"}
    for name, text in files.items():
        (mine / name).write_text(text)
    with pytest.raises(ValueError, match="holds files and a summary.json that is not a svdbench report's"):
        build_report([runs], mine)
    assert {p.name: p.read_text() for p in mine.iterdir()} == files


def test_out_dot_or_a_directory_holding_the_current_one_is_refused_and_kept(runs, tmp_path, monkeypatch, capsys):
    """A report replaces its directory whole: into the current directory (., an empty --out, a parent of it) it
    would leave the shell in a removed directory. One line, nothing touched."""
    out = tmp_path / "report"
    build_report([runs], out)
    (out / "notes.txt").write_text("precious")
    (out / "mydir").mkdir()
    before = sorted(p.name for p in out.rglob("*"))
    monkeypatch.chdir(out / "mydir")
    for given in (".", "", ".."):
        assert cli.main(["report", str(runs), "--out", given]) == 2
        assert "is the current directory or holds it: a report replaces its directory whole" in capsys.readouterr().err
    assert sorted(p.name for p in out.rglob("*")) == before and (out / "notes.txt").read_text() == "precious"


def test_out_under_a_file_says_which_is_a_file(runs, tmp_path, capsys):
    (tmp_path / "ff").write_text("mine")
    for given in ("ff/rep", "ff/sub/rep"):
        assert cli.main(["report", str(runs), "--out", str(tmp_path / given)]) == 2
        assert f"{tmp_path / 'ff'} is a file, not a directory" in capsys.readouterr().err
    assert (tmp_path / "ff").read_text() == "mine"


def test_a_swap_that_fails_puts_everything_back_and_leaves_nothing_beside(runs, tmp_path, monkeypatch):
    out = tmp_path / "report"
    build_report([runs], out)
    (out / "notes.txt").write_text("precious")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = os.replace

    def busy(src, dst):
        if str(src).endswith(".tmp") and str(dst) == str(out):  # the new report taking out's place
            raise OSError(errno.EBUSY, "Device or resource busy", str(dst))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", busy)
    with pytest.raises(OSError, match="Device or resource busy"):
        build_report([runs], out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report.") and p.suffix in (".tmp", ".old")]


def test_a_mount_point_is_refused_in_one_line(runs, tmp_path, monkeypatch):
    out = tmp_path / "mnt"
    out.mkdir()
    monkeypatch.setattr(os.path, "ismount", lambda p: str(p) == str(out))
    with pytest.raises(ValueError, match="is a mount point, which a report cannot replace"):
        build_report([runs], out)


def test_sigterm_in_a_reports_swap_puts_your_files_back_and_exits_143(tmp_path, capsys, monkeypatch):
    record(tmp_path / "runs" / "d", "dense", 0, 90.0, 1000)
    out = tmp_path / "rep"
    assert cli.main(["report", str(tmp_path / "runs"), "--out", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    before = (out / "report.md").read_bytes()

    def terminated(*args):  # your notes are in the staging now: a SIGTERM (a timeout, a shutdown) arrives
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(outdir, "_swap", terminated)
    assert cli.main(["report", str(tmp_path / "runs"), "--out", str(out)]) == 143
    assert "svdbench report: interrupted (SIGTERM)" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine" and (out / "report.md").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep", "runs"]
    assert signal.getsignal(signal.SIGTERM) is not errors.raise_terminated  # the handler is the command's only
