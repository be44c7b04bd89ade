"""Weights & Biases tracking: the one module that imports ``wandb`` (lazily, only when used).

- :func:`start` returns a tracker for one training run: ``logger.name=wandb`` gives a
  :class:`WandbTracker` (config, per-epoch metrics, summary metrics, per-layer ranks and the
  operating points as tables), anything else a :class:`Tracker` that does nothing. Call
  :meth:`Tracker.finish` always, with ``exit_code=1`` on failure (in a Hydra multirun, runs would
  otherwise merge). :class:`Pending` starts it only once the run directory is the run's own
  (:meth:`Pending.begin`): a run refused, or handed back complete, makes no W&B run; a resumed one
  continues its W&B run (what results.json records of it: :mod:`svdbench.tracked_runs`).
- :func:`log_report` logs a report's typed tables (:class:`ReportTables`, built by
  :mod:`svdbench.report`: comparison table, Pareto scatter, plot, front quality, matched targets
  and paired verdicts) as a run of its own and,
  online and logged in, also saves a W&B Report (``wandb_workspaces.reports.v2``).

Mode: ``offline`` by default (runs are written under ``<dir>/wandb/offline-run-*``; upload later with
``wandb sync``), ``online`` or ``disabled``. ``WANDB_MODE`` in the environment overrides the
configured mode. The directory is ``logger.dir``, else ``$WANDB_DIR``, else the run directory.
A tracker that cannot start (e.g. online without a login) logs one warning and does nothing: a
training run is never lost to its tracking.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import tracked_runs
from .errors import one_line
from .results import RunRecord

log = logging.getLogger("svdbench")
MODES = ("offline", "online", "disabled")
SUMMARY_KEYS = (
    "status", "top1", "macs", "macs_total", "params", "speedup", "compression", "macs_dense", "params_dense",
)  # fmt: skip


def resolve_mode(mode: str | None) -> str:
    """``$WANDB_MODE`` if set (``dryrun`` = offline, ``run`` = online), else ``mode``, else offline."""
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    env = {"dryrun": "offline", "run": "online"}.get(env, env)
    if env in MODES:
        return env
    return mode or "offline"


def group_from_sweep_dir(sweep_dir: str | os.PathLike) -> str:
    """A W&B group name shared by the jobs of one multirun: the sweep directory's last two parts
    (``multirun/2024-05-01/12-00-00`` -> ``2024-05-01_12-00-00``)."""
    parts = [p for p in Path(sweep_dir).parts if p not in ("/", "")]
    return "_".join(parts[-2:])[-128:] or "sweep"


def _scalar(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class Tracker:
    """No tracking (``logger=console``): every call does nothing."""

    def reserve(self, run_dir: str | os.PathLike, previous: dict | None = None) -> dict | None:
        """What the run's results.json records of its W&B run (``tracking``), before it starts: here, what an
        earlier leg recorded (``previous``), so that a run replacing this one still removes its folders."""
        return previous

    def begin(self) -> None:
        """Start the W&B run :meth:`reserve` recorded (once that record is written)."""

    def log_epoch(self, rec: dict, step: int | None = None) -> None:
        """One per-epoch record of the training loop (stage, epoch, losses, top-1, lr), at W&B ``step`` (None:
        the next)."""

    def log_results(self, rec: RunRecord) -> None:
        """The run's final record."""

    def finish(self, exit_code: int = 0) -> None:
        """Close the run (idempotent)."""


