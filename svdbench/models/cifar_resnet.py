"""CIFAR ResNets of He et al. (2016), section 4.2: 6n+2 layers of basic blocks, widths 16-32-64,
option-A shortcuts (identity, or stride-2 subsampling with zero-padded channels: no parameters).

Two options give the layout of the official SVD-training (yanghr/SVD_Prune_EDLCV,
``CNN/cifar10/origin_resnet.py``) and TRP (yuhuixu1993/Trained-Rank-Pruning) code:

- ``shortcut="B"``: wherever a block changes the shape (stride or channels), its shortcut is a
  1x1 conv (no bias, the block's stride) followed by BatchNorm; elsewhere the identity.
- ``block="bottleneck"``: blocks of a 1x1 conv to the stage width, a 3x3 conv carrying the stride,
  a 1x1 conv to 4x the stage width, each followed by BatchNorm. As in the official code, ReLU
  follows the first BatchNorm and the residual sum, not the second BatchNorm. The stage count
  rule stays n = (depth - 2) / 6 blocks per stage, so "ResNet-56" with bottlenecks has 9n + 2 = 83
  weight layers on its main path, and the classifier sees 256 channels.

The official code uses both from depth 44 on (option B with basic blocks below); svdbench's
default stays He et al.'s option-A basic-block network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SHORTCUTS = ("A", "B")
BLOCKS = ("basic", "bottleneck")


class ZeroPadShortcut(nn.Module):
    """Option-A shortcut: subsample by ``stride`` and zero-pad the channels up to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.pad = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))


def make_shortcut(in_channels: int, out_channels: int, stride: int, kind: str) -> nn.Module:
    """The identity where the shape stays; else option A (:class:`ZeroPadShortcut`) or option B
    (1x1 conv with the block's stride, no bias, then BatchNorm)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if kind == "A":
        return ZeroPadShortcut(in_channels, out_channels, stride)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    expansion = 1
    last_conv = "conv2"  # writes the residual stream

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, shortcut: str = "A") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = make_shortcut(in_channels, out_channels, stride, shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 (to ``width``), 3x3 (stride), 1x1 (to ``4 * width``); see the module docstring."""

    expansion = 4
    last_conv = "conv3"  # writes the residual stream

    def __init__(self, in_channels: int, width: int, stride: int = 1, shortcut: str = "B") -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.shortcut = make_shortcut(in_channels, out_channels, stride, shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))  # no ReLU here, as in the official code
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for small images: 3x3 stem, three stages of n blocks, global pool, linear.
    ``shortcut`` (``A`` | ``B``) and ``block`` (``basic`` | ``bottleneck``): see the module docstring."""

    def __init__(
        self,
        depth: int = 20,
        num_classes: int = 10,
        in_channels: int = 3,
        shortcut: str = "A",
        block: str = "basic",
        widths: tuple[int, int, int] = (16, 32, 64),
    ) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 with n >= 1 (8, 20, 32, ...), got {depth}")
        if shortcut not in SHORTCUTS:
            raise ValueError(f"CIFAR ResNet shortcut must be A or B, got {shortcut!r}")
        if block not in BLOCKS:
            raise ValueError(f"CIFAR ResNet block must be basic or bottleneck, got {block!r}")
        n = (depth - 2) // 6
        self.depth, self.shortcut, self.block = depth, shortcut, block
        block_cls = Bottleneck if block == "bottleneck" else BasicBlock
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers, c = [], widths[0]
        for i, w in enumerate(widths):
            blocks = []
            for j in range(n):
                blocks.append(block_cls(c, w, 2 if (i > 0 and j == 0) else 1, shortcut))
                c = w * block_cls.expansion
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def fixed_output_channels(self) -> list[str]:
        """Convs whose output channels filter pruning must keep. With option A: the stem and every
        block's last conv. They write the residual stream, which the option-A shortcuts
        (zero-padded identities, no parameters) couple across stages where a dependency graph
        cannot see it. With option B none: every shape change goes through a conv, and the
        dependency graph couples the residual stream's writers itself."""
        if self.shortcut == "B":
            return []
        blocks = [
            f"{name}.{m.last_conv}" for name, m in self.named_modules() if isinstance(m, (BasicBlock, Bottleneck))
        ]
        return ["conv1", *blocks]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def cifar_resnet(
    depth: int = 20, num_classes: int = 10, in_channels: int = 3, shortcut: str = "A", block: str = "basic"
) -> CifarResNet:
    return CifarResNet(depth, num_classes, in_channels, shortcut, block)
