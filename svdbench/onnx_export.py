"""ONNX export of a (deployed) model, checked against PyTorch, and its latency in onnxruntime.

``export_onnx`` writes the model with ``torch.onnx.export`` and a dynamic batch axis (input
``input``, output ``logits``), then runs the file in onnxruntime on batches of 1 and 3 and
compares with PyTorch's output: the largest absolute difference is recorded, and an
:class:`OnnxCheckError` is raised if it exceeds ``atol + rtol * max|reference|``.

The exporter is torch's default, the ``torch.export``-based one (``dynamo=True``, it needs the
``onnxscript`` package); where it fails, the TorchScript-based exporter (``dynamo=False``) is
tried, and the one used is recorded. onnxruntime applies its graph optimisations (among them
folding BatchNorm into the preceding convolution) when it loads the file; its intra-op thread
count is set to torch's, so both runtimes use the same cores.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .errors import OnnxCheckError, one_line
from .held_dirs import check_in_place
from .timing import Timing, random_input
from .torch_utils import eval_mode

log = logging.getLogger("svdbench")

RUNTIME = "onnxruntime"
INPUT_NAME, OUTPUT_NAME = "input", "logits"

__all__ = [
    "RUNTIME",
    "OnnxCheckError",
    "OnnxExport",
    "unavailable",
    "export_onnx",
    "session",
    "measure_onnx_latency",
    "export_and_measure",
]


@dataclass
class OnnxExport:
    path: str
    exporter: str  # "dynamo" (torch.export-based) or "torchscript"
    opset: int | None
    max_abs_diff: float
    tolerance: float


def unavailable() -> str | None:
    """None when onnx and onnxruntime import; otherwise a one-line reason."""
    missing = []
    for name in ("onnx", "onnxruntime"):
        try:
            __import__(name)
        except Exception as err:  # ImportError, or a broken binary wheel
            missing.append(f"{name} ({type(err).__name__})")
    if missing:
        return "not installed: " + ", ".join(missing) + "; pip install onnx onnxruntime onnxscript"
    return None


@contextlib.contextmanager
def _quiet_exporter_logs():
    """The exporter's rewriter and optimiser log every pass at INFO, which lands in a Hydra run's
    log: raise those loggers to WARNING for the export, then restore them."""
    loggers = [logging.getLogger(n) for n in ("onnxscript", "onnx_ir", "torch.onnx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _export(model: nn.Module, x: torch.Tensor, path: Path, dynamo: bool, opset: int | None) -> None:
    kw: dict[str, Any] = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME]}
    if opset is not None:
        kw["opset_version"] = opset
    with warnings.catch_warnings(), _quiet_exporter_logs():
        warnings.simplefilter("ignore")  # exporter deprecation and constant-folding notices
        if dynamo:
            batch = torch.export.Dim("batch")
            torch.onnx.export(model, (x,), str(path), dynamo=True, verbose=False, dynamic_shapes=({0: batch},), **kw)
        else:
            axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
            torch.onnx.export(model, (x,), str(path), dynamo=False, dynamic_axes=axes, **kw)


def session(path: str | Path, threads: int | None = None):
    """An onnxruntime CPU ``InferenceSession`` with all graph optimisations and ``threads``
    intra-op threads (default: ``torch.get_num_threads()``)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = int(threads or torch.get_num_threads())
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def export_onnx(
    model: nn.Module,
    input_shape: Sequence[int],
    path: str | Path,
    *,
    dynamo: bool | None = None,
    opset: int | None = None,
    check: bool = True,
    atol: float = 1e-4,
    rtol: float = 1e-4,
) -> OnnxExport:
    """Export ``model`` (eval mode, on the CPU: a copy if it lives elsewhere) to ``path`` with a
    dynamic batch axis and check it in onnxruntime against PyTorch (batches of 1 and 3).

    ``dynamo`` None tries the torch.export-based exporter, then the TorchScript one; True or
    False uses only that one. ``input_shape`` is ``(C, H, W)`` or ``(B, C, H, W)``.
    Raises :class:`OnnxCheckError` if the outputs differ by more than ``atol + rtol * max|ref|``.
    """
    path = Path(path)
    check_in_place(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    p = next(model.parameters(), None)
    net = model if p is None or p.device.type == "cpu" else copy.deepcopy(model).cpu()
    with eval_mode(net):
        x = random_input(input_shape, 2)  # batch 2: a batch of 1 would be specialised away
        tries = [True, False] if dynamo is None else [bool(dynamo)]
        errors = []
        for dyn in tries:
            try:
                _export(net, x, path, dyn, opset)
                exporter = "dynamo" if dyn else "torchscript"
                break
            except Exception as err:
                errors.append(f"{'dynamo' if dyn else 'torchscript'}: {one_line(err, with_type=True)}")
                log.info("ONNX export with dynamo=%s failed: %s", dyn, one_line(err, with_type=True))
        else:
            raise RuntimeError("ONNX export failed (" + "; ".join(errors) + ")")
        diff, tol = 0.0, 0.0
        if check:
            sess = session(path)
            for b in (1, 3):
                xb = random_input(input_shape, b)
                with torch.inference_mode():
                    ref = net(xb).float().numpy()
                got = sess.run([OUTPUT_NAME], {INPUT_NAME: xb.numpy()})[0]
                if got.shape != ref.shape:
                    raise OnnxCheckError(f"onnxruntime output shape {got.shape} != PyTorch {ref.shape} at batch {b}")
                diff = max(diff, float(np.abs(got - ref).max()))
                tol = max(tol, atol + rtol * float(np.abs(ref).max()))
            if not diff <= tol:
                raise OnnxCheckError(f"onnxruntime differs from PyTorch by {diff:.3g} (tolerance {tol:.3g})")
    opset_used = None
    try:
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
        opset_used = next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    except Exception:  # the opset is informative only
        pass
    return OnnxExport(str(path), exporter, opset_used, diff, tol)


def measure_onnx_latency(
    path_or_session,
    input_shape: Sequence[int],
    batch_sizes: Sequence[int] = (1, 64),
    *,
    threads: int | None = None,
    timing: Timing = Timing(),
) -> dict[str, Any]:
    """Latency of an ONNX file (or an open session) in onnxruntime on the CPU, measured exactly
    as :func:`svdbench.latency.measure_latency` measures eager PyTorch (same structure, runtime
    ``"onnxruntime"``)."""
    import onnxruntime as ort

    sess = session(path_or_session, threads) if isinstance(path_or_session, (str, Path)) else path_or_session
    name = sess.get_inputs()[0].name
    by_batch = {}
    for b in [int(v) for v in batch_sizes]:
        x = random_input(input_shape, b).numpy()
        by_batch[str(b)] = timing(lambda x=x: sess.run(None, {name: x}), b)
    shape = [int(v) for v in input_shape]
    opts = sess.get_session_options()
    return {
        "runtime": RUNTIME,
        "device": "cpu",
        "threads": int(opts.intra_op_num_threads),
        "onnxruntime": ort.__version__,
        "input_shape": shape[1:] if len(shape) == 4 else shape,
        "by_batch": by_batch,
    }


def export_and_measure(
    model: nn.Module,
    input_shape: Sequence[int],
    batch_sizes: Sequence[int] = (1, 64),
    *,
    path: str | Path | None = None,
    threads: int | None = None,
    timing: Timing = Timing(),
) -> dict[str, Any]:
    """:func:`export_onnx` (checked) then :func:`measure_onnx_latency`; the result also holds
    ``max_abs_diff``, ``exporter`` and ``opset``. Without ``path`` the file is temporary."""
    with tempfile.TemporaryDirectory(prefix="svdbench-onnx-") as tmp:
        target = Path(path) if path is not None else Path(tmp) / "model.onnx"
        exp = export_onnx(model, input_shape, target)
        res = measure_onnx_latency(target, input_shape, batch_sizes, threads=threads, timing=timing)
    res.update(max_abs_diff=exp.max_abs_diff, exporter=exp.exporter, opset=exp.opset)
    return res
