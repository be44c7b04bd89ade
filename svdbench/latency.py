"""Realized speed: wall-clock latency of a model per batch, beside the MAC count.

MACs say how much arithmetic a deployed network needs; they do not say how fast it runs. Thin
factor layers, odd channel counts and extra kernel launches can make a network with half the
MACs no faster (see docs/pitfalls.md, "Realized speed on CPU"). This module times a forward
pass the same way for every model and runtime:

- eval mode, ``torch.inference_mode``, a fixed random input (its own generator: the global RNG
  is not touched), ``torch.cuda.synchronize`` around every timed call on CUDA;
- warm-up calls first, then repeated timed calls, each timed on its own, reporting the median,
  the quartiles and the 10th / 90th percentiles in milliseconds per batch and images per second;
- the deployed and the dense model timed in turn, three rounds each with a third of the budget: the
  speed-up comes from every round's calls, each round's ratio is recorded, and a speed-up whose
  rounds disagree by more than 20 % (a change of load meanwhile) is flagged ``noisy``;
- the number of timed calls adapts to the model: as many as fit in ``max_seconds`` per batch
  size, at least ``min_repeats`` and at most ``max_repeats``, so the default stays cheap.

The runtime-independent core, :func:`svdbench.timing.time_callable`, is shared with the
onnxruntime measurement in :mod:`svdbench.onnx_export`. :func:`latency_report` is what the
pipeline records as ``results["latency"]``: the deployed and the dense model of the same
architecture, measured in turn on the same machine, and their ratio (the realized speed-up).
"""

from __future__ import annotations

import copy
import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import onnx_export
from .errors import one_line
from .timing import DEFAULT_MAX_SECONDS, Timing, in_turn, noisy, pinned_threads, random_input
from .torch_utils import eval_mode, model_device

log = logging.getLogger("svdbench")

RUNTIME = "pytorch-eager"
COMPILED = "pytorch-compile"

__all__ = [
    "RUNTIME",
    "COMPILED",
    "measure_latency",
    "latency_report",
    "speedups",
    "run_latency",
]


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    batch_sizes: Sequence[int] = (1, 64),
    device: str | torch.device = "cpu",
    timing: Timing = Timing(),
) -> dict[str, Any]:
    """Latency of ``model`` in eager PyTorch on ``device`` for each batch size.

    ``input_shape`` is ``(C, H, W)`` or ``(B, C, H, W)`` (B ignored). The model is timed in eval
    mode under ``torch.inference_mode`` (its training flag is restored afterwards); a model on
    another device is measured as a copy moved to ``device``. ``timing`` says how each batch size is
    timed (:class:`~svdbench.timing.Timing`: the timed part's budget, warm-up, repeats). Returns::

        {"runtime": "pytorch-eager", "device": "cpu", "threads": 2, "torch": "2.x",
         "input_shape": [C, H, W],
         "by_batch": {"1": {"median_ms", "p10_ms", "p90_ms", "mean_ms", "images_per_s",
                            "repeats", "warmup"}, "64": {...}}}
    """
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda requested but no CUDA device is available")
    sizes = [int(b) for b in batch_sizes]
    if not sizes or min(sizes) <= 0:
        raise ValueError(f"batch_sizes must be positive integers, got {list(batch_sizes)}")
    current = model_device(model)
    net = model if current is None or _same_device(current, device) else copy.deepcopy(model).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    by_batch: dict[str, dict[str, float]] = {}
    with eval_mode(net), torch.inference_mode():
        for b in sizes:
            x = random_input(input_shape, b, device)
            by_batch[str(b)] = timing(lambda x=x: net(x), b, sync=sync)
    shape = [int(v) for v in input_shape]
    return {
        "runtime": RUNTIME,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "input_shape": shape[1:] if len(shape) == 4 else shape,
        "by_batch": by_batch,
    }


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    if a.type == "cuda":
        ia = a.index if a.index is not None else torch.cuda.current_device()
        ib = b.index if b.index is not None else torch.cuda.current_device()
        return ia == ib
    return True


