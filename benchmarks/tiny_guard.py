"""Refactoring guard: the tiny configuration's results for every method and both decompositions.

    python benchmarks/tiny_guard.py OUT.json            # record
    python benchmarks/tiny_guard.py OUT.json --against BEFORE.json   # record and compare bit for bit

Each case runs ``run.py`` (the command line users run) on the tiny configuration, the debug preset
``conf/debug/tiny.yaml`` (synthetic 3x16x16 data, ResNet-8, one training and one fine-tuning epoch),
and keeps what a refactor must not change: top-1 after every stage, MACs, parameters, ranks, the
per-epoch history (losses, accuracies, lr) and, for an energy sweep, every point. Exit code 1 when
``--against`` finds a difference.

:func:`preset_overrides` turns that preset into the command-line overrides it stands for; the tests
(tests/conftest.py) and benchmarks/report_guard.py read it through this module too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
#: the tiny configuration, as people run it: ``python run.py +debug=tiny``
TINY_PRESET = ROOT / "conf" / "debug" / "tiny.yaml"


def read_preset(path: Path = TINY_PRESET) -> tuple[dict[str, str], dict[str, Any]]:
    """A ``# @package _global_`` preset's group choices (``override /dataset: synthetic`` in its defaults
    list: ``{"dataset": "synthetic"}``) and its values (the rest of the file), both in the file's order."""
    values = yaml.safe_load(path.read_text())
    groups = {}
    for entry in values.pop("defaults", []):
        if isinstance(entry, dict):  # "override /group: choice"; _self_ is the only other entry these presets have
            ((key, choice),) = entry.items()
            groups[key.removeprefix("override ").strip("/")] = choice
    return groups, values


def _text(value: Any) -> str:
    """A value as a command-line override writes it: true/false, null, [a,b]."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ",".join(map(_text, value)) + "]"
    return str(value)


def _dotted(node: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in node.items():
        out += _dotted(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}={_text(value)}"]
    return out


def preset_overrides(
    path: Path = TINY_PRESET, without: tuple[str, ...] = (), changes: dict[str, Any] | None = None
) -> list[str]:
    """The command-line overrides that compose what ``+debug=<preset>`` composes: each group the preset
    chooses (``dataset=synthetic``) followed by the keys it sets in that group, then its other keys, in
    the file's order. ``without``: leave out the overrides that start with one of these; ``changes``:
    dotted key -> value, set in place or added at the end of its group, before the overrides are made."""
    groups, values = read_preset(path)
    for key, value in (changes or {}).items():
        *parents, leaf = key.split(".")
        node = values
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    out = []
    for group, choice in groups.items():
        out += [f"{group}={choice}", *_dotted({group: values.pop(group, {})})]
    out += _dotted(values)
    return [o for o in out if not o.startswith(tuple(without))]


TINY = preset_overrides()
CASES = {
    "dense": ["method=dense"],
    "svd_channel": ["method=svd", "method.decomposition=channel", "method.energy=0.3"],
    "svd_spatial": ["method=svd", "method.decomposition=spatial", "method.energy=0.3"],
    "svd_channel_l1_threshold": ["method=svd", "regularizer=l1", "method.energy=null", "method.threshold=0.5"],
    "svd_energies": ["method=svd", "method.energy=0.05", "method.energies=[0.2,0.4]"],
    "svd_posthoc_channel": ["method=svd_posthoc", "method.decomposition=channel"],
    "svd_posthoc_spatial": ["method=svd_posthoc", "method.decomposition=spatial"],
    "trp_channel": ["method=trp", "method.decomposition=channel"],
    "trp_spatial": ["method=trp", "method.decomposition=spatial", "method.period=2"],
    "l1_filter": ["method=l1_filter"],
    "sfp": ["method=sfp", "method.ratio=0.3"],
    "fpgm": ["method=fpgm"],
}
KEEP = ("status", "method", "top1", "macs", "macs_total", "params", "macs_dense", "params_dense", "stage_top1",
        "ranks", "history")  # fmt: skip
DETAILS = ("ranks_before", "ranks_after", "ranks_train", "channels_after", "ratio_used", "truncations", "soft_epochs")


def essentials(res: dict) -> dict:
    out = {k: res.get(k) for k in KEEP}
    out["details"] = {k: v for k, v in (res.get("method_details") or {}).items() if k in DETAILS}
    return out


def run_case(name: str, overrides: list[str], tmp: Path) -> dict:
    out = tmp / name
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    proc = subprocess.run([sys.executable, "run.py", *TINY, *overrides, f"hydra.run.dir={out}"], cwd=ROOT, env=env,
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    res = essentials(json.loads((out / "results.json").read_text()))
    points = sorted(out.glob("energy_*/results.json"))
    if points:
        res["points"] = {p.parent.name: essentials(json.loads(p.read_text())) for p in points}
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--against", default=None)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        got = {}
        for name, ov in CASES.items():
            if args.only and name not in args.only:
                continue
            got[name] = run_case(name, ov, Path(tmp))
            print(f"{name}: top1 {got[name]['top1']:.4f}, MACs {got[name]['macs']}", flush=True)
    Path(args.out).write_text(json.dumps(got, indent=1, sort_keys=True))
    if args.against:
        ref = json.loads(Path(args.against).read_text())
        bad = [n for n in got if got[n] != ref.get(n)]
        for n in bad:
            print(f"DIFFERENT: {n}")
        print("identical" if not bad else f"{len(bad)} of {len(got)} differ")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
