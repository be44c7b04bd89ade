"""A report directory written whole or not at all.

The report is written into a new hidden directory beside ``--out``; only when every file is written
does it take the place of ``--out``, and the previous report's files go with the old directory (so a
table of a method that is gone does not stay behind). What the previous directory held that is not a
report file (the W&B run ``log_report`` writes there, a note of yours) is moved into the new one.
``--out`` must be new, empty, or a report directory (it holds ``summary.json``): svdbench replaces
only what it wrote. A failure while writing (a full disk, a signal) leaves the previous report as it
was and names the file it was writing.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["REPORT_FILES", "check_out", "staged"]

#: the names a report writes (fnmatch patterns): a file of these names in --out is the report's
REPORT_FILES = ("report.md", "summary.json", "failed.csv", "pareto.*", "hypervolume.*", "verdicts.csv", "matched.*",
                "paired.*", "comparison*.md", "comparison*.csv", "comparison*.tex")  # fmt: skip


def _report_file(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in REPORT_FILES)


def check_out(out: Path) -> None:
    """``out`` can take a report: new, an empty directory or a report directory, not a link. ValueError
    in one line otherwise."""
    if out.is_symlink():
        raise ValueError(f"--out {out} is a link: svdbench never writes through a link")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / "summary.json").is_file():
        raise ValueError(f"--out {out} holds files and no report (summary.json): give a new or empty directory")


@contextlib.contextmanager
def staged(out: Path) -> Iterator[Path]:
    """``with staged(out) as tmp:`` write the report into ``tmp``; on leaving without an error ``tmp``
    becomes ``out``; on an error ``tmp`` is removed, ``out`` untouched, and the error re-raised (an
    OSError naming its file)."""
    check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        if out.is_dir():
            for entry in out.iterdir():  # keep what is not the report's (a W&B run, a note)
                if not _report_file(entry.name):
                    os.replace(entry, tmp / entry.name)
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