def speedups(dense: dict, deployed: dict) -> dict[str, float]:
    """Per batch size: dense median latency over deployed median latency (> 1: deployed faster)."""
    out = {}
    for b, d in dense["by_batch"].items():
        if b in deployed["by_batch"]:
            out[b] = d["median_ms"] / max(deployed["by_batch"][b]["median_ms"], 1e-12)
    return out


def latency_report(
    deployed: nn.Module,
    dense: nn.Module,
    input_shape: Sequence[int],
    devices: Sequence[str | torch.device] = ("cpu",),
    batch_sizes: Sequence[int] = (1, 64),
    *,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    onnx: bool = False,
    mac_speedup: float | None = None,
    threads: int | None = None,
    compile: bool = False,
) -> dict[str, Any]:
    """``results["latency"]``: the deployed and the dense model measured in turn, per runtime and
    device (key ``"<runtime>/<device>"``), with the realized speed-up per batch size, on ``threads``
    CPU threads (None: the current count; recorded either way)::

        {"batch_sizes": [1, 64], "max_seconds": 2.0, "mac_speedup": 2.9, "threads": 1,
         "runs": {"pytorch-eager/cpu": {"runtime", "device", "threads", "deployed": {...},
                  "dense": {...}, "speedup": {"1": .., "64": ..},
                  "realized_over_mac": {"1": .., "64": ..}},
                  "onnxruntime/cpu": {... also "max_abs_diff", "exporter"}},
         "skipped": {"onnxruntime/cpu": "<one-line reason>"}}

    ``deployed`` and ``dense`` are not modified (each device gets copies where needed). With
    ``onnx`` both models are also exported to ONNX, checked against PyTorch and timed in
    onnxruntime on the CPU; with ``compile`` both are also timed after ``torch.compile`` on every
    device (key ``"pytorch-compile/<device>"``; compilation happens in the warm-up calls). A missing
    package, a failed export or a failed compilation is recorded under ``skipped``.
    """
    with pinned_threads(threads) as count:
        report = _latency_report(deployed, dense, input_shape, devices, batch_sizes, max_seconds, onnx, mac_speedup)
        if compile:
            _compiled_runs(report, deployed, dense, input_shape, devices, max_seconds, mac_speedup)
    report["threads"] = count
    return report


def _latency_report(deployed, dense, input_shape, devices, batch_sizes, max_seconds, onnx, mac_speedup) -> dict:
    sizes = [int(b) for b in batch_sizes]
    report: dict[str, Any] = {"batch_sizes": sizes, "max_seconds": max_seconds, "runs": {}, "skipped": {}}
    if mac_speedup is not None:
        report["mac_speedup"] = mac_speedup
    seen = []
    for dev in devices:
        dev = torch.device(dev)
        if any(_same_device(dev, s) for s in seen):
            continue
        seen.append(dev)
        key = f"{RUNTIME}/{dev.type}"
        report["runs"][key] = _pair(
            *in_turn(
                _eager(deployed, input_shape, sizes, dev), _eager(dense, input_shape, sizes, dev), Timing(max_seconds)
            ),
            mac_speedup,
        )
    if onnx:
        key = f"{onnx_export.RUNTIME}/cpu"
        reason = onnx_export.unavailable()
        if reason:
            report["skipped"][key] = reason
            log.warning("ONNX latency skipped: %s", reason)
        else:
            try:
                report["runs"][key] = _onnx_pair(deployed, dense, input_shape, sizes, max_seconds, mac_speedup)
            except Exception as err:  # an exporter gap must not lose the run's other figures
                msg = one_line(err, with_type=True)
                report["skipped"][key] = f"export or check failed: {msg}"
                log.warning("ONNX latency skipped: %s", msg)
    return report


def _eager(net: nn.Module, input_shape, sizes, dev) -> Callable[[Timing], dict]:
    """``timing -> measure_latency(net, ...)``: one model's measurement, for :func:`~svdbench.timing.in_turn`."""
    return lambda timing: measure_latency(net, input_shape, sizes, dev, timing)