class WandbTracker(Tracker):
    """One W&B run; ``info`` is its ``tracking`` record (:mod:`svdbench.tracked_runs`), its ``steps`` kept up to
    date: the record written when the run is cut says where a resumed leg goes on logging."""

    def __init__(self, run, info: dict | None = None) -> None:
        self.run = run
        self.info = info if info is not None else {"steps": 0}
        self.step = self.info["steps"]
        self.finished = False

    def _safely(self, what: str, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as err:  # tracking never stops training
            log.warning("W&B: could not log %s: %s", what, err)

    def log_epoch(self, rec: dict, step: int | None = None) -> None:
        self._safely("epoch metrics", self._log_epoch, rec, step)

    def log_results(self, rec: RunRecord) -> None:
        self._safely("results", self._log_results, rec)

    def _log_epoch(self, rec: dict, step: int | None) -> None:
        stage = rec.get("stage", "train")
        metrics = {f"{stage}/{k}": v for k, v in rec.items() if k not in ("stage", "epoch") and _scalar(v)}
        metrics["epoch"] = rec.get("epoch")
        step = self.step if step is None else step
        self.run.log(metrics, step=step)
        self.step = max(self.step, step + 1)
        self.info["steps"] = self.step

    def _log_results(self, rec: RunRecord) -> None:
        import wandb

        summary = {k: getattr(rec, k) for k in SUMMARY_KEYS if getattr(rec, k) is not None}
        summary.update({f"stage_top1/{k}": v for k, v in rec.stage_top1.items()})
        if "total" in rec.wall_time:
            summary["wall_time"] = rec.wall_time["total"]
        self.run.summary.update(summary)
        tables: dict[str, Any] = {}
        if rec.ranks.get("full"):
            after = rec.ranks.get("after", {})
            rows = [[name, full, after.get(name)] for name, full in rec.ranks["full"].items()]
            tables["ranks"] = wandb.Table(columns=["layer", "rank_full", "rank_after"], data=rows)
        if rec.operating_points:
            rows = [[p.get("label"), p.get("status"), p.get("top1"), p.get("macs")] for p in rec.operating_points]
            tables["operating_points"] = wandb.Table(columns=["label", "status", "top1", "macs"], data=rows)
        if tables:
            self.run.log(tables, step=self.step)

    def finish(self, exit_code: int = 0) -> None:
        if not self.finished:
            self.finished = True
            self.run.finish(exit_code=exit_code)


def _wandb_dir(logger_cfg, run_dir: str | os.PathLike) -> str:
    """Where W&B writes its ``wandb/`` folder: ``logger.dir``, else ``$WANDB_DIR``, else the run directory."""
    return getattr(logger_cfg, "dir", None) or os.environ.get("WANDB_DIR") or str(run_dir)


class Pending(Tracker):
    """The tracker of ``logger_cfg``: :meth:`reserve` chooses its W&B run id (the earlier legs' where the run
    goes on in it), which the run records before :meth:`begin` starts W&B (:func:`start`) once the run directory
    is the run's own; until then, and when it is never begun, every call does nothing."""

    def __init__(self, logger_cfg, **start_args) -> None:
        self.logger_cfg, self.start_args, self.tracker = logger_cfg, start_args, Tracker()
        self.info: dict | None = None

    def reserve(self, run_dir: str | os.PathLike, previous: dict | None = None) -> dict | None:
        wandb = getattr(self.logger_cfg, "name", "console") == "wandb"
        if not wandb or resolve_mode(getattr(self.logger_cfg, "mode", None)) == "disabled":
            return previous
        root = _wandb_dir(self.logger_cfg, run_dir)
        self.info = tracked_runs.reserve(run_dir, root, previous, tracked_runs.new_id())
        return self.info

    def begin(self) -> None:
        if self.info is not None:
            self.tracker = start(self.logger_cfg, info=self.info, **self.start_args)

    def log_epoch(self, rec: dict, step: int | None = None) -> None:
        self.tracker.log_epoch(rec, step)

    def log_results(self, rec: RunRecord) -> None:
        self.tracker.log_results(rec)

    def finish(self, exit_code: int = 0) -> None:
        self.tracker.finish(exit_code)


def start(
    logger_cfg,
    *,
    config: dict,
    run_dir: str | os.PathLike,
    group: str | None = None,
    name: str | None = None,
    tags: list[str] | None = None,
    info: dict | None = None,
) -> Tracker:
    """The tracker configured by ``logger_cfg`` (a ``LoggerConfig`` or anything with its fields). ``info``: the
    run's ``tracking`` record (:meth:`Pending.reserve`): the W&B run of that id, its folder recorded there and
    marked as the run directory's (:func:`svdbench.tracked_runs.claim`)."""
    if getattr(logger_cfg, "name", "console") != "wandb":
        return Tracker()
    mode = resolve_mode(getattr(logger_cfg, "mode", None))
    wdir = _wandb_dir(logger_cfg, run_dir)
    all_tags = [*(getattr(logger_cfg, "tags", None) or []), *(tags or [])]
    same = {"id": info["id"], "resume": "allow"} if info else {}
    try:
        Path(wdir).mkdir(parents=True, exist_ok=True)  # a place that cannot be made: tracking off, the run goes on
        import wandb

        run = wandb.init(
            project=getattr(logger_cfg, "project", None) or "svdbench",
            entity=getattr(logger_cfg, "entity", None),
            mode=mode,
            group=getattr(logger_cfg, "group", None) or group,
            name=name,
            tags=list(dict.fromkeys(str(t)[:64] for t in all_tags)) or None,
            dir=wdir,
            config=config,
            job_type="train",
            reinit="finish_previous",
            **same,
        )
    except Exception as err:  # never lose a training run to its tracking
        log.warning("W&B tracking off (mode %s): %s", mode, one_line(err))
        return Tracker()
    if run is None:
        return Tracker()
    if info is not None and getattr(run, "dir", None) and mode != "disabled":  # <dir>/wandb/[offline-]run-<time>-<id>
        tracked_runs.claim(run_dir, info, Path(run.dir).parent)
    return WandbTracker(run, info)


# ---------------------------------------------------------------- report


@dataclass
class TypedTable:
    """A table as W&B logs it: its column names, and rows whose numbers are numbers."""

    columns: list[str]
    rows: list[list]


@dataclass
class ReportTables:
    """A report as typed tables, what :func:`log_report` logs (built by :mod:`svdbench.report`)."""

    comparison: TypedTable  # one row per configuration
    fronts: TypedTable  # Pareto front members: scope, then the comparison's columns
    failed: TypedTable  # the failed runs
    hypervolume: TypedTable  # front quality: one row per task and method
    matched: TypedTable  # test top-1 at each target speed-up: one row per task and method (none: no targets)
    paired: TypedTable  # the paired verdicts: one row per task, target and pair of methods
    markdown: str  # the comparison table as Markdown
    quality_markdown: str  # the front-quality table and the verdicts as Markdown
    targets_markdown: str  # the matched table and the paired verdicts as Markdown (or why there are none)
    png: Path | None  # the Pareto plot, None when none was drawn
    out: Path  # the report directory
    sources: list[str]  # the run directories the rows come from


def log_report(
    tables: ReportTables, *, project: str = "svdbench", entity: str | None = None, mode: str | None = None
) -> str | None:
    """Log a report's ``tables`` to W&B as a run (``job_type=report``): the comparison table, the
    front table, the front-quality table (``hypervolume``), the matched table and the paired verdicts
    (``matched``, ``paired``), a ``wandb.plot.scatter`` of top-1 against MACs and the PNG. Online with a login it
    also saves a W&B Report with the Pareto panel and the table; otherwise it says in one line what
    it skipped. Returns the W&B run directory (None when disabled)."""
    mode = mode or resolve_mode(None)  # an explicit mode (svdbench report --mode) wins over $WANDB_MODE
    local = Path(tables.out) / "report.md"
    if mode == "disabled":
        print(f"W&B disabled: nothing logged; local report: {local}")
        return None
    import wandb

    wdir = os.environ.get("WANDB_DIR") or str(tables.out)
    run = wandb.init(
        project=project,
        entity=entity,
        mode=mode,
        dir=wdir,
        job_type="report",
        name=f"report-{Path(tables.out).resolve().parent.name}",
        reinit="finish_previous",
        config={"sources": tables.sources},
    )
    try:
        table = wandb.Table(columns=tables.comparison.columns, data=tables.comparison.rows)
        payload = {
            "comparison": table,
            "pareto": wandb.Table(columns=tables.fronts.columns, data=tables.fronts.rows),
            "pareto_scatter": wandb.plot.scatter(table, "macs", "top1", title="top-1 (%) against MACs"),
        }
        if tables.png is not None:
            payload["pareto_plot"] = wandb.Image(str(tables.png))
        for name in ("hypervolume", "matched", "paired", "failed"):  # logged when they have rows
            t = getattr(tables, name)
            if t.rows:
                payload[name] = wandb.Table(columns=t.columns, data=t.rows)
        run.log(payload)
        run.summary.update({"configurations": len(tables.comparison.rows), "failed": len(tables.failed.rows)})
        run_dir = run.dir
        if mode == "online" and _logged_in():
            url = _save_report(tables, project=run.project, entity=run.entity, run_name=run.name)
            print(f"W&B Report: {url}")
        else:
            print(
                f"W&B {mode}: logged the table and the Pareto scatter in {Path(run_dir).parent}; skipped the W&B "
                f"Report (needs mode online and a login); local report: {local}"
            )
    except BaseException:
        run.finish(exit_code=1)
        raise
    run.finish()
    return run_dir


def _logged_in() -> bool:
    import wandb

    try:
        return bool(wandb.api.api_key)
    except Exception:
        return False


def _quality_blocks(wr, tables: ReportTables, runset) -> list:
    """The Report's front-quality part: the ``hypervolume`` table and the verdicts (none without rows)."""
    if not tables.hypervolume.rows:
        return []
    return [
        wr.H1("Front quality"),
        wr.PanelGrid(runsets=[runset], panels=[wr.WeavePanelSummaryTable(table_name="hypervolume")]),
        wr.MarkdownBlock(tables.quality_markdown),
    ]


def _targets_blocks(wr, tables: ReportTables, runset) -> list:
    """The Report's matched targets: the ``matched`` and ``paired`` tables and their Markdown (none without
    a matched row)."""
    if not tables.matched.rows:
        return []
    names = ("matched", "paired") if tables.paired.rows else ("matched",)
    return [
        wr.H1("Matched targets and paired verdicts"),
        wr.PanelGrid(runsets=[runset], panels=[wr.WeavePanelSummaryTable(table_name=n) for n in names]),
        wr.MarkdownBlock(tables.targets_markdown),
    ]


def _save_report(tables: ReportTables, *, project: str, entity: str | None, run_name: str) -> str:
    """A W&B Report: a scatter of top-1 against MACs over the project's runs, the report run's
    comparison and front tables, the Markdown table, then front quality (table and verdicts) when
    there is any, then the matched table and paired verdicts when runs have targets. Needs the network
    and a login."""
    import wandb_workspaces.reports.v2 as wr

    runset = wr.Runset(entity=entity or "", project=project, name="svdbench runs")
    report_runs = wr.Runset(entity=entity or "", project=project, name="this report", query=run_name)
    doc = wr.Report(
        project=project,
        entity=entity or "",
        title=f"svdbench: top-1 against MACs ({Path(tables.out).resolve().parent.name})",
        description="Pareto fronts (maximize top-1, minimize MACs) and comparison table, from svdbench report",
        blocks=[
            wr.H1("Accuracy against MACs"),
            wr.PanelGrid(
                runsets=[runset],
                panels=[
                    wr.ScatterPlot(
                        title="top-1 against MACs (every run)",
                        x=wr.SummaryMetric("macs"),
                        y=wr.SummaryMetric("top1"),
                        log_x=True,
                    )
                ],
            ),
            wr.H1("Comparison and Pareto fronts"),
            wr.PanelGrid(
                runsets=[report_runs],
                panels=[wr.WeavePanelSummaryTable(table_name=t) for t in ("comparison", "pareto")],
            ),
            wr.MarkdownBlock(tables.markdown),
            *_quality_blocks(wr, tables, report_runs),
            *_targets_blocks(wr, tables, report_runs),
        ],
    )
    doc.save()
    return str(getattr(doc, "url", "") or "saved")
