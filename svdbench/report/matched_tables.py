"""The matched table and the paired verdicts as column lists (:mod:`.columns`), their files and their
report.md sections.

- :func:`matched_columns`: one row per task and method (:class:`~.matched.Matched`), one column per
  target speed-up found, in ``matched.{md,csv,tex}``, report.md ("Matched targets"), summary.json's
  ``matched`` and W&B's ``matched``. A cell is the test top-1 mean ± std over seeds, with ``n=k``
  where it has fewer seeds than its task, the realized speed-up where measured and the reached MAC
  speed-up where it is more than 2 % from the target.
- :data:`PAIRED`: one row per task, target and pair (:class:`~.matched.Paired`), in
  ``paired.{csv,tex}``, report.md ("Paired verdicts"), summary.json's ``paired`` and W&B's ``paired``.

No file is written when no run has a target.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import render
from .columns import Column, data, fields, plain
from .matched import TARGET_TOLERANCE, Cell, Matched, Paired, Targets, target_name, targets
from .tables import pm

SOURCE = "`config.method.speedup`, else `method_details.speedup_target`"


def _seeds(seeds: list) -> str:
    return " ".join(map(str, seeds))


def _signed(v: float | None) -> str:
    return "-" if v is None else f"{v:+.2f}"


def _num(v: float | None, spec: str = ".4f") -> str:
    return "" if v is None else format(v, spec)


# ---------------------------------------------------------------- the matched table (Matched)


def cell_text(m: Matched, t: float, runtime: str, batch: int) -> str:
    """``89.12 ± 0.21 (n=2; 1.43x; MACs 2.08x)``: top-1, then the seeds where the cell has fewer than its
    task, the realized speed-up where measured (``1.43x noisy`` where a seed flagged it), the reached MAC
    speed-up where off the target; ``-``: no runs."""
    c = m.cells.get(t)
    if c is None:
        return "-"
    notes = [f"n={c.n}"] if c.n < len(m.task_seeds) else []
    realized = c.realized(runtime, batch)
    notes += [f"{realized:.2f}x{' noisy' if c.noisy(runtime, batch) else ''}"] if realized is not None else []
    notes += [f"MACs {c.reached:.2f}x"] if c.off_target else []
    return pm(c.mean, c.std, c.n, 2) + (f" ({'; '.join(notes)})" if notes else "")


def _at(t: float, get: Callable[[Cell], object]) -> Callable[[Matched], object]:
    return lambda m: get(m.cells[t]) if t in m.cells else None


def _csv_at(t: float, get: Callable[[Cell], object], spec: str = ".4f") -> Callable[[Matched], str]:
    def cell(m: Matched) -> str:
        v = _at(t, get)(m)
        return "" if v is None else (format(v, spec) if isinstance(v, float) else str(v))

    return cell


def target_column(t: float, runtime: str, batch: int) -> Column[Matched]:
    """The cells at target ``t``; CSV and W&B fields ``top1_mean_<t>x``, ``top1_std_<t>x``, ``n_seeds_<t>x``,
    ``realized_speedup_<t>x`` and ``macs_speedup_<t>x`` (CSV also ``seeds_<t>x``)."""
    x, mean, sd, n = target_name(t), (lambda c: c.mean), (lambda c: c.std), (lambda c: c.n)
    realized, reached = (lambda c: c.realized(runtime, batch)), (lambda c: c.reached)
    return Column(
        x,
        lambda m: cell_text(m, t, runtime, batch),
        align="r",
        csv=fields(
            **{f"top1_mean_{x}": _csv_at(t, mean), f"top1_std_{x}": _csv_at(t, sd), f"n_seeds_{x}": _csv_at(t, n)},
            **{f"seeds_{x}": _csv_at(t, lambda c: _seeds(c.seeds))},
            **{f"realized_speedup_{x}": _csv_at(t, realized), f"macs_speedup_{x}": _csv_at(t, reached)},
        ),
        typed=fields(
            **{f"top1_mean_{x}": _at(t, mean), f"top1_std_{x}": _at(t, sd), f"n_seeds_{x}": _at(t, n)},
            **{f"realized_speedup_{x}": _at(t, realized), f"macs_speedup_{x}": _at(t, reached)},
        ),
    )


def matched_columns(tg: Targets) -> tuple[Column[Matched], ...]:
    """Model, dataset (CSV: and the dense MACs), method, then one column per target found, sorted."""
    return (
        plain("model", lambda m: m.task[0]),
        plain("dataset", lambda m: m.task[1]),
        *data(macs_dense=lambda m: m.task[2]),
        plain("method", lambda m: m.method),
        *(target_column(t, tg.runtime, tg.batch) for t in targets(tg.matched)),
    )


# ---------------------------------------------------------------- paired verdicts (Paired)


def _ci(p: Paired) -> str:
    return "-" if p.half is None else f"[{p.low:+.2f}, {p.high:+.2f}]"


def _diff(p: Paired) -> str:
    """``+0.60 ± 0.10``, the std only over more than one seed."""
    return "-" if p.mean is None else f"{p.mean:+.2f}" + (f" ± {p.std:.2f}" if p.n > 1 else "")


def _per_seed(p: Paired) -> str:
    return " ".join(f"{s}:{p.diffs[s]:+.4f}" for s in p.seeds)


PAIRED: tuple[Column[Paired], ...] = (
    plain("model", lambda p: p.task[0]),
    plain("dataset", lambda p: p.task[1]),
    *data(macs_dense=lambda p: p.task[2]),
    Column(
        "target",
        lambda p: target_name(p.target),
        align="r",
        csv=fields(target=lambda p: f"{p.target:g}"),
        typed=fields(target=lambda p: p.target),
    ),
    Column("method A", lambda p: p.a, csv=fields(method_a=lambda p: p.a), typed=fields(method_a=lambda p: p.a)),
    Column("method B", lambda p: p.b, csv=fields(method_b=lambda p: p.b), typed=fields(method_b=lambda p: p.b)),
    Column(  # the shared seeds (CSV: which)
        "seeds",
        lambda p: str(p.n),
        align="r",
        csv=fields(n_seeds=lambda p: p.n, seeds=lambda p: _seeds(p.seeds)),
        typed=fields(n_seeds=lambda p: p.n),
    ),
    Column(  # per-seed top1_A - top1_B: mean ± sample std (CSV: and each seed's)
        "A - B (points)",
        _diff,
        align="r",
        csv=fields(diff_mean=lambda p: _num(p.mean), diff_std=lambda p: _num(p.std), diffs=_per_seed),
        typed=fields(diff_mean=lambda p: p.mean, diff_std=lambda p: p.std),
    ),
    Column(  # mean ± t_{0.975, n-1} std / sqrt(n)
        "95% interval",
        _ci,
        align="r",
        csv=fields(t=lambda p: _num(p.t, ".6f"), ci_low=lambda p: _num(p.low), ci_high=lambda p: _num(p.high)),
        typed=fields(ci_low=lambda p: p.low, ci_high=lambda p: p.high),
    ),
    plain("verdict", lambda p: p.verdict),
    plain("note", lambda p: p.note),
)


# ---------------------------------------------------------------- files and report.md


def write_targets(out: Path, tg: Targets) -> list[Path]:
    """``matched.{md,csv,tex}`` and ``paired.{csv,tex}``; nothing when no run has a target."""
    if not tg.matched:
        return []
    cols = matched_columns(tg)
    caption = (
        "Test top-1 (%) at matched target speed-ups: mean and standard deviation over seeds; in parentheses "
        f"the realized speed-up ({tg.runtime}, batch {tg.batch})"
    )
    paths = [out / "matched.md", render.write_csv(out / "matched.csv", cols, tg.matched), out / "matched.tex"]
    render.write_text(paths[0], render.markdown(cols, tg.matched))
    render.write_text(paths[2], render.latex(cols, tg.matched, caption))
    caption = "Paired verdicts: per-seed difference of test top-1 (A - B, points) over shared seeds, 95% t interval"
    paths += [render.write_csv(out / "paired.csv", PAIRED, tg.paired), out / "paired.tex"]
    render.write_text(paths[-1], render.latex(PAIRED, tg.paired, caption))
    return paths


def matched_section(tg: Targets) -> str:
    """The "Matched targets" section's text (Markdown, without its heading)."""
    if not tg.matched:
        return f"No run has a target speed-up ({SOURCE}): no matched table.\n"
    return (
        f"Runs with a target speed-up ({SOURCE}), by method and target: test top-1 (%) of the final epoch, "
        "mean ± sample std over seeds (the targets are fixed in advance: validation selects nothing). In "
        "parentheses: `n=k` where a cell has fewer seeds than its task; the realized speed-up "
        f"(`latency.runs[{tg.runtime}].speedup[{tg.batch}]`, the dense model's median latency / the deployed "
        "model's, mean over the seeds that measured it) where measured, `noisy` where a seed's timing rounds "
        "disagreed by more than 20 %, or its pooled speed-up lay outside them (a change of load: not to be "
        "trusted); `MACs 2.08x`, the mean reached MAC "
        f"speed-up, where it is more than {TARGET_TOLERANCE:.0%} from the target. Runs without a target are not "
        "in this table.\n\n" + render.markdown(matched_columns(tg), tg.matched)
    )


