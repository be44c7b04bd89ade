"""Models by family and name: CIFAR ResNets (``resnet8`` ... ``resnet110``), torchvision ResNets,
any timm model, or your own ``nn.Module`` (``model._target_``).

A family is a function ``build(name, num_classes, in_channels) -> nn.Module`` registered in
:data:`MODELS` with ``@MODELS.register("<family>")``. A model may declare channel-coupling facts
that a dependency graph cannot see with a method ``fixed_output_channels() -> list[str]`` (names
of convs whose output channels filter pruning must keep); see :class:`CifarResNet`.
"""

from __future__ import annotations

from torch import nn

from ..errors import InputError
from ..registry import Registry, import_object
from .cifar_resnet import CifarResNet, cifar_resnet

CIFAR_DEPTHS = {"resnet8": 8, "resnet20": 20, "resnet32": 32, "resnet44": 44, "resnet56": 56, "resnet110": 110}
TORCHVISION = ("resnet18", "resnet34", "resnet50", "resnet101")

#: model families by name (``model.family``)
MODELS: Registry = Registry("model family")

__all__ = ["CifarResNet", "cifar_resnet", "build_model", "CIFAR_DEPTHS", "MODELS"]


@MODELS.register("cifar_resnet")
def build_cifar_resnet(name: str, num_classes: int, in_channels: int) -> nn.Module:
    """He et al.'s CIFAR ResNets, resnet8/20/32/44/56/110."""
    if name not in CIFAR_DEPTHS:
        raise InputError(f"unknown CIFAR ResNet {name!r}; choose from {sorted(CIFAR_DEPTHS)}")
    return cifar_resnet(CIFAR_DEPTHS[name], num_classes, in_channels)


@MODELS.register("torchvision")
def build_torchvision(name: str, num_classes: int, in_channels: int) -> nn.Module:
    """torchvision ResNets (resnet18/34/50/101), ImageNet layout, random init; the stem takes
    ``in_channels``."""
    import torchvision

    if name not in TORCHVISION:
        raise InputError(f"unknown torchvision model {name!r}; choose from {TORCHVISION}")
    model = getattr(torchvision.models, name)(weights=None, num_classes=num_classes)
    if in_channels != 3:
        old = model.conv1
        model.conv1 = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False)
    return model


@MODELS.register("timm")
def build_timm(name: str, num_classes: int, in_channels: int) -> nn.Module:
    """Any ``timm.list_models()`` name, ``pretrained=False``."""
    import timm

    if not timm.list_models(name):
        raise InputError(f"unknown timm model {name!r} (see timm.list_models())")
    return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels)


def build_model(
    family: str, name: str, num_classes: int, in_channels: int, target: str | None = None, kwargs: dict | None = None
) -> nn.Module:
    """The model ``name`` of ``family``; with ``target`` ("module.function" or "module.Class"), that
    callable instead, called as ``target(num_classes=..., in_channels=..., **kwargs)``."""
    if target is None:
        return MODELS.get(family)(name, num_classes, in_channels)
    model = import_object(target, "model._target_")(num_classes=num_classes, in_channels=in_channels, **(kwargs or {}))
    if not isinstance(model, nn.Module):
        raise InputError(f"model._target_ {target!r} returned {type(model).__name__}, not an nn.Module")
    return model
