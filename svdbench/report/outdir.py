"""A report directory written whole or not at all.

The report is written into a new hidden directory beside ``--out``; only when every file is written
does it take the place of ``--out``, and the previous report's files go with the old directory (so a
table of a method that is gone does not stay behind). What the previous directory held that is not a
report file (the W&B run ``log_report`` writes there, a note of yours) is moved into the new one.
``--out`` must be new, empty, or a report directory (its ``summary.json`` is a report's): svdbench
replaces only what it wrote (the files the previous ``summary.json`` lists, of the names a report
writes; for a report of an older version, the names of :data:`REPORT_FILES`). A failure while
writing (a full disk, a signal) leaves the previous report as it was and names the file it was
writing. One report at a time writes a given ``--out`` (a lock beside it, ``.svdbench-report-<digest of the
name>.lock``); what a killed report left is put right under it: the previous report back where a kill
in the swap left no ``--out``, your entries it had moved into its staging back into ``--out``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import printable
from ..held_dirs import identity
from ..jsonfile import read_json
from ..paths import two_places
from ..rundir import LOCK, LockBusy, RunLock, remove_empty_dirs

__all__ = ["REPORT_FILES", "check_out", "is_report_dir", "staged"]

#: the names a report writes (fnmatch patterns): a file of these names in --out is the report's
REPORT_FILES = ("report.md", "report.html", "summary.json", "failed.csv", "pareto.*", "hypervolume.*", "verdicts.csv",
                "matched.*", "paired.*", "comparison*.md", "comparison*.csv", "comparison*.tex")  # fmt: skip


#: the keys every report's summary.json has: a summary.json without them is not svdbench's
SUMMARY_KEYS = ("rows", "fronts", "selection")


def _summary(out: Path) -> dict | None:
    """``out``'s summary.json when it is a svdbench report's (a JSON object with :data:`SUMMARY_KEYS`), else None
    (also where it is no regular file of a sane size: a FIFO or a link to a device is never read)."""
    try:
        data = read_json(out / "summary.json")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and all(k in data for k in SUMMARY_KEYS) else None


def is_report_dir(out: Path) -> bool:
    """Whether ``out`` is a directory holding a svdbench report (its summary.json is a report's)."""
    out = Path(out)
    return out.is_dir() and not out.is_symlink() and _summary(out) is not None


def _previous_files(out: Path) -> Callable[[str], bool]:
    """Whether a name in ``out`` is a file the previous report wrote: those its summary.json lists (of the
    names a report writes, :data:`REPORT_FILES`), else (an older report) those of :data:`REPORT_FILES`' patterns."""
    listed = (_summary(out) or {}).get("files")
    ours = [n for n in listed if isinstance(n, str)] if isinstance(listed, list) else None

    def previous(name: str) -> bool:
        return (ours is None or name in ours) and any(fnmatch.fnmatchcase(name, p) for p in REPORT_FILES)

    return previous


def check_out(out: Path) -> None:
    """``out`` can take a report: new (under directories, not a file), an empty directory or a report directory
    (its summary.json is a report's), not a link, a mount point, nor the current directory or one holding it.
    ValueError in one line otherwise."""
    physical = two_places(out)
    if physical is not None:
        raise ValueError(f"--out {out} has a '..' after a link, which is {physical} for the system but "
                         f"{os.path.abspath(out)} as written: give the path without '..'")  # fmt: skip
    out = Path(os.path.abspath(out))
    if out.is_symlink():
        raise ValueError(f"--out {out} is a link: svdbench never writes through a link")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a directory")
    above = next((p for p in out.parents if os.path.lexists(p)), None)
    if above is not None and not above.is_dir():
        raise ValueError(f"--out {out}: {above} is a file, not a directory")
    try:
        here = Path(os.getcwd())
    except OSError:  # the current directory was removed: nothing to protect
        here = None
    real = Path(os.path.realpath(out))  # getcwd() is the physical directory: --out "$PWD" entered through a link
    if here is not None and (here == real or here.is_relative_to(real)):
        raise ValueError(
            f"--out {out} is the current directory or holds it: a report replaces its directory whole, which would "
            "leave your shell in a removed one; give another --out, or run from elsewhere"
        )
    if out.is_dir() and any(out.iterdir()) and _summary(out) is None:
        what = "a summary.json that is not a svdbench report's" if (out / "summary.json").exists() else "no report"
        raise ValueError(f"--out {out} holds files and {what}: give a new or empty directory")
    if out.is_dir() and os.path.ismount(out):
        raise ValueError(f"--out {out} is a mount point, which a report cannot replace: give a directory inside it")
    if out.is_dir() and os.path.lexists(out / KEPT) and _read_kept(out / KEPT) is None:
        raise _kept_clash(out)
    if out.is_dir():
        previous = _previous_files(out)
        _check_no_run_under_way(out, [e.name for e in out.iterdir() if not previous(e.name)])


def _check_no_run_under_way(out: Path, names: list[str]) -> None:
    """None of ``out``'s entries ``names`` (folders of yours a report rerun moves into the new report) holds a
    run directory another process writes in (its lock held): moved, even back to the same path, that run would
    stop at its next write. ValueError in one line naming it."""
    for name in names:
        top = out / name
        if top.is_symlink() or not top.is_dir():
            continue
        for here, _dirs, files in os.walk(top):
            if LOCK in files:
                try:
                    RunLock.check_free(here)
                except LockBusy as busy:
                    raise ValueError(printable(
                        f"--out {out} holds {here}, a run directory in use (pid {busy.holder}): a report rerun moves "
                        "what --out holds, which would stop that run; wait for it to end, or give another --out"
                    )) from None  # fmt: skip


def _kept_clash(out: Path) -> ValueError:
    """The error for a file of :data:`KEPT`'s name in ``out`` that svdbench did not write: never deleted."""
    return ValueError(f"--out {out} holds {KEPT}, which this report writes: move yours or give another --out")


@contextlib.contextmanager
def staged(out: Path) -> Iterator[Path]:
    """``with staged(out) as tmp:`` write the report into ``tmp`` (mode as a plain ``mkdir`` makes it; replacing a
    directory ``out``, that one's mode and group);
    on leaving without an error ``tmp`` becomes ``out`` (``out`` made absolute first: ``--out .`` too);
    on an error ``tmp`` is removed, ``out`` as it was (what had been moved out of it is moved back) and
    the error re-raised (an OSError naming its file). Holds ``out``'s lock throughout (a second report waits,
    saying so). What a killed report left beside ``out`` is put right first (:func:`_recover`). No report written:
    the directories above ``out`` it made are removed again."""
    out = Path(os.path.abspath(out))
    check_out(out)
    made = [p for p in out.parents if not os.path.lexists(p)]  # removed again when no report is written
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        lock, stem = _names(out)
        with _report_lock(out, lock):
            yield from _staged(out, stem)
    except BaseException:
        remove_empty_dirs(made)
        raise


def _staged(out: Path, stem: str) -> Iterator[Path]:
    """:func:`staged` under ``out``'s lock."""
    _recover(out, stem)
    check_out(out)
    parent = os.open(out.parent, os.O_RDONLY | os.O_DIRECTORY)  # tmp's folder, wherever it is moved meanwhile
    try:
        yield from _staged_in(out, stem, parent)
    finally:
        os.close(parent)


def _staged_in(out: Path, stem: str, parent: int) -> Iterator[Path]:
    """:func:`_staged` with ``parent``, the open directory the report is staged in: a staging directory is
    removed from it even where ``--out``'s parent was moved meanwhile (it was left there, half a report)."""
    tmp = Path(tempfile.mkdtemp(prefix=stem, suffix=".tmp", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    kept: list[str] = []  # what was moved from out into tmp: a W&B run, a note
    before = identity(out)
    try:
        yield tmp
        if identity(out) != before:  # a link, or another's directory, put at --out meanwhile: none of it is moved
            raise ValueError(f"--out {out} was replaced (by a link or another directory) while this report was "
                             "written: left as it is, and the report not written; run it again")  # fmt: skip
        if out.is_dir():
            previous = _previous_files(out)
            clash = sorted(e.name for e in out.iterdir() if not previous(e.name) and (tmp / e.name).exists())
            if clash:  # a file of yours of a name this report writes: neither is replaced by the other
                raise ValueError(f"--out {out} holds {clash[0]}, which this report writes: move yours or give "
                                 "another --out")  # fmt: skip
            if os.path.lexists(out / KEPT) and _read_kept(out / KEPT) is None:  # put there while this report ran
                raise _kept_clash(out)
            # KEPT: a list of svdbench's, left by a report killed after its swap; it goes with the old directory
            yours = [e.name for e in out.iterdir() if not previous(e.name) and e.name != KEPT]
            _check_no_run_under_way(out, yours)  # one started since check_out: moved, it would stop
            _keep_mode(out, tmp)  # the directory as private (or as shared) as it was
            _write_kept(tmp, yours)  # before any is moved: a killed report's are found and put back
            for name in yours:  # keep what is not the report's (a W&B run, a note)
                os.replace(out / name, tmp / name)
                kept.append(name)
            _swap(out, tmp)
            (out / KEPT).unlink(missing_ok=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        for name in kept:  # back where it was, before tmp goes
            with contextlib.suppress(OSError):
                os.replace(tmp / name, out / name)
        shutil.rmtree(tmp.name, dir_fd=parent, ignore_errors=True)
        raise


#: the list, in a report's staging directory, of the entries of yours moved into it from ``--out``
#: (``{"svdbench": KEPT_MARK, "names": [...]}``: a file of this name that is not so is not svdbench's)
KEPT = ".svdbench-kept.json"
KEPT_MARK = "entries of --out a report rerun keeps"


def _names(out: Path) -> tuple[str, str]:
    """The report lock's name beside ``out`` and the start of its staging directories' names: of a digest of
    ``out``'s whole name (``.svdbench-report-<16 hex>``), so that they fit beside any legal name, tell every
    ``--out`` apart however long the names, and never meet a run's lock or a directory of yours."""
    digest = hashlib.sha256(os.fsencode(out.name)).hexdigest()[:16]
    return f".svdbench-report-{digest}.lock", f".svdbench-report-{digest}-"


@contextlib.contextmanager
def _report_lock(out: Path, name: str) -> Iterator[None]:
    """``out``'s report lock; when another report holds it, a line saying so, then wait for it."""
    try:
        lock = RunLock(out.parent, name=name).__enter__()
    except LockBusy as err:
        waiting = f"waiting: another report is writing --out {out} (pid {err.holder})"
        print(printable(waiting), file=sys.stderr, flush=True)
        lock = RunLock(out.parent, name=name, wait=True).__enter__()
    try:
        yield
    finally:
        lock.__exit__()


def _keep_mode(out: Path, tmp: Path) -> None:
    """``tmp``, about to take the place of the directory ``out``, takes its group (where this user may give it)
    and its permission bits, setgid included: a report rerun never opens a private ``--out`` to everyone."""
    st = out.stat()
    with contextlib.suppress(OSError):  # a group this user is not in: the mode still follows
        os.chown(tmp, -1, st.st_gid)
    os.chmod(tmp, stat.S_IMODE(st.st_mode))  # after chown, which may clear setgid


def _write_kept(tmp: Path, names: list[str]) -> None:
    part = tmp / f"{KEPT}.part"
    part.write_text(json.dumps({"svdbench": KEPT_MARK, "names": names}), encoding="utf-8")
    os.replace(part, tmp / KEPT)


def _read_kept(path: Path, old: bool = False) -> list[str] | None:
    """The names in svdbench's :data:`KEPT` at ``path``; None where it is not svdbench's (not a regular file, not
    of its format). ``old``: also a plain list of names, as an older version wrote it (in a staging directory of
    svdbench's, where no file of yours is)."""
    if path.is_symlink():
        return None
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and data.keys() == {"svdbench", "names"} and data["svdbench"] == KEPT_MARK:
        data = data["names"]
    elif not old:
        return None
    return data if isinstance(data, list) and all(isinstance(n, str) for n in data) else None


def _recover(out: Path, stem: str) -> None:
    """Put right what a report killed while it swapped left beside ``out`` (under ``out``'s lock, so no report is
    running): the previous report back where ``out`` is missing, the entries of yours it had moved into its
    staging back into ``out``; then the leftovers removed. A staging whose entries cannot all go back (an entry
    of that name in ``out`` meanwhile, an unreadable list) is left where it is, with a warning naming it."""
    for old in out.parent.glob(f"{glob.escape(stem)}*.old"):
        if old.is_dir() and not old.is_symlink():
            if not os.path.lexists(out) and (old / out.name).is_dir():
                os.replace(old / out.name, out)
            shutil.rmtree(old, ignore_errors=True)
    for tmp in out.parent.glob(f"{glob.escape(stem)}*.tmp"):
        if not tmp.is_dir() or tmp.is_symlink():
            continue
        names = _read_kept(tmp / KEPT, old=True) if os.path.lexists(tmp / KEPT) else []
        left = names is None
        for name in names or []:
            if "/" in name or not os.path.lexists(tmp / name):
                continue
            out.mkdir(exist_ok=True)
            if os.path.lexists(out / name):
                left = True
            else:
                os.replace(tmp / name, out / name)
        if left:
            print(printable(f"warning: {tmp} holds what a killed report had moved out of --out {out}: look through it"),
                  file=sys.stderr)  # fmt: skip
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _swap(out: Path, tmp: Path) -> None:
    """``tmp`` takes the place of the directory ``out``; the old one is moved aside, then removed (also when
    the swap fails: nothing is left beside ``out``)."""
    old = Path(tempfile.mkdtemp(prefix=_names(out)[1], suffix=".old", dir=out.parent))
    try:
        os.replace(out, old / out.name)
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(old / out.name, out)
            raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
