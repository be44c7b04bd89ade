"""The report: read, compute, and write every file (:func:`build_report`); report.md and summary.json.

Files written to ``out``: ``comparison.{md,csv,tex}`` and ``comparison_<method>.{md,csv,tex}``,
``pareto.csv`` and ``pareto.{png,svg}``, ``hypervolume.{csv,tex}`` and ``verdicts.csv``, ``matched.{md,csv,tex}``
and ``paired.{csv,tex}`` (where runs have a target speed-up), ``failed.csv``, ``report.md`` (all of them, plus
the failed and skipped files) and ``summary.json`` (the rows, fronts, selection, budget warnings, front
quality, verdicts, matched table and paired verdicts). The tables are in :mod:`.tables` and
:mod:`.matched_tables`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..axes import MACS, Axis, latency_axis
from ..results import write_json_atomic
from ..tracking import ReportTables
from . import matched_tables, render, tables
from .html import write_html
from .load import Failed, load_runs, warn
from .matched import Matched, Paired, Targets, matched_targets
from .outdir import check_out, is_report_dir, staged
from .plot import plot
from .quality import (
    DENSE_MARGIN,
    LOWEST_MARGIN,
    NO_VERDICT,
    Quality,
    Verdict,
    budget_warnings,
    front_quality,
    verdicts,
)
from .rows import (
    Member,
    Row,
    Selection,
    choose_selection,
    front_members,
    fronts,
    group_rows,
    mark_fronts,
    method_order,
    on_axis,
    split_methods,
    task_name,
)


@dataclass
class Report:
    """What :func:`build_report` computed, and the files it wrote."""

    rows: list[Row]
    failed: list[Failed]
    skipped: list[tuple[Path, str]]
    out: Path
    files: list[Path] = field(default_factory=list)
    selection: Selection = Selection("test", "test", "fronts selected on test top-1")
    budget: list[str] = field(default_factory=list)  # budget warnings, one sentence per task
    quality: list[Quality] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    targets: Targets = field(default_factory=Targets)  # the matched table and the paired verdicts


class NoResults(ValueError):
    """Nothing under the paths to report: no completed or failed run (on the report's axis)."""


class NotWritten(OSError):
    """The report could not be written (a full disk, a failed swap): the previous one, if any, is unchanged."""


def build_report(
    paths: Sequence[str | Path],
    out: str | Path | None = None,
    split: Sequence[str] = (),
    select: str = "val",
    axis: Axis = MACS,
    reference: str | None = None,
    runtime: str | None = None,
    batch: int | None = None,
) -> Report:
    """Read every results.json under ``paths`` and write the report files into ``out``; ``split``:
    config keys whose values tell methods apart (:func:`~.rows.split_methods`); ``select``: ``val`` or
    ``test``, what the fronts are computed on (:func:`~.rows.choose_selection`); ``axis``: their cost,
    MACs or measured latency (:mod:`svdbench.axes`; runs without that figure are left out with one
    warning); ``reference``: the method the paired verdicts compare every method with (None: every pair;
    ValueError, before anything is written, when no method of that name has a target speed-up);
    ``runtime``, ``batch``: the realized speed-up in the matched table (default: the latency axis's, else
    onnxruntime/cpu at batch 64). Budget warnings go to stderr."""
    if select not in ("val", "test"):
        raise ValueError(f"--select {select!r}: expected val or test")
    if not paths:
        raise ValueError("no PATH given")
    if out is None and not Path(paths[0]).exists():  # a mistyped first PATH: no directory is made at it
        raise ValueError(f"{paths[0]}: no such directory, and the report goes to <first PATH>/report by default: "
                         "give a PATH that exists first, or --out")  # fmt: skip
    out = Path(out) if out is not None else Path(paths[0]) / "report"
    if Path(paths[0]).is_file() and out == Path(paths[0]) / "report":
        out = Path(paths[0]).parent / "report"
    runs, failed, skipped = load_runs(paths)
    loaded = len(runs)
    runs = on_axis(runs, axis, skipped)
    split_methods(runs, split)
    rows = group_rows(runs, axis)
    sel = choose_selection(rows, select)
    mark_fronts(rows, sel.key)
    runtime = runtime or (axis.runtime if axis.is_latency else None) or "onnxruntime/cpu"
    batch = batch or (axis.batch if axis.is_latency else None) or 64
    targets = matched_targets(rows, reference, runtime, batch)
    if not rows and not failed:  # before anything is written: the previous report stays
        if loaded:
            hint = " (the warning above says which figures they have and how to time them)" if axis.is_latency else \
                " (the warnings above say why)"  # fmt: skip
            raise NoResults(f"none of the {loaded} completed runs has a figure on the axis: {axis.what}{hint}")
        raise NoResults(f"no usable results.json under {', '.join(map(str, paths))}")
    check_out(out)
    quality = front_quality(rows, sel.key)
    budget = budget_warnings(rows)
    rep = Report(rows, failed, skipped, out, selection=sel, budget=budget, quality=quality, verdicts=verdicts(quality),
                 targets=targets)  # fmt: skip
    for line in rep.budget:
        warn(line)
    had_report = is_report_dir(out)
    try:
        with staged(out) as tmp:
            rep.out = tmp
            write_files(rep, paths)
    except OSError as err:
        where = f" ({err.filename})" if err.filename else ""
        kept = "; the previous one there is unchanged" if had_report else ""
        raise NotWritten(f"the report was not written to {out}: {err.strerror or err}{where}{kept}") from None
    finally:
        rep.out = out
    rep.files = [out / f.name for f in rep.files]
    return rep


def write_files(rep: Report, paths: Sequence) -> None:
    """Every file of the report into ``rep.out``."""
    out, rows = rep.out, rep.rows
    caption = "All methods: mean and standard deviation over seeds"
    rep.files += tables.write_comparison(out, "comparison", rows, caption)
    stems = tables.file_stems(sorted({r.method for r in rows}, key=method_order))
    for m, stem in stems.items():
        rep.files += tables.write_comparison(out, f"comparison_{stem}", [r for r in rows if r.method == m], m)
    members = fronts(rows)
    rep.files.append(render.write_csv(out / "pareto.csv", tables.front_columns(rows), members))
    rep.files += tables.write_quality(out, rep.quality, rep.verdicts, rep.selection.metric)
    rep.files += matched_tables.write_targets(out, rep.targets)
    rep.files.append(render.write_csv(out / "failed.csv", tables.FAILED, rep.failed))
    rep.files += plot(rows, out, rep.selection.key)
    latency = latency_axis(rep.targets.runtime, rep.targets.batch)
    rep.files.append(write_html(out / "report.html", rows, rep.selection.key, latency, html_tables(rep, members)))
    p = out / "report.md"
    render.write_text(p, markdown_report(rep, paths, members))
    rep.files.append(p)
    rep.files.append(write_json_atomic(out / "summary.json", render.printable_data(summary_dict(rep, members))))


def html_tables(rep: Report, members: Sequence[Member]) -> list[tuple[str, str]]:
    """report.html's tables (heading, table): the comparison, the fronts, front quality, the matched
    table and paired verdicts (where runs had targets), the failed runs (where any failed)."""
    tg = rep.targets
    out = [("Comparison: mean ± std over seeds", render.html_table(tables.comparison_columns(rep.rows), rep.rows,
                                                                  "comparison")),
           ("Pareto fronts", render.html_table(tables.front_columns(rep.rows), members, "fronts"))]  # fmt: skip
    if rep.quality:
        out.append(("Front quality (hypervolume)", render.html_table(tables.QUALITY, rep.quality, "quality")))
    if tg.matched:
        cols = matched_tables.matched_columns(tg)
        out.append((f"Matched target speed-ups (realized: {tg.runtime}, batch {tg.batch})",
                    render.html_table(cols, tg.matched, "matched")))  # fmt: skip
        out.append(("Paired verdicts", render.html_table(matched_tables.PAIRED, tg.paired, "paired")))
    if rep.failed:
        out.append(("Failed runs", render.html_table(tables.FAILED, rep.failed, "failed")))
    return out


def markdown_report(rep: Report, paths: Sequence, members: Sequence[Member]) -> str:
    """report.md: how to read it, then every table."""
    n_runs = sum(len(r.runs) for r in rep.rows)
    axis = rep.rows[0].axis if rep.rows else MACS
    lines = [
        "# svdbench report",
        "",
        f"Sources: {', '.join(render.code_span(str(p)) for p in paths)}. {n_runs} completed runs in {len(rep.rows)} "
        f"configurations; {len(rep.failed)} failed; {len(rep.skipped) - len(rep.failed)} other files skipped.",
        "",
        "top-1: mean ± sample std over seeds (final epoch of the deployed model). MACs: per sample, "
        "deployed model. Δ dense: against the dense configuration of the same task with the most seeds. "
        "front: `overall` = on the Pareto front of all methods of the task, `method` = on its method's "
        f"front only (maximize top-1, minimize {axis.what}; weak dominance, duplicates all kept).",
        *(
            [
                "",
                f"Cost axis: {axis.what}, the median over timed calls of the deployed model (latency (ms)); "
                "realized speed-up = the dense model's median / the deployed model's, measured in the same run. "
                "The MAC columns stay for comparison.",
            ]
            if axis.is_latency
            else [
                "",
                f"Cost axis: {axis.what}: the convolutions only, every decomposed convolution counted as its "
                "pair of factor convolutions at its rank, as the SVD-training authors' code prints it (authors' "
                "MACs, authors' speed-up). The MAC columns (fvcore, deployed model) stay for comparison.",
            ]
            if axis.is_paper
            else []
        ),
        "",
        f"Selection: {rep.selection.reason}.",
        "",
        "## All methods",
        "",
        *[f"**Warning:** {w}." for w in rep.budget],
        *([""] if rep.budget else []),
        tables.comparison_markdown(rep.rows) if rep.rows else "No completed runs.\n",
    ]
    if any(f.name == "pareto.png" for f in rep.files):
        lines += [f"![top-1 against {axis.what}](pareto.png)", ""]
    for m in sorted({r.method for r in rep.rows}, key=method_order):
        lines += [
            f"## {' '.join(m.splitlines())}",
            "",
            tables.comparison_markdown([r for r in rep.rows if r.method == m]),
        ]
    lines += ["## Pareto fronts", ""]
    lines.append(render.markdown(tables.front_columns(rep.rows), members)[:-1] if members else "None.")
    lines += ["", "## Front quality", "", quality_section(rep)]
    lines += ["", matched_tables.targets_markdown(rep.targets)]
    lines += ["", "## Failed", ""]
    lines.append(render.markdown(tables.FAILED, rep.failed)[:-1] if rep.failed else "None.")
    other = [(p, why) for p, why in rep.skipped if not why.startswith("failed run")]
    if other:
        lines += ["", "## Skipped files", ""] + [
            f"- {render.code_span(str(p))}: {' '.join(why.splitlines())}" for p, why in other
        ]
    return "\n".join(lines) + "\n"


def quality_section(rep: Report) -> str:
    """The front-quality table and the verdicts, with how they are computed (Markdown)."""
    m = "validation" if rep.selection.metric == "val" else "test"
    axis = rep.rows[0].axis if rep.rows else MACS
    lines = [
        f"Hypervolume of each method's Pareto front, per seed: the area it dominates in the plane x = log2 of "
        f"{axis.speedup_words}, y = {m} top-1 (%), above the reference point x = 0 (1x), "
        f"y = y_ref = the dense reference's mean {m} top-1 minus {DENSE_MARGIN:g} points (in a task without "
        f"a dense reference: the lowest row's mean minus {LOWEST_MARGIN:g}). A seed's front holds that seed's "
        "runs only; hypervolume: mean ± sample std over seeds. Dense runs sit at x = 0 (area 0): not ranked.",
        "",
        render.markdown(tables.QUALITY, rep.quality) if rep.quality else "None (no compressed runs).\n",
        "Verdicts: A > B when mean_A - mean_B > std_A + std_B, else level. A method of a single seed has no "
        "spread to back a ranking: single seed, no verdict (run more seeds).",
        "",
    ]
    lines += [verdict_line(v) for v in rep.verdicts] or ["None (fewer than two compressed methods per task)."]
    return "\n".join(lines) + "\n"


def verdict_line(v: Verdict) -> str:
    """One Markdown list item, the better front first (``a`` first when level)."""
    a, b = (v.b, v.a) if v.gap < -v.spread and v.text != NO_VERDICT else (v.a, v.b)
    cmp = ">" if abs(v.gap) > v.spread else "≤"
    return (
        f"- {task_name(a.task)}: **{v.text}**: {a.method} {tables.hv_text(a)} vs {b.method} {tables.hv_text(b)}; "
        f"|gap| {abs(v.gap):.3f} {cmp} spread {v.spread:.3f}" + (f"; {v.note}" if v.note else "")
    )


# ---------------------------------------------------------------- summary.json and W&B


def row_dict(r: Row) -> dict:
    """A row as its comparison.csv fields, and its configuration (``settings_dict``)."""
    cols = tables.comparison_columns([r])
    return dict(
        zip(render.header(cols), render.cells(cols, r), strict=True),
        settings_dict={k: r.flat[k] for k in sorted(r.flat)},
    )


def task_dict(task: tuple) -> dict:
    """A task (model, dataset, dense MACs) as the first keys of a summary.json entry."""
    return {"model": task[0], "dataset": task[1], "macs_dense": task[2]}


def quality_dict(q: Quality) -> dict:
    return {
        **task_dict(q.task),
        "method": q.method,
        "seeds": q.seeds,
        "hv_mean": q.mean,
        "hv_std": q.std,
        "per_seed": {str(s): q.per_seed[s] for s in q.seeds},
        "y_ref": q.y_ref,
        "reference": q.reference,
    }


def verdict_dict(v: Verdict) -> dict:
    return {
        **task_dict(v.a.task),
        "a": v.a.method,
        "b": v.b.method,
        "gap": v.gap,
        "spread": v.spread,
        "verdict": v.text,
        "note": v.note,
    }


def matched_dict(m: Matched, tg: Targets) -> dict:
    """A row of the matched table: its cells by target, with each seed's top-1."""
    cells = [
        {
            "target": t,
            "seeds": c.seeds,
            "top1": {str(s): c.top1(s) for s in c.seeds},
            "top1_mean": c.mean,
            "top1_std": c.std,
            "n_seeds": c.n,
            "macs_speedup": c.reached,
            "realized_speedup": c.realized(tg.runtime, tg.batch),
        }
        for t, c in m.cells.items()
    ]
    return {**task_dict(m.task), "method": m.method, "cells": cells}


def paired_dict(p: Paired) -> dict:
    """A paired verdict: the per-seed differences (A - B), their mean, std, t quantile and interval."""
    return {
        **task_dict(p.task),
        "target": p.target,
        "a": p.a,
        "b": p.b,
        "seeds": p.seeds,
        "diffs": {str(s): p.diffs[s] for s in p.seeds},
        "mean": p.mean,
        "std": p.std,
        "n": p.n,
        "t": p.t,
        "ci_low": p.low,
        "ci_high": p.high,
        "verdict": p.verdict,
        "note": p.note,
    }


def summary_dict(rep: Report, members: Sequence[Member]) -> dict:
    return {
        "rows": [row_dict(r) for r in rep.rows],
        "fronts": [{"scope": s, **row_dict(r)} for s, r in members],
        "selection": dataclasses.asdict(rep.selection),
        "budget_warnings": rep.budget,
        "hypervolume": [quality_dict(q) for q in rep.quality],
        "verdicts": [verdict_dict(v) for v in rep.verdicts],
        "matched": [matched_dict(m, rep.targets) for m in rep.targets.matched],
        "paired": [paired_dict(p) for p in rep.targets.paired],
        "failed": [{**f.__dict__, "path": str(f.path)} for f in rep.failed],
        "skipped": [{"path": str(p), "reason": why} for p, why in rep.skipped],
        "files": sorted({f.name for f in rep.files} | {"summary.json"}),  # what a later report replaces
    }


def report_tables(rep: Report) -> ReportTables:
    """``rep`` as the typed tables :func:`svdbench.tracking.log_report` logs."""
    png = rep.out / "pareto.png"
    return ReportTables(
        comparison=render.typed(tables.comparison_columns(rep.rows), rep.rows),
        fronts=render.typed(tables.logged_front_columns(rep.rows), front_members(rep.rows)),
        failed=render.typed(tables.FAILED, rep.failed),
        hypervolume=render.typed(tables.QUALITY, rep.quality),
        matched=render.typed(matched_tables.matched_columns(rep.targets), rep.targets.matched),
        paired=render.typed(matched_tables.PAIRED, rep.targets.paired),
        markdown=tables.comparison_markdown(rep.rows),
        quality_markdown=quality_section(rep),
        targets_markdown=matched_tables.targets_markdown(rep.targets),
        png=png if png.is_file() else None,
        out=rep.out,
        sources=sorted({str(x.path.parent) for r in rep.rows for x in r.runs}),
    )
