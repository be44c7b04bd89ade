"""The cost axis of a report: MACs (counted) or latency (measured), per run and for its dense twin.

``svdbench report --x macs`` (the default) puts every front, table and plot on the deployed model's
MACs per sample (fvcore); ``--x macs_paper`` on the MACs in the SVD authors' convention (conv layers
only, every decomposed conv as its pair: :mod:`svdbench.paper_macs`), for comparison with published
speed-ups; ``--x latency --runtime onnxruntime/cpu --batch 64`` on its measured median latency
per batch in that runtime, from the run's recorded ``latency`` figures (``measure.latency=true``, or
``svdbench latency`` after the fact). The speed-up on an axis is dense / deployed: the MAC speed-up,
or the realized speed-up, both measured in the same run on the same machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Axis", "MACS", "MACS_PAPER", "LATENCY_RUNTIMES", "latency_axis"]

#: the shortest median latency taken as a measurement (ms): anything below is no time a model can take
MIN_MS = 1e-6

#: the runtimes whose figures the pipeline and ``svdbench latency`` record (``<runtime>/<device>``)
LATENCY_RUNTIMES = (
    "pytorch-eager/cpu",
    "onnxruntime/cpu",
    "pytorch-compile/cpu",
    "pytorch-eager/cuda",
    "pytorch-compile/cuda",
)


#: the largest MAC count taken as one (no model comes near it; 1e308 would overflow the plot's scale)
MAX_COUNT = 2**63
#: the least share of a dense model's MACs (fvcore) that its convolutions must make for the authors'
#: convention (convolutions only) to stand for the model's cost
MIN_CONV_SHARE = 0.5


@dataclass(frozen=True)
class Axis:
    """``name`` ``macs``, ``macs_paper`` or ``latency`` (then ``runtime`` and ``batch`` say which figure)."""

    name: str = "macs"
    runtime: str | None = None
    batch: int | None = None

    @property
    def is_latency(self) -> bool:
        return self.name == "latency"

    @property
    def is_paper(self) -> bool:
        return self.name == "macs_paper"

    @staticmethod
    def _paper(rec: Any, which: str) -> float | None:
        v = (getattr(rec, "macs_paper", None) or {}).get(which)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 1 <= v < MAX_COUNT and float(v).is_integer()
        return float(v) if ok else None

    def _paper_missing(self, rec: Any) -> str | None:
        """Why a run has no point in the authors' convention: none recorded, a recorded count that is not one,
        or a model whose convolutions (all that convention counts) are under :data:`MIN_CONV_SHARE` of its
        MACs (a vision transformer: its cost would not move whatever is compressed)."""
        record = getattr(rec, "macs_paper", None)
        if not record:
            return "no MAC count in the authors' convention (a run made before svdbench recorded macs_paper)"
        for which in ("macs", "dense"):
            if self._paper(rec, which) is None:
                v = repr(record.get(which, "<absent>"))
                return f"macs_paper.{which} is {v if len(v) <= 40 else v[:40] + '...'}, not a whole number >= 1"
        dense = getattr(rec, "macs_dense", None)
        share = self._paper(rec, "dense") / dense if isinstance(dense, (int, float)) and dense > 0 else 1.0
        if share < MIN_CONV_SHARE:
            return (
                f"the authors' convention counts convolutions only, {share:.1%} of this model's MACs (mostly "
                "Linear layers, e.g. a vision transformer): its speed-up there says nothing of the model's"
            )
        return None

    def _figure(self, rec: Any, which: str) -> float | None:
        try:
            v = rec.latency["runs"][self.runtime][which][str(self.batch)]["median_ms"]
        except (KeyError, TypeError, AttributeError):
            return None
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and MIN_MS <= v < math.inf
        return float(v) if ok else None  # not a time: Infinity, 0, 1e-320 (a ratio of it would be inf)

    def value(self, rec: Any) -> float | None:
        """The deployed model's cost: MACs per sample, or median ms per batch (None: not recorded)."""
        if self.is_paper:
            return self._paper(rec, "macs")
        return float(rec.macs) if not self.is_latency else self._figure(rec, "deployed")

    def dense(self, rec: Any) -> float | None:
        """The dense model's cost on the same axis, measured in the same run."""
        if self.is_paper:
            return self._paper(rec, "dense")
        return float(rec.macs_dense) if not self.is_latency else self._figure(rec, "dense")

    def missing(self, rec: Any) -> str | None:
        """Why a run has no point on this axis (None: it has one)."""
        if self.is_paper:
            return self._paper_missing(rec)
        if self.value(rec) is None or self.dense(rec) is None:
            return f"no latency figure for {self.runtime} at batch {self.batch} (time it: svdbench latency DIR)"
        return None

    # what the report writes
    @property
    def what(self) -> str:
        if self.is_paper:
            return "MACs in the authors' convention"
        return "MACs" if not self.is_latency else f"latency ({self.runtime}, batch {self.batch})"

    @property
    def speedup_words(self) -> str:
        if self.is_paper:
            return "the MAC speed-up in the authors' convention (dense / decomposed conv MACs, every pair counted)"
        return (
            "the MAC speed-up (dense MACs / MACs)"
            if not self.is_latency
            else (f"the realized speed-up (dense / deployed median latency, {self.runtime}, batch {self.batch})")
        )

    @property
    def plot_label(self) -> str:
        if self.is_paper:
            return "conv MACs per sample, authors' convention (M, log scale)"
        if not self.is_latency:
            return "MACs per sample (M, log scale)"
        return f"median latency per batch of {self.batch}, {self.runtime} (ms, log scale)"

    @property
    def plot_scale(self) -> float:
        """What a plot divides the axis's values by: MACs in millions, latency in ms as recorded."""
        return 1e6 if not self.is_latency else 1.0


MACS = Axis()
#: the authors' convention (results.json's ``macs_paper``)
MACS_PAPER = Axis("macs_paper")


def latency_axis(runtime: str, batch: int) -> Axis:
    """The latency axis; ValueError for a batch size below 1 or an unknown runtime."""
    if runtime not in LATENCY_RUNTIMES:
        raise ValueError(f"--runtime {runtime!r}: one of {', '.join(LATENCY_RUNTIMES)}")
    if batch < 1:
        raise ValueError(f"--batch {batch}: must be >= 1")
    return Axis("latency", runtime, int(batch))
