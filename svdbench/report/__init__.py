"""Comparison tables, Pareto fronts and a plot from the results.json files of runs and sweeps.

``svdbench report PATH... [--out DIR] [--select val|test] [--x macs|latency] [--reference METHOD] [--wandb]``
reads every ``results.json`` below the given run or multirun directories, recursively (energy-sweep
points in ``energy_<e>/`` included), and writes to ``--out`` (default ``<first PATH>/report``) the
comparison tables, the Pareto fronts and their plot (static, and interactive in report.html), the front
quality and verdicts, the matched table and paired verdicts at target speed-ups, the failed runs,
report.md and summary.json (:mod:`.build`).
One concern per module:

- :mod:`.load`: results.json files to :class:`LoadedRun` and :class:`Failed`; what a configuration is.
- :mod:`.rows`: one :class:`Row` per configuration over seeds, dense references, selection, fronts.
- :mod:`.quality`: budget warnings, the hypervolume of each front (:class:`Quality`), verdicts.
- :mod:`.matched`: runs at target speed-ups (:class:`Matched`) and paired verdicts over seeds (:class:`Paired`).
- :mod:`.columns`: the column model; :mod:`.render`: Markdown, LaTeX, CSV and typed (W&B) tables
  from it; :mod:`.tables`, :mod:`.matched_tables`: the report's tables as column lists.
- :mod:`.plot`: pareto.png and pareto.svg; :mod:`.html`: report.html (interactive, self-contained);
  :mod:`.colours`: one colour per method in both; :mod:`.build`: the report; :mod:`.cli`: the command.
"""

from .build import Report, build_report, report_tables
from .columns import Column, Field
from .load import IGNORED_KEYS, Failed, LoadedRun, configuration, flatten, load_runs
from .matched import Matched, Paired, Targets
from .quality import Quality, Verdict
from .render import latex_escape
from .rows import Member, Row, Selection

__all__ = [
    "IGNORED_KEYS",
    "Column",
    "Failed",
    "Field",
    "LoadedRun",
    "Matched",
    "Member",
    "Paired",
    "Quality",
    "Report",
    "Row",
    "Selection",
    "Targets",
    "Verdict",
    "build_report",
    "configuration",
    "flatten",
    "latex_escape",
    "load_runs",
    "report_tables",
]
