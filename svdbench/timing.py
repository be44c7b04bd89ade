"""Runtime-independent timing: one batch-timing loop shared by eager PyTorch
(:mod:`svdbench.latency`) and onnxruntime (:mod:`svdbench.onnx_export`), and the fixed input both time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

DEFAULT_MAX_SECONDS = 2.0
DEFAULT_WARMUP = 3
DEFAULT_MIN_REPEATS = 5
DEFAULT_MAX_REPEATS = 50
#: a deployed model and its dense twin are timed in turn this many times (:func:`in_turn`)
ROUNDS = 3
#: a speed-up whose rounds' ratios differ by more than this factor (max / min) is flagged as noisy
NOISY = 1.2

__all__ = [
    "Timing",
    "DEFAULT_MAX_SECONDS",
    "DEFAULT_WARMUP",
    "DEFAULT_MIN_REPEATS",
    "DEFAULT_MAX_REPEATS",
    "time_callable",
    "call_stats",
    "in_turn",
    "noisy",
    "ROUNDS",
    "NOISY",
    "random_input",
    "pinned_threads",
]


@contextlib.contextmanager
def pinned_threads(threads: int | None) -> Iterator[int]:
    """``torch.set_num_threads(threads)`` for the block (onnxruntime sessions follow it), restored
    after; ``None`` leaves the current count. Yields the count in force."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (``q`` in [0, 100]) of already sorted values."""
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


def time_callable(
    fn: Callable[[], Any],
    batch_size: int,
    *,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    warmup: int | None = None,
    repeats: int | None = None,
    min_repeats: int = DEFAULT_MIN_REPEATS,
    max_repeats: int = DEFAULT_MAX_REPEATS,
    sync: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Time ``fn()`` (one batch of ``batch_size`` images per call).

    Up to ``warmup`` calls (default 3) are run and discarded first; the warm-up ends early, after
    at least one call, once a quarter of ``max_seconds`` is spent. ``repeats`` fixes the number
    of timed calls; by default it adapts: as many as fit in what is left of ``max_seconds``
    after the warm-up, clamped to ``[min_repeats, max_repeats]``, and no more once
    ``max_seconds`` has passed (a loaded machine can slow the later calls) unless fewer than
    ``min_repeats`` were timed. ``sync`` (e.g.
    ``torch.cuda.synchronize``) runs before the clock is read on both sides of each call.
    Returns :func:`call_stats` of the timed calls and their times, ``times_ms``.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")
    if max_seconds <= 0:
        raise ValueError(f"max_seconds must be > 0, got {max_seconds}")
    sync = sync or (lambda: None)
    warmup = DEFAULT_WARMUP if warmup is None else max(0, int(warmup))
    t_start = time.perf_counter()
    done = 0
    while done < warmup:  # stops early (after at least one call) once a quarter of the budget is spent
        fn()
        done += 1
        if time.perf_counter() - t_start > 0.25 * max_seconds:
            break
    sync()
    times: list[float] = []

    def one() -> None:
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)

    if repeats is None:
        one()  # also the estimate of one call's cost
        left = max_seconds - (time.perf_counter() - t_start)
        target = max(min_repeats, min(max_repeats, int(left / max(times[0], 1e-9)) + 1))
        deadline = t_start + max_seconds  # a loaded machine may slow later calls: stop at the budget
        while len(times) < target and (len(times) < min_repeats or time.perf_counter() < deadline):
            one()
    else:
        if repeats <= 0:
            raise ValueError(f"repeats must be > 0, got {repeats}")
        for _ in range(repeats):
            one()
    return {**call_stats([t * 1e3 for t in times], batch_size, done), "times_ms": [t * 1e3 for t in times]}


