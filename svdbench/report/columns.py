"""The column model: one column of a report table, in every format the table is written in.

A :class:`Column` is its header, its shown cell (Markdown and LaTeX), its alignment, and its fields in
the CSV file and in the typed table that W&B logs: one column may be several fields there (a mean and
its standard deviation), or none. A table is a sequence of columns; :mod:`.render` writes any of them
in each format, so a column added to a table's list is one line and appears wherever it has a cell.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
U = TypeVar("U")
#: the formats: Markdown and LaTeX show ``text``; CSV and the typed (W&B) table hold fields
MD, TEX, CSV, TYPED = "md", "tex", "csv", "typed"


@dataclass(frozen=True)
class Field(Generic[T]):
    """One field of a column in the CSV file or the typed table: its name and its value for an item."""

    name: str
    cell: Callable[[T], Any]


def fields(**cells: Callable[[T], Any]) -> tuple[Field[T], ...]:
    """``fields(top1_mean=f, top1_std=g)``: the fields in that order."""
    return tuple(Field(name, cell) for name, cell in cells.items())


@dataclass(frozen=True)
class Column(Generic[T]):
    """One column. ``header``: its Markdown header (and its name); ``text``: its shown cell in Markdown
    and LaTeX, ``±`` written as in Markdown (None: the column is only in CSV and W&B); ``align``: ``l``
    for text, ``r`` for numbers; ``latex``: its LaTeX header when it is not ``header`` escaped;
    ``csv``, ``typed``: its fields there (the typed ones keep numbers as numbers); ``shown_in``: the
    formats that show ``text``."""

    header: str
    text: Callable[[T], str] | None = None
    align: str = "l"
    latex: str | None = None
    csv: tuple[Field[T], ...] = ()
    typed: tuple[Field[T], ...] = ()
    shown_in: tuple[str, ...] = (MD, TEX)

    def shown(self, fmt: str) -> bool:
        """Whether Markdown (``md``) or LaTeX (``tex``) shows this column."""
        return self.text is not None and fmt in self.shown_in

    def fields(self, fmt: str) -> tuple[Field[T], ...]:
        """Its fields in ``csv`` or ``typed``."""
        return self.csv if fmt == CSV else self.typed

    def csv_field(self, name: str) -> Field[T]:
        """Its CSV field ``name`` (for another table that writes the same field)."""
        return next(f for f in self.csv if f.name == name)

    def only(self, *formats: str) -> Column[T]:
        """This column in ``formats`` alone (e.g. ``only(MD)``: Markdown only)."""
        return dataclasses.replace(
            self,
            shown_in=tuple(f for f in self.shown_in if f in formats),
            csv=self.csv if CSV in formats else (),
            typed=self.typed if TYPED in formats else (),
        )

    def of(self, get: Callable[[U], T]) -> Column[U]:
        """This column for items that hold a ``T``: every cell reads ``get(item)``."""
        text = self.text
        return dataclasses.replace(
            self,
            text=None if text is None else (lambda x: text(get(x))),
            csv=tuple(Field(f.name, _composed(f.cell, get)) for f in self.csv),
            typed=tuple(Field(f.name, _composed(f.cell, get)) for f in self.typed),
        )


def _composed(cell: Callable[[T], Any], get: Callable[[U], T]) -> Callable[[U], Any]:
    return lambda x: cell(get(x))


def plain(name: str, get: Callable[[T], Any]) -> Column[T]:
    """A text column that is ``get(item)`` in every format, named ``name`` everywhere."""
    return Column(name, lambda x: str(get(x)), csv=fields(**{name: get}), typed=fields(**{name: get}))


def data(**cells: Callable[[T], Any]) -> tuple[Column[T], ...]:
    """CSV-only columns, one per field: ``data(gap=f, spread=g)``."""
    return tuple(Column(name, csv=(Field(name, cell),)) for name, cell in cells.items())
