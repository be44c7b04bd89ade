"""The renderers: a table (a sequence of :class:`~.columns.Column` and its items) as Markdown, LaTeX
(booktabs), CSV, HTML (the Markdown columns) or the typed table W&B logs. Every report table is written
by these."""

from __future__ import annotations

import csv
import html
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import printable
from ..tracking import TypedTable
from .columns import CSV, MD, TEX, TYPED, Column

LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}  # fmt: skip


def latex_escape(s: str) -> str:
    """``s`` as LaTeX text: its special characters escaped, line breaks as spaces, and a leading ``[``
    behind ``{}`` (after ``\\\\`` or ``\\midrule`` it would be read as their optional argument)."""
    text = "".join(LATEX_SPECIALS.get(c, c) for c in " ".join(s.splitlines()))
    return "{}" + text if text.startswith("[") else text


def plot_text(s: str) -> str:
    """``s`` shown as it is in a matplotlib label or title: ``$`` escaped (no mathtext) and a leading
    ``_`` behind a space (matplotlib leaves labels that start with ``_`` out of the legend)."""
    text = printable(s).replace("$", r"\$")
    return " " + text if text.startswith("_") else text


def code_span(s: str) -> str:
    """``s`` as a Markdown code span on one line: line breaks shown as ``\\n``, fenced with more
    backticks than it holds in a row (CommonMark)."""
    text = s.replace("\r", "\\r").replace("\n", "\\n")
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _cell(s: str) -> str:
    """``s`` as a Markdown table cell: one line, ``|`` escaped."""
    return " ".join(s.splitlines()).replace("|", "\\|")


def markdown(columns: Sequence[Column], items: Iterable) -> str:
    """A Markdown table (a cell on one line, ``|`` escaped), right-aligned where the column is ``r``."""
    cols = [c for c in columns if c.shown(MD)]
    lines = ["| " + " | ".join(c.header for c in cols) + " |"]
    lines.append("|" + "|".join("--:" if c.align == "r" else "---" for c in cols) + "|")
    lines += ["| " + " | ".join(_cell(c.text(x)) for c in cols) + " |" for x in items]
    return "\n".join(lines) + "\n"


def html_table(columns: Sequence[Column], items: Iterable, table_id: str) -> str:
    """An HTML ``<table class="sortable">`` of the columns Markdown shows, every cell escaped; numeric
    columns (``align r``) carry ``class="num"`` for the page's sorting."""
    cols = [c for c in columns if c.shown(MD)]

    def attr(c: Column) -> str:
        return ' class="num"' if c.align == "r" else ""

    head = "".join(f"<th{attr(c)}>{html.escape(c.header)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td{attr(c)}>{html.escape(c.text(x))}</td>" for c in cols) + "</tr>\n"
                   for x in items)  # fmt: skip
    return (f'<table class="sortable" id="{html.escape(table_id)}">\n<thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{body}</tbody>\n</table>\n")  # fmt: skip


def latex(columns: Sequence[Column], items: Iterable, caption: str = "") -> str:
    """A booktabs ``table`` (needs ``\\usepackage{booktabs}``): cells escaped, ``±`` as ``$\\pm$``."""
    cols = [c for c in columns if c.shown(TEX)]
    head = [c.latex if c.latex is not None else latex_escape(c.header) for c in cols]
    out = [
        "\\begin{table}[t]",
        "\\centering",
        "\\small",
        f"\\begin{{tabular}}{{{''.join(c.align for c in cols)}}}",
        "\\toprule",
        " & ".join(head) + " \\\\",
        "\\midrule",
    ]
    out += [" & ".join(latex_escape(c.text(x)).replace("±", "$\\pm$") for c in cols) + " \\\\" for x in items]
    out += ["\\bottomrule", "\\end{tabular}"]
    if caption:
        out.append(f"\\caption{{{latex_escape(caption)}}}")
    out.append("\\end{table}")
    return "\n".join(out) + "\n"


def header(columns: Sequence[Column], fmt: str = CSV) -> list[str]:
    """The field names of ``csv`` or ``typed``."""
    return [f.name for c in columns for f in c.fields(fmt)]


def cells(columns: Sequence[Column], item: Any, fmt: str = CSV) -> list:
    """One item's fields in ``csv`` or ``typed``."""
    return [f.cell(item) for c in columns for f in c.fields(fmt)]


def write_text(path: Path, text: str) -> Path:
    """``text`` into ``path`` as UTF-8, a name that is not UTF-8 in it (a run directory's) shown escaped
    (:func:`~svdbench.errors.printable`): a report file is never refused for the names it holds."""
    path.write_text(printable(text), encoding="utf-8")
    return path


def printable_data(data: Any) -> Any:
    """JSON-ready ``data`` with every string (keys too) :func:`~svdbench.errors.printable`: summary.json is
    strict UTF-8 JSON (json.dump would write a lone surrogate as ``"\\udce9"``, which strict readers refuse)."""
    if isinstance(data, str):
        return printable(data)
    if isinstance(data, dict):
        return {printable_data(k): printable_data(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [printable_data(v) for v in data]
    return data


def write_csv(path: Path, columns: Sequence[Column], items: Iterable) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([printable(h) for h in header(columns)])
        w.writerows([printable(c) if isinstance(c, str) else c for c in cells(columns, x)] for x in items)
    return path


def typed(columns: Sequence[Column], items: Iterable) -> TypedTable:
    """The table W&B logs: numbers stay numbers."""
    return TypedTable(header(columns, TYPED), [cells(columns, x, TYPED) for x in items])
