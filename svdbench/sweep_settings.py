"""A sweep's own settings, checked before it starts: the report that ends it (``hydra.callbacks.report``), the
sweeper's and launcher's counts and directions, and a launcher that cannot start on this machine."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from omegaconf import OmegaConf

from .command_line import fail
from .errors import one_line, printable
from .report.outdir import check_out

__all__ = ["check_launcher", "check_report_callback", "check_report_out", "check_sweeper"]

#: launchers that need a program on the PATH: the part of ``hydra.launcher._target_`` -> (program, what)
LAUNCHER_NEEDS = {"SlurmLauncher": ("srun", "a SLURM cluster (srun and sbatch on the PATH)")}


def check_report_callback(node) -> None:
    """The sweep's report at its end (``hydra.callbacks.report``): ``enabled`` true or false, ``split`` a
    key or a list of keys; one line (exit code 2) otherwise."""
    if node is None:
        return
    unknown = sorted(set(node) - {"_target_", "out", "split", "enabled"})
    if unknown:
        fail(f"hydra.callbacks.report.{unknown[0]} is not a key of the sweep's report: out, split or enabled")
    if node.get("_target_") != "svdbench.sweep_report.ReportAtEnd":
        fail(f"hydra.callbacks.report._target_ must be svdbench.sweep_report.ReportAtEnd, got {node.get('_target_')!r}")
    enabled = node.get("enabled", True)
    if not isinstance(enabled, bool):
        fail(f"hydra.callbacks.report.enabled must be true or false, got {enabled!r}")
    split = node.get("split", ())
    is_list = isinstance(split, (list, tuple)) or OmegaConf.is_list(split)
    if not (isinstance(split, str) or (is_list and all(isinstance(k, str) for k in split))):
        fail(f"hydra.callbacks.report.split must be a config key or a list of them, got {split!r}")


def check_report_out(node, sweep_dir: str, job_dirs: Iterable[tuple[str, Path]] = ()) -> None:
    """The directory the sweep's report goes to (``hydra.callbacks.report.out``, default ``<sweep dir>/report``)
    can take it, by the rules of ``svdbench report --out`` (:func:`svdbench.report.outdir.check_out`: no link, no
    file, no files of yours without a report, no mount point), and is apart from the sweep's own directories
    (``job_dirs``: (job name, directory)): neither the sweep directory or a directory above it, nor a job's
    directory, above one or inside one, which the jobs fill before the report is made); and every job's directory
    inside the sweep's, which the report reads. One line (exit code 2) before the first job, not after the last."""
    if node is None or node.get("enabled", True) is False:
        return
    out = os.path.expanduser(str(node.get("out"))) if node.get("out") else str(Path(sweep_dir) / "report")
    where, sweep = Path(os.path.realpath(str(out))), Path(os.path.realpath(sweep_dir))  # links resolved: one place
    for name, d in job_dirs:
        job = Path(os.path.realpath(d))
        if job != sweep and sweep not in job.parents:
            fail(printable(f"{name} {os.path.abspath(d)} lies outside the sweep directory {sweep}, which the sweep's "
                           "report reads: give a hydra.sweep.subdir inside it (relative, no '..'), or "
                           "hydra.callbacks.report.enabled=false"))  # fmt: skip
    for name, d in [("the sweep directory", Path(sweep_dir)), *job_dirs]:
        d = Path(os.path.realpath(d))
        if where == d or where in d.parents or (name != "the sweep directory" and d in where.parents):
            how = "is" if where == d else ("holds" if where in d.parents else "lies inside")
            fail(printable(f"the sweep's report (hydra.callbacks.report) {where} {how} {name} {d}: the jobs write "
                           "there; give the report a directory of its own "
                           "(++hydra.callbacks.report.out=DIR)"))  # fmt: skip
    try:
        check_out(Path(str(out)))
    except ValueError as err:
        fail(printable(f"the sweep's report (hydra.callbacks.report): {err}"))


