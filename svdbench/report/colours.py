"""One colour per method, the same in every plot of a report (pareto.png, pareto.svg, report.html)."""

from __future__ import annotations

from collections.abc import Iterable

from plotly.colors import qualitative

from .rows import method_order

#: plotly's D3 palette (matplotlib's tab10), then its Dark24: 34 colours before one repeats
PALETTE: tuple[str, ...] = tuple(dict.fromkeys(qualitative.D3 + qualitative.Dark24))


def method_colors(methods: Iterable[str]) -> dict[str, str]:
    """Each method's colour (``#rrggbb``): the palette in method order (dense first), cycling after its end."""
    ordered = sorted(set(methods), key=method_order)
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(ordered)}
