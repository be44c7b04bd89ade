"""Shared pieces of the benchmark scripts: machine description, a training step, Markdown tables
and the JSON record written to ``benchmarks/results/``.

Every benchmark reports ratios measured in one run on one machine (never a figure from another
run), interleaving the things it compares so that load from other jobs hits both sides alike.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_start": list(os.getloadavg()),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    return info


def write_result(name: str, record: dict[str, Any]) -> Path:
    """``benchmarks/results/<name>.json`` with the command line and the end-of-run load average."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = dict(record)
    record.setdefault("command", " ".join([Path(sys.executable).name, *sys.argv]))
    if isinstance(record.get("machine"), dict):
        record["machine"]["load_average_end"] = list(os.getloadavg())
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(record, indent=2, sort_keys=False) + "\n")
    return path


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; floats get 3 significant decimals."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


class Trainer:
    """One training step as svdbench's loop runs it: forward, cross-entropy plus the method's
    regulariser, backward, optimiser step (``svdbench.optim.make_optimizer``)."""

    def __init__(self, model: nn.Module, method, lr: float = 0.05, optimizer: str = "sgd") -> None:
        from svdbench.optim import OptimConfig, make_optimizer

        self.model, self.method = model, method
        self.opt = make_optimizer(model, OptimConfig(optimizer=optimizer, lr=lr, momentum=0.9, weight_decay=5e-4))
        self.model.train()

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        out = self.model(x)
        loss = F.cross_entropy(out, y)
        reg = self.method.regularization(self.model, "train")
        if reg is not None:
            loss = loss + reg
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return float(loss.detach())


def time_steps(step: Callable[[], Any], n: int) -> float:
    """Seconds per call of ``step`` over ``n`` calls."""
    t = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t) / n


def build(model_name: str, in_channels: int, method: str, *, init: str = "svd", hoyer: float = 0.05):
    """A CIFAR ResNet and its method object: ``dense`` or ``svd`` (channel-wise, full rank,
    orthogonality 1.0 and Hoyer ``hoyer``, as the demo trains)."""
    from svdbench.methods import Dense, SVDTraining
    from svdbench.models import build_model
    from svdbench.regularizers import SparsityRegularizer

    net = build_model("cifar_resnet", model_name, 10, in_channels)
    if method == "dense":
        return net, Dense()
    meth = SVDTraining.create(regularizer=SparsityRegularizer("hoyer", hoyer), decomposition="channel", init=init,
                              orthogonality=1.0)  # fmt: skip
    return meth.prepare(net, (1, in_channels, 32, 32)), meth