def check_sweeper(sweeper, launcher) -> None:
    """The sweeper's and launcher's counts and directions, checked before the sweep (each was a traceback
    from the plugin, some after multirun.yaml was written): Optuna's ``n_trials`` and ``n_jobs`` >= 1 and
    ``direction`` what svdbench returns (maximize: top-1; [maximize, minimize]: top-1 and MACs), the basic
    sweeper's ``max_batch_size`` >= 1 (or null), a launcher's ``n_jobs`` not 0 (joblib: -1 is every core)."""

    def positive(node, key: str, allow_none: bool = False, allow_negative: bool = False) -> None:
        if node is None or key not in node:
            return
        v = node.get(key)
        count = isinstance(v, int) and not isinstance(v, bool)
        if not ((v is None and allow_none) or (count and (v >= 1 or (allow_negative and v < 0)))):
            where = "hydra.sweeper" if node is sweeper else "hydra.launcher"
            wanted = "a count >= 1" + (" or -1 (every core)" if allow_negative else "")
            fail(f"{where}.{key} must be {wanted}, got {v!r}")

    if sweeper is not None and "optuna" in str(sweeper.get("_target_", "")).lower():
        positive(sweeper, "n_trials")
        positive(sweeper, "n_jobs")
        direction = sweeper.get("direction")
        given = list(direction) if OmegaConf.is_list(direction) else [direction]
        directions = [str(getattr(d, "name", d)).lower() for d in given]  # the plugin's default is an enum
        shown = directions[0] if len(directions) == 1 else f"[{', '.join(directions)}]"
        if not directions or any(d not in ("minimize", "maximize") for d in directions):
            fail(f"hydra.sweeper.direction must be minimize or maximize (or a list of them), got {shown}")
        if directions not in (["maximize"], ["maximize", "minimize"]):  # what app.objective returns, in this order
            fail(f"hydra.sweeper.direction is {shown}: svdbench returns top-1, to maximize, and for a second "
                 "objective the MACs, to minimize: give maximize or [maximize,minimize]")  # fmt: skip
        check_storage(sweeper.get("storage"), sweeper.get("study_name"), directions)
    elif sweeper is not None:
        positive(sweeper, "max_batch_size", allow_none=True)
    positive(launcher, "n_jobs", allow_none=True, allow_negative=True)


def check_storage(storage, study_name, directions: list[str]) -> None:
    """Optuna's ``hydra.sweeper.storage`` (null: in memory) can be used before the sweep starts (each case was
    Optuna's or SQLAlchemy's traceback, some after a trial was asked for in the study): a database URL; for SQLite,
    a file in a folder that exists; a study of that name there runs in the same directions. Another search space
    in the same study is Optuna's to refuse (its message, in one line)."""
    if storage is None:
        return
    text = str(storage)
    if "://" not in text:
        fail(f"hydra.sweeper.storage={text!r} is not a database URL (sqlite:///path/to/study.db)")
    if text.startswith("sqlite:///"):
        where = Path(text.removeprefix("sqlite:///"))
        if not where.parent.is_dir():
            fail(f"hydra.sweeper.storage={text!r}: the folder {where.parent} does not exist")
        if not where.exists():
            return  # a new study
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        summaries = optuna.get_all_study_summaries(storage=text)
    except Exception as err:  # not a database, a server that cannot be reached, ...
        fail(f"hydra.sweeper.storage={text!r} cannot be opened ({one_line(err, with_type=True)})")
    for study in summaries:
        if study.study_name == study_name:
            theirs = [d.name.lower() for d in study.directions]
            if theirs != directions:
                fail(f"hydra.sweeper.storage: its study {study_name!r} runs in the directions {theirs}, this sweep's "
                     f"are {directions}: give another hydra.sweeper.study_name, or the same directions")  # fmt: skip


def check_launcher(target: str) -> None:
    """A launcher that cannot start here is refused in one line before the sweep (submitit's SLURM
    launcher off a cluster), instead of its traceback."""
    for part, (program, what) in LAUNCHER_NEEDS.items():
        if part in target and shutil.which(program) is None:
            fail(
                f"hydra/launcher: {target.rsplit('.', 1)[-1]} needs {what}; on this machine run the sweep without it "
                "(the default launcher) or with hydra/launcher=local_parallel"
            )
