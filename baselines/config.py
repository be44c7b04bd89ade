"""Config schemas of the baseline methods, registered in the ``method`` group by ``run.py``
(``svdbench`` never imports ``baselines``)."""

from __future__ import annotations

METHOD_SCHEMAS: dict[str, type] = {}
