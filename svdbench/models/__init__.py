"""Models by family and name: CIFAR ResNets (``resnet8`` ... ``resnet110``), torchvision ResNets, any
timm model, or your own ``nn.Module`` (``model._target_``).

A family is a function ``build(name, num_classes, in_channels) -> nn.Module`` registered in
:data:`MODELS` with ``@MODELS.register("<family>")``. A family whose build function takes
``**kwargs`` (timm) receives ``model.kwargs``; any other refuses them (:func:`check_kwargs`), never
ignores them. A family that offers the architecture options ``model.shortcut`` / ``model.block``
(:data:`OPTIONS`) takes them as keyword parameters of those names (``cifar_resnet`` does); elsewhere
a non-default value is refused. A model may declare channel-coupling facts that a dependency graph
cannot see with a method ``fixed_output_channels() -> list[str]`` (names of convs whose output
channels filter pruning must keep); see :class:`CifarResNet`.
"""

from __future__ import annotations

import inspect
import os
import pickle
import stat
from collections.abc import Mapping
from typing import Any

from torch import nn

from ..errors import InputError, one_line
from ..registry import Registry, import_object
from .cifar_resnet import BLOCKS, SHORTCUTS, Bottleneck, CifarResNet, cifar_resnet

CIFAR_DEPTHS = {"resnet8": 8, "resnet20": 20, "resnet32": 32, "resnet44": 44, "resnet56": 56, "resnet110": 110}
TORCHVISION = ("resnet18", "resnet34", "resnet50", "resnet101")
#: architecture options of ``model`` and their defaults; a family takes those its build function names
OPTIONS = {"shortcut": "A", "block": "basic"}

#: model families by name (``model.family``)
MODELS: Registry = Registry("model family")

__all__ = [
    "BLOCKS",
    "Bottleneck",
    "CIFAR_DEPTHS",
    "CifarResNet",
    "MODELS",
    "OPTIONS",
    "SHORTCUTS",
    "build_model",
    "build_from_config",
    "model_options",
    "check_options",
    "check_checkpoint_path",
    "check_kwargs",
    "takes_kwargs",
    "check_model_name",
    "cifar_resnet",
    "family_options",
    "model_label",
]


def _field(model_cfg: Any, key: str, default: Any = None) -> Any:
    """``model_cfg[key]`` of a model config given as a mapping (results.json) or an object (the typed config)."""
    return model_cfg.get(key, default) if isinstance(model_cfg, Mapping) else getattr(model_cfg, key, default)


def model_options(model_cfg: Any) -> dict[str, str]:
    """``shortcut`` / ``block`` of a model config (:data:`OPTIONS`' defaults where it has no such key)."""
    return {k: _field(model_cfg, k, default) for k, default in OPTIONS.items()}


#: ``model.kwargs`` that load weights into the model built (timm's ``checkpoint_path``): left out where only the
#: architecture is wanted (a probe on the meta device, a deployed model rebuilt before its own weights go in)
WEIGHT_KWARGS = ("checkpoint_path",)


def build_from_config(model_cfg: Any, num_classes: int, in_channels: int, weights: bool = True) -> nn.Module:
    """:func:`build_model` of a model config (the ``model`` node: an object or a results.json mapping);
    ``weights=False``: without the keys that load weights (:data:`WEIGHT_KWARGS`)."""
    kwargs = _field(model_cfg, "kwargs")
    if not weights and kwargs:
        kwargs = {k: v for k, v in dict(kwargs).items() if k not in WEIGHT_KWARGS}
    return build_model(
        _field(model_cfg, "family"),
        _field(model_cfg, "name"),
        num_classes,
        in_channels,
        target=_field(model_cfg, "_target_"),
        kwargs=kwargs,
        **model_options(model_cfg),
    )


