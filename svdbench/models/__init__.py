"""Models by name: CIFAR ResNets (``resnet8`` ... ``resnet110``), torchvision ResNets, any timm model."""

from __future__ import annotations

from torch import nn

from .cifar_resnet import CifarResNet, cifar_resnet

CIFAR_DEPTHS = {"resnet8": 8, "resnet20": 20, "resnet32": 32, "resnet44": 44, "resnet56": 56, "resnet110": 110}
TORCHVISION = ("resnet18", "resnet34", "resnet50", "resnet101")
FAMILIES = ("cifar_resnet", "torchvision", "timm")

__all__ = ["CifarResNet", "cifar_resnet", "build_model", "CIFAR_DEPTHS"]


def build_model(family: str, name: str, num_classes: int, in_channels: int) -> nn.Module:
    """``family`` is cifar_resnet (name resnet8/20/32/44/56/110), torchvision (resnet18/34/50/101,
    ImageNet layout, random init) or timm (any ``timm.list_models()`` name, ``pretrained=False``)."""
    if family == "cifar_resnet":
        if name not in CIFAR_DEPTHS:
            raise ValueError(f"unknown CIFAR ResNet {name!r}; choose from {sorted(CIFAR_DEPTHS)}")
        return cifar_resnet(CIFAR_DEPTHS[name], num_classes, in_channels)
    if family == "torchvision":
        import torchvision

        if name not in TORCHVISION:
            raise ValueError(f"unknown torchvision model {name!r}; choose from {TORCHVISION}")
        model = getattr(torchvision.models, name)(weights=None, num_classes=num_classes)
        if in_channels != 3:
            old = model.conv1
            model.conv1 = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False)
        return model
    if family == "timm":
        import timm

        if not timm.list_models(name):
            raise ValueError(f"unknown timm model {name!r} (see timm.list_models())")
        return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels)
    raise ValueError(f"unknown model family {family!r}; choose from {FAMILIES}")
