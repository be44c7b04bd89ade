"""Data-parallel training across processes started by ``torchrun`` (DistributedDataParallel).

torchrun gives every process ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`init` joins the process group from them (``nccl`` on CUDA, ``gloo`` on
the CPU). Without them (a plain ``python run.py``) the world is one process and every helper here
is a no-op, so single-process runs are unchanged.

Conventions (see ``docs/distributed.md``): every rank builds the same model and data from the same
seed, takes a disjoint shard of each epoch's permutation, and logs the same all-reduced metrics;
only rank 0 writes files.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from typing import Any, Sequence

import torch
import torch.distributed as dist
from torch import nn

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Processes in the job: the process group's size once joined, else ``$WORLD_SIZE`` (1 without torchrun)."""
    return dist.get_world_size() if initialized() else max(1, _env_int("WORLD_SIZE", 1))


def rank() -> int:
    """This process's rank: the process group's once joined, else ``$RANK`` under torchrun; 0 for a single
    process (a stray ``$RANK`` in the environment must not make it a rank that writes nothing)."""
    if initialized():
        return dist.get_rank()
    return _env_int("RANK", 0) if world_size() > 1 else 0


def launcher_var_problem() -> str | None:
    """What is wrong with torchrun's variables set by hand (None: nothing): ``WORLD_SIZE`` that is no whole
    number >= 1; in a multi-process job, ``RANK`` outside [0, WORLD_SIZE), ``LOCAL_RANK`` below 0 or
    ``MASTER_PORT`` outside 1..65535 (or not numbers: torch's rendezvous would raise a traceback, or wait 30
    minutes for a rank that cannot come)."""
    ranges = {"WORLD_SIZE": (1, None)}
    world = _env_int("WORLD_SIZE", 1)
    if world > 1:
        ranges.update({"RANK": (0, world - 1), "LOCAL_RANK": (0, None), "MASTER_PORT": (1, 65535)})
    for name, (low, high) in ranges.items():
        text = os.environ.get(name)
        if text is None:
            continue
        try:
            value = int(text)
        except ValueError:
            return f"{name}={text!r} is not a whole number"
        if value < low or (high is not None and value > high):
            within = f"in [{low}, {high}]" if high is not None else f">= {low}"
            return f"{name}={value} must be {within}" + (f" (WORLD_SIZE={world})" if name == "RANK" else "")
    return None


def missing_launcher_vars() -> list[str]:
    """The variables torchrun sets that a multi-process job (``WORLD_SIZE > 1``) lacks (empty: none, or one process)."""
    if world_size() <= 1:
        return []
    return [v for v in (*ENV_VARS, "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]


def local_rank() -> int:
    """This process's index on its node (its GPU), ``$LOCAL_RANK``."""
    return _env_int("LOCAL_RANK", 0)


def is_main() -> bool:
    """Rank 0: the one process that writes results, checkpoints and models."""
    return rank() == 0


def shard() -> tuple[int, int] | None:
    """``(rank, world_size)`` in a multi-process job, else None (no sharding)."""
    return (rank(), world_size()) if world_size() > 1 else None


def init(device: torch.device) -> bool:
    """Join torchrun's process group (``env://``) when ``WORLD_SIZE > 1``: ``nccl`` for a CUDA
    ``device`` (made the current device), ``gloo`` otherwise. Returns True when this call created
    the group (the caller then owns :func:`cleanup`); False for a single process or a group that
    already exists."""
    if world_size() <= 1 or initialized():
        return False
    missing = missing_launcher_vars()
    if missing:
        raise RuntimeError(f"WORLD_SIZE > 1 but {', '.join(missing)} not set: launch with torchrun")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    stops = (signal.SIGINT, signal.SIGTERM)
    before = [signal.signal(s, signal.SIG_DFL) for s in stops]  # Python's handlers never run while torch waits
    try:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    finally:
        for s, handler in zip(stops, before, strict=True):
            signal.signal(s, handler)
    return True


def check_same_config(config: Any) -> None:
    """Every rank runs the same ``config`` (the resolved config the run records): a digest of it gathered from
    every rank; ValueError (one line, on every rank) naming the first rank of another config. Ranks started by hand
    (or on several nodes, each with its own command line) could otherwise train with other settings than rank 0
    records, or wait for each other forever."""
    if not initialized():
        return
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
    digests: list[Any] = [None] * world_size()
    dist.all_gather_object(digests, digest)
    other = next((r for r, d in enumerate(digests) if d != digests[0]), None)
    if other is not None:
        raise ValueError(f"rank {other} runs another config than rank 0 (another command line or config file): "
                         "start every rank with the same one")  # fmt: skip


def cleanup() -> None:
    if initialized():
        dist.destroy_process_group()


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    """Wait for every rank (no-op for one process)."""
    if initialized() and dist.get_world_size() > 1:
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def all_reduce_sums(values: Sequence[float]) -> list[float]:
    """Element-wise sums of ``values`` over all ranks (float64; counts stay exact below 2**53)."""
    if not initialized() or dist.get_world_size() == 1:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def all_reduce_max(values: Sequence[int]) -> list[int]:
    """Element-wise maxima of integer ``values`` over all ranks (e.g. "any rank wants to stop")."""
    if not initialized() or dist.get_world_size() == 1:
        return [int(v) for v in values]
    t = torch.tensor([int(v) for v in values], dtype=torch.int64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [int(v) for v in t.tolist()]


@torch.no_grad()
def broadcast_buffers(model: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (BatchNorm running statistics) to every rank. DDP broadcasts
    them before each forward, but each rank's last forward of an epoch updates its own copy."""
    if not initialized() or dist.get_world_size() == 1:
        return
    for b in model.buffers():
        dist.broadcast(b, src)


@torch.no_grad()
def average_batchnorm_stats(model: nn.Module) -> None:
    """Average BatchNorm running means and variances over the ranks. After a cumulative
    (``momentum=None``) re-estimation on the same number of batches per rank this equals the
    estimate over all ranks' batches together."""
    if not initialized() or dist.get_world_size() == 1:
        return
    w = dist.get_world_size()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            for b in (m.running_mean, m.running_var):
                dist.all_reduce(b, op=dist.ReduceOp.SUM)
                b.div_(w)


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel (gradients averaged over the ranks in backward); the
    model itself for one process. Method hooks and evaluation keep using the unwrapped model."""
    if not initialized() or dist.get_world_size() == 1:
        return model
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)
