"""The summary that ends a run on the console: what it reached, at what cost, how fast, and where it is."""

from __future__ import annotations

from pathlib import Path

from .results import RESULTS_FILE

__all__ = ["summary", "speedups_text"]

#: how the console names the top-1 after each stage (results.json's ``stage_top1`` keys)
STAGE_WORDS = {
    "dense": "dense start",
    "pretrain": "dense (pretrained)",
    "orthogonal": "after the orthogonal stage",
    "train": "after training",
    "pruned_stale_bn": "pruned (stale BatchNorm)",
    "pruned": "pruned",
    "finetune": "fine-tuned",
}


def speedups_text(pair: dict) -> str:
    """One runtime's realized speed-ups, each with its batch size, a noisy one flagged with its rounds' range:
    ``1.13x at batch 1, 0.97x at batch 64 (noisy: rounds 0.77-1.87x, not to be trusted)``; a pooled speed-up outside
    rounds that agree: ``1.04x at batch 1 (noisy: outside its rounds' 1.03-1.04x, not to be trusted)``."""
    rounds, flagged = pair.get("speedup_rounds") or {}, set(pair.get("noisy") or ())
    parts = []
    for b, v in (pair.get("speedup") or {}).items():
        text = f"{v:.2f}x at batch {b}"
        if b in flagged and rounds.get(b):
            lo, hi = min(rounds[b]), max(rounds[b])
            why = "outside its rounds'" if not lo <= v <= hi else "rounds"  # the rounds agree, the pooled one does not
            text += f" (noisy: {why} {lo:.2f}-{hi:.2f}x, not to be trusted)"
        parts.append(text)
    return ", ".join(parts)


def _latency(results: dict) -> str | None:
    """The realized speed-ups the run measured, per batch size, in one runtime (onnxruntime where
    timed, else eager PyTorch): ``1.13x at batch 1, 0.97x at batch 64 (pytorch-eager/cpu, 1 thread)``."""
    record = results.get("latency") or {}
    runs = record.get("runs") or {}
    name = next((k for k in ("onnxruntime/cpu", "pytorch-eager/cuda", "pytorch-eager/cpu") if k in runs), None)
    if name is None:
        return f"not measured ({record['error']})" if record.get("error") else None
    threads = record.get("threads")
    count = f", {threads} thread" + ("s" if threads != 1 else "") if threads else ""
    return f"{speedups_text(runs[name])} ({name}{count})"


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fixed(v: object, digits: int, scale: float = 1.0) -> str:
    """``v / scale`` with ``digits`` decimals, ``?`` where ``v`` is no number (a record short of it)."""
    return f"{v / scale:.{digits}f}" if _number(v) else "?"


def summary(results: dict, run_dir: str | Path) -> str:
    """The lines that end a run: method, model and data; test (and validation) top-1 of the deployed
    model; top-1 after each stage; MACs and parameters against the dense model; the realized speed-up
    where latency was measured; the wall time; where the results and the deployed model are. A field a
    record lacks (an operating point records no total wall time; an older or edited record) is left out,
    or shown as ``?``: never an error."""
    wall = results.get("wall_time")
    total = wall.get("total") if isinstance(wall, dict) else None
    took = f", {total:.0f} s" if _number(total) else ""
    lines = [f"{results.get('method')} on {results.get('model')}/{results.get('dataset')}{took}"]
    val = f" (validation {results['val_top1']:.2f} %)" if _number(results.get("val_top1")) else ""
    lines.append(f"  test top-1  {_fixed(results.get('top1'), 2)} %{val}, the deployed model at the final epoch")
    stage_top1 = results.get("stage_top1")
    stage_top1 = stage_top1 if isinstance(stage_top1, dict) else {}
    stages = ", ".join(f"{STAGE_WORDS.get(k, k)} {v:.2f}" for k, v in stage_top1.items() if _number(v))
    if stages:
        lines.append(f"  stages      {stages}")
    macs, dense, speedup = results.get("macs"), results.get("macs_dense"), results.get("speedup")
    if not _number(speedup) and _number(macs) and _number(dense) and macs > 0:
        speedup = dense / macs
    lines.append(
        f"  MACs        {_fixed(macs, 2, 1e6)} M of the dense {_fixed(dense, 2, 1e6)} M: {_fixed(speedup, 2)}x fewer"
    )
    lines.append(
        f"  params      {_fixed(results.get('params'), 1, 1e3)} k of {_fixed(results.get('params_dense'), 1, 1e3)} k"
    )
    try:
        latency = _latency(results)
    except (AttributeError, KeyError, TypeError, ValueError):  # a latency record of another shape: not shown
        latency = None
    if latency:
        lines.append(f"  realized    {latency}")
    if results.get("model_path"):  # the run directory's own file: a copied or moved run's, not the original's
        lines.append(f"  model       {Path(run_dir) / Path(results['model_path']).name}")
    lines.append(f"results: {Path(run_dir) / RESULTS_FILE}")
    return "\n".join(lines)