def model_label(name: str, **options: str) -> str:
    """The model's name in results and reports, with its architecture options where they differ
    from :data:`OPTIONS`: ``model_label("resnet56", shortcut="B", block="bottleneck")`` is
    ``"resnet56-B-bottleneck"``; at the defaults it is ``name``."""
    return "-".join([name, *(str(options[k]) for k, v in OPTIONS.items() if options.get(k, v) != v)])


@MODELS.register("cifar_resnet")
def build_cifar_resnet(
    name: str, num_classes: int, in_channels: int, shortcut: str = "A", block: str = "basic"
) -> nn.Module:
    """He et al.'s CIFAR ResNets, resnet8/20/32/44/56/110; ``shortcut="B"`` and
    ``block="bottleneck"`` give the official SVD-training / TRP code's layout (CifarResNet)."""
    if name not in CIFAR_DEPTHS:
        raise InputError(f"unknown CIFAR ResNet {name!r}; choose from {sorted(CIFAR_DEPTHS)}")
    return cifar_resnet(CIFAR_DEPTHS[name], num_classes, in_channels, shortcut, block)


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


def _given(kwargs: dict) -> str:
    """`` with model.kwargs.a=1, model.kwargs.b=2`` (nothing without kwargs): what the message of a model that
    cannot be built names, as the keys were given."""
    return " with " + ", ".join(f"model.kwargs.{k}={v}" for k, v in kwargs.items()) if kwargs else ""


@MODELS.register("timm")
def build_timm(name: str, num_classes: int, in_channels: int, **kwargs: Any) -> nn.Module:
    """Any ``timm.list_models()`` name (exactly: not a pattern), ``pretrained=False``; ``kwargs``
    (``model.kwargs``: ``img_size``, ``patch_size``, ``embed_dim``, ``depth``, ``num_heads``,
    ``mlp_ratio``, ...) go to ``timm.create_model``. A key the model does not take is one line."""
    import timm

    check_model_name("timm", name)
    reserved = sorted(set(kwargs) & {"pretrained", "in_chans"})
    if reserved:
        raise InputError(f"model.kwargs.{reserved[0]}: svdbench sets it (pretrained=False; in_chans from the data)")
    check_checkpoint_path(kwargs.get("checkpoint_path"))
    try:
        return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels, **kwargs)
    except TypeError as err:
        if kwargs and "keyword argument" in str(err):
            raise InputError(f"model.kwargs: timm model {name!r} does not take it ({one_line(err)})") from None
        raise InputError(f"timm model {name!r} cannot be built here{_given(kwargs)}: {one_line(err)}") from None
    except (RuntimeError, ValueError, AssertionError, ArithmeticError, IndexError) as err:  # a size timm cannot take
        raise InputError(f"timm model {name!r} cannot be built here{_given(kwargs)}: {one_line(err)}") from None
    except (EOFError, KeyError, AttributeError, pickle.UnpicklingError) as err:
        if not kwargs.get("checkpoint_path"):
            raise
        raise InputError(f"model.kwargs.checkpoint_path: {kwargs['checkpoint_path']} is not a state dict timm can "
                         f"load ({one_line(err, with_type=True)})") from None  # fmt: skip


def check_checkpoint_path(path: Any) -> None:
    """``model.kwargs.checkpoint_path`` (weights timm loads into the model) names a regular file: InputError
    in one line otherwise (timm's own error names no key; a FIFO there would block its read)."""
    if path is None or path == "":  # timm's "no checkpoint"
        return
    try:
        ok = stat.S_ISREG(os.stat(os.path.expanduser(str(path))).st_mode)
    except OSError as err:
        raise InputError(f"model.kwargs.checkpoint_path: cannot read {path} ({one_line(err)})") from None
    if not ok:
        raise InputError(f"model.kwargs.checkpoint_path: {path} is not a regular file")


#: the names a built-in family knows, checked before any work
NAMES = {"cifar_resnet": tuple(CIFAR_DEPTHS), "torchvision": TORCHVISION}


