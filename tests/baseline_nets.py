"""Shared by the baseline tests: the tiny ResNet-8 every unit test prunes and the analytic MAC count
of a CIFAR ResNet whose block-internal widths filter pruning has narrowed."""

from torch import nn

from svdbench.models import build_model

SHAPE = (1, 3, 16, 16)


def resnet8() -> nn.Module:
    return build_model("cifar_resnet", "resnet8", 10, 3)


def cifar_macs(c1: int, c2: int, c3: int, hw: int = 16, blocks: int = 1) -> int:
    """Analytic conv + linear MACs of a CIFAR ResNet (option A, ``blocks`` per stage, 3 x hw x hw
    input) whose blocks have internal widths c1, c2, c3: H*W*k*k*Cin*Cout per conv, + 64*10."""
    total, cin = hw * hw * 9 * 3 * 16, 16
    for i, (c, width) in enumerate(zip((c1, c2, c3), (16, 32, 64), strict=True)):
        h = hw >> i
        for _ in range(blocks):
            total += h * h * 9 * cin * c + h * h * 9 * c * width
            cin = width
    return total + 64 * 10


resnet8_macs = cifar_macs