def paired_section(tg: Targets) -> str:
    """The "Paired verdicts" section's text (Markdown, without its heading)."""
    if not tg.matched:
        return "No run has a target speed-up: no paired verdicts.\n"
    who = "every pair of methods" if tg.reference is None else f"each method against the reference {tg.reference}"
    text = (
        f"Within a task, at each target: {who}, over the seeds both have (every seed has its own dense start, "
        "shared by the methods of that seed, so they are compared seed by seed): d_s = top-1_A,s - top-1_B,s "
        "(test, final epoch), mean ± sample std, and the 95% interval mean ± t_{0.975, n-1} · std / √n "
        "(Student t). **A above B** only when the interval's lower bound is above 0, **B above A** when its "
        "upper bound is below 0, else level; one shared seed has no interval: single seed, no verdict.\n\n"
    )
    if not tg.paired:
        why = (
            "fewer than two methods at one target"
            if tg.reference is None
            else f"none shares a target with {tg.reference}"
        )
        return text + f"None ({why}).\n"
    return text + render.markdown(PAIRED, tg.paired)


def targets_markdown(tg: Targets) -> str:
    """Both sections with their headings (report.md and the W&B Report)."""
    return f"## Matched targets\n\n{matched_section(tg)}\n## Paired verdicts\n\n{paired_section(tg)}"