def _onnx_pair(deployed, dense, input_shape, sizes, max_seconds, mac_speedup) -> dict[str, Any]:
    """Both models exported to ONNX (each checked against PyTorch), then timed in turn in onnxruntime."""
    with tempfile.TemporaryDirectory(prefix="svdbench-onnx-") as tmp:
        exports = [onnx_export.export_onnx(m, input_shape, Path(tmp) / f"{n}.onnx") for n, m in
                   (("deployed", deployed), ("dense", dense))]  # fmt: skip
        sessions = [onnx_export.session(e.path) for e in exports]
        dep, den, ratios = in_turn(
            lambda t: onnx_export.measure_onnx_latency(sessions[0], input_shape, sizes, timing=t),
            lambda t: onnx_export.measure_onnx_latency(sessions[1], input_shape, sizes, timing=t),
            Timing(max_seconds),
        )
    pair = _pair(dep, den, ratios, mac_speedup)
    pair["max_abs_diff"] = {"deployed": exports[0].max_abs_diff, "dense": exports[1].max_abs_diff}
    pair["exporter"] = exports[0].exporter
    return pair


def _compiled_runs(report: dict, deployed, dense, input_shape, devices, max_seconds, mac_speedup) -> None:
    """Both models after ``torch.compile``, per device, into ``report`` (a failure under ``skipped``)."""
    for dev in dict.fromkeys(torch.device(d).type for d in devices):
        key = f"{COMPILED}/{dev}"
        try:
            dep, den = (torch.compile(copy.deepcopy(net).to(dev).eval()) for net in (deployed, dense))
            sizes = report["batch_sizes"]
            timed = in_turn(
                _eager(dep, input_shape, sizes, dev), _eager(den, input_shape, sizes, dev), Timing(max_seconds)
            )
        except Exception as err:  # a backend that cannot compile this model must not lose the other figures
            report["skipped"][key] = f"torch.compile failed: {one_line(err, with_type=True)}"
            log.warning("compiled latency skipped: %s", report["skipped"][key])
        else:
            report["runs"][key] = {**_pair(*timed, mac_speedup), "runtime": COMPILED}


def _pair(deployed: dict, dense: dict, ratios: dict[str, list[float]], mac_speedup: float | None) -> dict[str, Any]:
    """One runtime's record: both models' figures, the speed-up per batch size (dense median / deployed median,
    every round's calls pooled), each round's ratio (``speedup_rounds``) and the batch sizes whose rounds
    disagree by more than :data:`~svdbench.timing.NOISY`, or whose pooled speed-up lies outside its rounds'
    ratios (``noisy``: too noisy to trust)."""
    keep = ("runtime", "device", "threads")
    pair = {k: deployed[k] for k in keep if k in deployed}
    pair["deployed"] = deployed["by_batch"]
    pair["dense"] = dense["by_batch"]
    pair["speedup"] = speedups(dense, deployed)
    pair["speedup_rounds"] = ratios
    pair["noisy"] = [b for b, r in ratios.items() if noisy(r) or not min(r) <= pair["speedup"].get(b, min(r)) <= max(r)]
    if mac_speedup:
        pair["realized_over_mac"] = {b: s / mac_speedup for b, s in pair["speedup"].items()}
    return pair


def run_latency(
    deployed: nn.Module,
    make_dense: Callable[[], nn.Module],
    input_shape: Sequence[int],
    device: str | torch.device,
    measure_cfg,
    mac_speedup: float | None = None,
) -> dict[str, Any]:
    """The pipeline's latency step: :func:`latency_report` of ``deployed`` against the dense model
    ``make_dense()`` returns (latency does not depend on the weights; it is built under a forked RNG
    so the run's random stream is unchanged), on ``device`` and the CPU.
    A failure is recorded as ``{"error": "<one line>"}`` instead of failing the finished run."""
    shape = [int(v) for v in input_shape]
    chw = shape[1:] if len(shape) == 4 else shape
    try:
        with torch.random.fork_rng(devices=[]):
            dense = make_dense()
        return latency_report(
            deployed,
            dense,
            chw,
            devices=[device, "cpu"],
            batch_sizes=list(measure_cfg.batch_sizes),
            max_seconds=measure_cfg.max_seconds,
            onnx=measure_cfg.onnx,
            mac_speedup=mac_speedup,
            threads=getattr(measure_cfg, "threads", None),
            compile=getattr(measure_cfg, "compile", False),
        )
    except Exception as err:
        log.warning("latency measurement failed: %s", one_line(err, with_type=True))
        return {"error": one_line(err, with_type=True)}
