"""What svdbench's MAC counter (fvcore, conv + linear) gives for the published networks and the
published filter-pruning ratios, for the reproduction table of docs/experiments.md.

1. The dense CIFAR ResNets: He et al.'s option-A basic-block nets (svdbench's default; the SFP and
   FPGM code) and the SVD/TRP code's nets (1x1-conv projection shortcuts, bottleneck blocks from
   depth 44 on): parameters and MACs at 3x32x32.
2. SFP and FPGM at each preset's ratio (the authors' rounding, ``int(C * ratio)`` filters per conv),
   pruned on an untrained network (the channel counts depend on the ratio only): MAC reduction on
   option A, where svdbench can prune block-internal channels only, and on option B, where it
   prunes every conv, beside the paper's FLOP reduction (its own analytic formula).

    .venv/bin/python benchmarks/published_macs.py
"""

from __future__ import annotations

import argparse

from _common import table, write_result

from svdbench.macs import count_macs, count_params
from svdbench.methods import FPGMPruning, SoftFilterPruning
from svdbench.models import build_model
from svdbench.published import OFFICIAL_BLOCK

SHAPE = (1, 3, 32, 32)
#: preset -> (method, ratio, the paper's FLOP reduction in %: FPGM Table 1, which also quotes SFP)
FILTER_PRESETS = {
    "sfp_cifar10_resnet20": (SoftFilterPruning, 0.3, 42.2),
    "sfp_cifar10_resnet32": (SoftFilterPruning, 0.3, 41.5),
    "sfp_cifar10_resnet56": (SoftFilterPruning, 0.4, 52.6),
    "sfp_cifar10_resnet110": (SoftFilterPruning, 0.3, 40.8),
    "fpgm_cifar10_resnet20": (FPGMPruning, 0.4, 54.0),
    "fpgm_cifar10_resnet32": (FPGMPruning, 0.4, 53.2),
    "fpgm_cifar10_resnet56": (FPGMPruning, 0.4, 52.6),
    "fpgm_cifar10_resnet110": (FPGMPruning, 0.4, 52.3),
}


def net(name: str, shortcut: str = "A", block: str = "basic"):
    return build_model("cifar_resnet", name, 10, 3, shortcut=shortcut, block=block)


def reduction(cls, ratio: float, model) -> float:
    dense = count_macs(model, SHAPE)
    method = cls.create(ratio=ratio, rounding="pruned")
    method.prepare(model, SHAPE)
    method.compress(model)
    return 100.0 * (1 - count_macs(model, SHAPE) / dense)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="published_macs", help="name of the JSON in benchmarks/results/")
    args = parser.parse_args()
    dense_rows, dense = [], {}
    for name, block in OFFICIAL_BLOCK.items():
        a, b = net(name), net(name, "B", block)
        dense[name] = {"A": {"params": count_params(a), "macs": count_macs(a, SHAPE)},
                       f"B-{block}": {"params": count_params(b), "macs": count_macs(b, SHAPE)}}  # fmt: skip
        d = dense[name]
        dense_rows.append([name, f"{d['A']['params']:,}", f"{d['A']['macs'] / 1e6:.2f}", f"B, {block}",
                           f"{d[f'B-{block}']['params']:,}", f"{d[f'B-{block}']['macs'] / 1e6:.2f}"])  # fmt: skip
    print(table(["model", "option A params", "option A MMACs", "official SVD/TRP net", "params", "MMACs"], dense_rows))
    rows, filters = [], {}
    for preset, (cls, ratio, paper) in FILTER_PRESETS.items():
        name = preset.split("_")[-1]
        on_a, on_b = reduction(cls, ratio, net(name)), reduction(cls, ratio, net(name, "B"))
        filters[preset] = {"ratio": ratio, "option_A": on_a, "option_B_basic": on_b, "paper": paper}
        rows.append([preset, ratio, f"{on_a:.1f} %", f"{on_b:.1f} %", f"{paper} %"])
    print()
    print(table(["preset", "ratio", "fewer MACs, option A", "option B (basic)", "paper (formula)"], rows))
    write_result(args.out, {"input_shape": list(SHAPE), "dense": dense, "filter_presets": filters})


if __name__ == "__main__":
    main()
