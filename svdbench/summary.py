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
    ``1.13x at batch 1, 0.97x at batch 64 (noisy: rounds 0.77-1.87x, not to be trusted)``."""
    rounds, flagged = pair.get("speedup_rounds") or {}, set(pair.get("noisy") or ())
    parts = []
    for b, v in (pair.get("speedup") or {}).items():
        text = f"{v:.2f}x at batch {b}"
        if b in flagged and rounds.get(b):
            text += f" (noisy: rounds {min(rounds[b]):.2f}-{max(rounds[b]):.2f}x, not to be trusted)"
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


def summary(results: dict, run_dir: str | Path) -> str:
    """The lines that end a run: method, model and data; test (and validation) top-1 of the deployed
    model; top-1 after each stage; MACs and parameters against the dense model; the realized speed-up
    where latency was measured; the wall time; where the results and the deployed model are."""
    lines = [f"{results['method']} on {results['model']}/{results['dataset']}, {results['wall_time']['total']:.0f} s"]
    val = f" (validation {results['val_top1']:.2f} %)" if results.get("val_top1") is not None else ""
    lines.append(f"  test top-1  {results['top1']:.2f} %{val}, the deployed model at the final epoch")
    stages = ", ".join(f"{STAGE_WORDS.get(k, k)} {v:.2f}" for k, v in (results.get("stage_top1") or {}).items())
    if stages:
        lines.append(f"  stages      {stages}")
    lines.append(
        f"  MACs        {results['macs'] / 1e6:.2f} M of the dense {results['macs_dense'] / 1e6:.2f} M: "
        f"{results['speedup']:.2f}x fewer"
    )
    lines.append(f"  params      {results['params'] / 1e3:.1f} k of {results['params_dense'] / 1e3:.1f} k")
    latency = _latency(results)
    if latency:
        lines.append(f"  realized    {latency}")
    if results.get("model_path"):  # the run directory's own file: a copied or moved run's, not the original's
        lines.append(f"  model       {Path(run_dir) / Path(results['model_path']).name}")
    lines.append(f"results: {Path(run_dir) / RESULTS_FILE}")
    return "\n".join(lines)
