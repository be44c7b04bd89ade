"""A report directory written whole or not at all.

The report is written into a new hidden directory beside ``--out``; only when every file is written
does it take the place of ``--out``, and the previous report's files go with the old directory (so a
table of a method that is gone does not stay behind). What the previous directory held that is not a
report file (the W&B run ``log_report`` writes there, a note of yours) is moved into the new one.
``--out`` must be new, empty, or a report directory (its ``summary.json`` is a report's): svdbench
replaces only what it wrote (the files the previous ``summary.json`` lists, of the names a report
writes; for a report of an older version, the names of :data:`REPORT_FILES`). A failure while
writing (a full disk, a signal) leaves the previous report as it was and names the file it was
writing. One report at a time writes a given ``--out`` (a lock beside it, ``.<out>.lock``); the
staging directories a killed report left are removed under it.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from ..rundir import RunLock

__all__ = ["REPORT_FILES", "check_out", "staged"]

#: the names a report writes (fnmatch patterns): a file of these names in --out is the report's
REPORT_FILES = ("report.md", "report.html", "summary.json", "failed.csv", "pareto.*", "hypervolume.*", "verdicts.csv",
                "matched.*", "paired.*", "comparison*.md", "comparison*.csv", "comparison*.tex")  # fmt: skip


#: the keys every report's summary.json has: a summary.json without them is not svdbench's
SUMMARY_KEYS = ("rows", "fronts", "selection")


def _summary(out: Path) -> dict | None:
    """``out``'s summary.json when it is a svdbench report's (a JSON object with :data:`SUMMARY_KEYS`), else None."""
    try:
        data = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and all(k in data for k in SUMMARY_KEYS) else None


def _previous_files(out: Path) -> Callable[[str], bool]:
    """Whether a name in ``out`` is a file the previous report wrote: those its summary.json lists (of the
    names a report writes, :data:`REPORT_FILES`), else (an older report) those of :data:`REPORT_FILES`' patterns."""
    listed = (_summary(out) or {}).get("files")
    ours = [n for n in listed if isinstance(n, str)] if isinstance(listed, list) else None

    def previous(name: str) -> bool:
        return (ours is None or name in ours) and any(fnmatch.fnmatchcase(name, p) for p in REPORT_FILES)

    return previous


def check_out(out: Path) -> None:
    """``out`` can take a report: new, an empty directory or a report directory (its summary.json is a
    report's), not a link nor the directory holding it. ValueError in one line otherwise."""
    if out.is_symlink():
        raise ValueError(f"--out {out} is a link: svdbench never writes through a link")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a directory")
    if out.is_dir() and any(out.iterdir()) and _summary(out) is None:
        what = "a summary.json that is not a svdbench report's" if (out / "summary.json").exists() else "no report"
        raise ValueError(f"--out {out} holds files and {what}: give a new or empty directory")
    if out.is_dir() and os.path.ismount(out):
        raise ValueError(f"--out {out} is a mount point, which a report cannot replace: give a directory inside it")


@contextlib.contextmanager
def staged(out: Path) -> Iterator[Path]:
    """``with staged(out) as tmp:`` write the report into ``tmp`` (mode as a plain ``mkdir`` makes it);
    on leaving without an error ``tmp`` becomes ``out`` (``out`` made absolute first: ``--out .`` too);
    on an error ``tmp`` is removed, ``out`` as it was (what had been moved out of it is moved back) and
    the error re-raised (an OSError naming its file). Holds ``out``'s lock throughout (a second report waits)."""
    out = Path(os.path.abspath(out))
    check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with RunLock(out.parent, name=f".{out.name}.lock", wait=True):
        stem = _staging_stem(out)
        stale = [*out.parent.glob(f"{glob.escape(stem)}*.tmp")]  # a killed report's: none is running
        if out.is_dir():  # a killed report's previous report, moved aside after the new one took its place
            stale += out.parent.glob(f"{glob.escape(stem)}*.old")
        for left in stale:
            if left.is_dir() and not left.is_symlink():
                shutil.rmtree(left, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=stem, suffix=".tmp", dir=out.parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        kept: list[str] = []  # what was moved from out into tmp: a W&B run, a note
        try:
            yield tmp
            if out.is_dir():
                previous = _previous_files(out)
                clash = sorted(e.name for e in out.iterdir() if not previous(e.name) and (tmp / e.name).exists())
                if clash:  # a file of yours of a name this report writes: neither is replaced by the other
                    raise ValueError(f"--out {out} holds {clash[0]}, which this report writes: move yours or give "
                                     "another --out")  # fmt: skip
                for entry in out.iterdir():  # keep what is not the report's (a W&B run, a note)
                    if not previous(entry.name):
                        os.replace(entry, tmp / entry.name)
                        kept.append(entry.name)
                _swap(out, tmp)
            else:
                os.replace(tmp, out)
        except BaseException:
            for name in kept:  # back where it was, before tmp goes
                with contextlib.suppress(OSError):
                    os.replace(tmp / name, out / name)
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _staging_stem(out: Path) -> str:
    """The start of the hidden directories a report stages in beside ``out``: ``.<out>.svdbench-`` (the name
    cut to 64 characters: a long --out still leaves room), which no directory of yours is taken for."""
    return f".{out.name[:64]}.svdbench-"


def _swap(out: Path, tmp: Path) -> None:
    """``tmp`` takes the place of the directory ``out``; the old one is moved aside, then removed (also when
    the swap fails: nothing is left beside ``out``)."""
    old = Path(tempfile.mkdtemp(prefix=_staging_stem(out), suffix=".old", dir=out.parent))
    try:
        os.replace(out, old / out.name)
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(old / out.name, out)
            raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