def call_stats(times_ms: Sequence[float], batch_size: int, warmup: int) -> dict[str, float]:
    """``median_ms``, ``p10_ms``, ``p25_ms``, ``p75_ms``, ``p90_ms``, ``mean_ms``, ``images_per_s`` (from the
    median), ``repeats`` and ``warmup`` of timed calls (ms per batch of ``batch_size``)."""
    ms = sorted(times_ms)
    median = statistics.median(ms)
    return {
        "median_ms": median,
        **{f"p{q}_ms": _percentile(ms, q) for q in (10, 25, 75, 90)},
        "mean_ms": statistics.fmean(ms),
        "images_per_s": batch_size / (median / 1e3) if median > 0 else float("inf"),
        "repeats": len(ms),
        "warmup": warmup,
    }


def in_turn(
    measure_deployed: Callable[[Timing], dict], measure_dense: Callable[[Timing], dict], timing: Timing
) -> tuple[dict, dict, dict[str, list[float]]]:
    """Time two models in turn, :data:`ROUNDS` times (deployed, dense, deployed, dense, ...), each round with its
    share of ``timing``'s budget, so that a change of load during the measurement shows as rounds that disagree.
    ``measure_*(timing)`` returns a :func:`svdbench.latency.measure_latency`-shaped dict. Returns both
    measurements with every round's calls pooled (:func:`call_stats`, raw times dropped) and, per batch size,
    each round's ratio dense median / deployed median."""
    share = dataclasses.replace(
        timing,
        max_seconds=timing.max_seconds / ROUNDS,
        repeats=None if timing.repeats is None else max(1, -(-timing.repeats // ROUNDS)),
        min_repeats=max(1, -(-timing.min_repeats // ROUNDS)),
        max_repeats=max(1, -(-timing.max_repeats // ROUNDS)),
    )
    rounds = [(measure_deployed(share), measure_dense(share)) for _ in range(ROUNDS)]
    ratios = {
        b: [den["by_batch"][b]["median_ms"] / max(dep["by_batch"][b]["median_ms"], 1e-12) for dep, den in rounds]
        for b in rounds[0][0]["by_batch"]
    }
    return _pooled([r[0] for r in rounds]), _pooled([r[1] for r in rounds]), ratios


def _pooled(measured: Sequence[dict]) -> dict:
    """One measurement of several rounds' (same model, runtime and batch sizes): every timed call pooled."""
    out = {**measured[0], "by_batch": {}}
    for b in measured[0]["by_batch"]:
        calls = [m["by_batch"][b] for m in measured]
        times = [t for c in calls for t in c["times_ms"]]
        out["by_batch"][b] = call_stats(times, int(b), sum(c["warmup"] for c in calls))
    out["rounds"] = len(measured)
    return out


def noisy(ratios: Sequence[float]) -> bool:
    """Whether the rounds' ratios of one speed-up disagree by more than :data:`NOISY` (max / min): a change of
    load during the measurement, a figure too noisy to trust."""
    return max(ratios) / max(min(ratios), 1e-12) > NOISY


@dataclass(frozen=True)
class Timing:
    """How :func:`time_callable` times each batch size, the same for every runtime: the timed part's
    budget ``max_seconds``, ``warmup`` calls (None: 3), ``repeats`` (None: adaptive, within
    ``[min_repeats, max_repeats]``)."""

    max_seconds: float = DEFAULT_MAX_SECONDS
    warmup: int | None = None
    repeats: int | None = None
    min_repeats: int = DEFAULT_MIN_REPEATS
    max_repeats: int = DEFAULT_MAX_REPEATS

    def __call__(self, fn: Callable[[], Any], batch_size: int, sync: Callable[[], None] | None = None) -> dict:
        """:func:`time_callable` of ``fn`` (one batch of ``batch_size`` per call) with these settings."""
        return time_callable(fn, batch_size, sync=sync, **dataclasses.asdict(self))


def random_input(input_shape: Sequence[int], batch_size: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """A fixed standard-normal batch ``(batch_size, *input_shape[-3:])`` from its own generator."""
    shape = tuple(int(v) for v in input_shape)
    sample = shape[1:] if len(shape) == 4 else shape  # (B, C, H, W) or (C, H, W)
    g = torch.Generator().manual_seed(0)
    return torch.randn((batch_size, *sample), generator=g).to(device)