def check_model_name(family: str, name: str) -> None:
    """InputError in one line when ``name`` is not a model of the built-in ``family`` (a family of your
    own checks its names when it builds)."""
    if family == "timm":
        import timm

        if not timm.is_model(name):
            raise InputError(f"model.name={name} is not a timm model: give a name of timm.list_models(), not a pattern")
    elif family in NAMES and name not in NAMES[family]:
        raise InputError(f"model.name={name} is not a {family} model; choose from {', '.join(NAMES[family])}")


def takes_kwargs(family: str) -> bool:
    """Whether the build function of ``family`` takes ``model.kwargs`` (a ``**kwargs`` parameter)."""
    params = inspect.signature(MODELS.get(family)).parameters.values()
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


#: the build arguments svdbench itself gives every model (from the data): never in ``model.kwargs``
SET_BY_SVDBENCH = ("num_classes", "in_channels")


def check_kwargs(family: str | None, kwargs: Mapping | None) -> None:
    """InputError in one line when ``model.kwargs`` sets what svdbench sets (:data:`SET_BY_SVDBENCH`), or
    is given to a family that takes none (``family`` None: a ``model._target_``, which takes any)."""
    set_here = sorted(set(kwargs or {}) & set(SET_BY_SVDBENCH))
    if set_here:
        raise InputError(f"model.kwargs.{set_here[0]}: svdbench sets it (the classes and image channels of the data)")
    if family is not None and kwargs and not takes_kwargs(family):
        takers = ", ".join(f"model.family={f}" for f in MODELS.names() if takes_kwargs(f))
        raise InputError(
            f"model.kwargs ({', '.join(map(str, kwargs))}) is not read by model.family={family}: only "
            f"{takers} and a model._target_ take it"
        )


def family_options(family: str) -> list[str]:
    """The architecture options (:data:`OPTIONS`) the build function of ``family`` takes."""
    params = inspect.signature(MODELS.get(family)).parameters
    return [k for k in OPTIONS if k in params]


def check_options(family: str | None, options: dict[str, str]) -> None:
    """Each option away from its default must be one that ``family`` (None: a ``model._target_``)
    takes: else InputError in one line naming the key."""
    takes = family_options(family) if family is not None else []
    for key, value in options.items():
        if value != OPTIONS[key] and key not in takes:
            families = " or ".join(f for f in MODELS.names() if key in family_options(f))
            where = f"model.family={family}" if family is not None else "model._target_ (pass options in model.kwargs)"
            raise InputError(f"model.{key} is an option of model.family={families} only, got {value!r} with {where}")


def build_model(
    family: str,
    name: str,
    num_classes: int,
    in_channels: int,
    target: str | None = None,
    kwargs: dict | None = None,
    shortcut: str = "A",
    block: str = "basic",
) -> nn.Module:
    """The model ``name`` of ``family`` (``kwargs`` to a family that takes them, :func:`takes_kwargs`); with
    ``target`` ("module.function" or "module.Class"), that callable instead, called as
    ``target(num_classes=..., in_channels=..., **kwargs)``.
    ``shortcut`` and ``block`` (:data:`OPTIONS`) go to a family that takes them; a non-default
    value elsewhere is an InputError."""
    options = {"shortcut": shortcut, "block": block}
    check_options(family if target is None else None, options)
    check_kwargs(family if target is None else None, kwargs)
    if target is None:
        build = MODELS.get(family)
        named = [p.name for p in inspect.signature(build).parameters.values() if p.kind is not p.VAR_KEYWORD]
        clash = sorted(set(kwargs or {}) & set(named))
        if clash:
            raise InputError(f"model.kwargs.{clash[0]}: svdbench sets it (give model.{clash[0]} or the data's own)")
        chosen = {k: v for k, v in options.items() if k in family_options(family)}
        return build(name, num_classes, in_channels, **chosen, **(kwargs or {}))
    model = import_object(target, "model._target_")(num_classes=num_classes, in_channels=in_channels, **(kwargs or {}))
    if not isinstance(model, nn.Module):
        raise InputError(f"model._target_ {target!r} returned {type(model).__name__}, not an nn.Module")
    return model
