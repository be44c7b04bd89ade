"""The plug-in contracts, as checks a test of yours can call: what every method, model and dataset
must do. svdbench's own tests run them over its registries (tests/test_methods.py,
tests/test_contracts.py); a plug-in's test runs them on the plug-in::

    from svdbench.contracts import check_dataset, check_method, check_model
    import my_bench

    def test_my_plugins():
        check_method(my_bench.LinearSVD)
        check_model(my_bench.small_cnn, width=8)
        check_dataset(my_bench.stripes, kwargs={"n": 64, "size": 16})

Each check raises ``AssertionError`` naming what does not hold.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import DatasetConfig
from .data import DATASETS, DatasetSplits, TensorSplits, load_dataset
from .macs import analyze_macs
from .methods.base import Method, method_target
from .models import build_model
from .regularizers import SparsityRegularizer

__all__ = ["check_dataset", "check_method", "check_model", "same_state"]


def _round_trip(obj: Any) -> Any:
    """``obj`` saved and loaded as a checkpoint is: ``torch.load(weights_only=True)``."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def same_state(a: Any, b: Any) -> bool:
    """Nested dicts, lists and tensors equal element for element (tensors exactly)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(same_state, a, b))
    return a == b


def _resnet8() -> nn.Module:
    return build_model("cifar_resnet", "resnet8", 10, 3)


def check_method(
    cls: type[Method], input_shape: tuple[int, ...] = (1, 3, 16, 16), model: Callable[[], nn.Module] = _resnet8
) -> None:
    """The method contract, on ``model()`` (default: a CIFAR ResNet-8, 10 classes) and a batch of 8
    inputs of ``input_shape`` (batch dimension first):

    - the method is built from its default config, whose ``_target_`` names the class (with an active
      ``hoyer`` term where the config takes a regularizer);
    - ``check``, ``prepare`` (returning the model to train), two training steps through
      ``regularization`` (a finite scalar or None), ``after_backward``, ``after_step`` and one
      ``on_epoch_end``;
    - ``state_dict`` survives a checkpoint round trip (``weights_only=True``) into a fresh instance;
    - ``compress`` (where ``compresses``), then ``export``: the deployed model computes what the trained
      one computes (eval mode, atol 1e-4);
    - ``details`` is JSON-safe; every operating point is a configured copy of the same class with a label.
    """
    config = cls.Config()
    if "regularizer" in cls.Config.groups():
        config = dataclasses.replace(config, regularizer=SparsityRegularizer("hoyer", 0.01))
    method = cls(config)
    assert method.config._target_ == method_target(cls), f"config._target_ is {method.config._target_!r}"
    torch.manual_seed(0)
    net = model()
    method.check(net, input_shape)
    net = method.prepare(net, input_shape)
    assert isinstance(net, nn.Module), f"{cls.__name__}.prepare returned {type(net).__name__}, not the model"
    x, y = torch.randn(8, *input_shape[1:]), torch.randint(0, 10, (8,))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    net.train()
    for step in range(2):  # step 0 is due for every periodic hook
        loss = F.cross_entropy(net(x), y)
        reg = method.regularization(net, "train")
        if reg is not None:
            assert reg.ndim == 0 and torch.isfinite(reg), f"{cls.__name__}.regularization is not a finite scalar"
            loss = loss + reg
        opt.zero_grad()
        loss.backward()
        method.after_backward(net, step, "train")
        opt.step()
        method.after_step(net, step, "train")
    method.on_epoch_end(net, 0, "train")

    state = method.state_dict()
    again = cls(method.config)
    again.load_state_dict(_round_trip(state))
    assert same_state(again.state_dict(), state), f"{cls.__name__}.state_dict does not survive a checkpoint"

    if cls.compresses:
        method.compress(net)
    deployed = method.export(net)
    net.eval(), deployed.eval()
    with torch.no_grad():
        out, ref = deployed(x), net(x)
    assert torch.allclose(out, ref, atol=1e-4, rtol=1e-4), f"the deployed model differs by {(out - ref).abs().max():g}"
    details = method.details()
    try:
        safe = json.loads(json.dumps(details)) == details
    except (TypeError, ValueError):
        safe = False
    assert safe, f"{cls.__name__}.details is not JSON-safe: {details!r:.200}"
    for label, point in method.operating_points():
        assert isinstance(point, cls) and point is not method and label, f"operating point {label!r}"


def check_model(
    build: Callable[..., nn.Module], in_channels: int = 2, num_classes: int = 7, size: int = 32, **kwargs: Any
) -> nn.Module:
    """The model contract: ``build(num_classes=..., in_channels=..., **kwargs)`` (a ``model._target_``,
    or ``functools.partial(build_model, family, name)``) returns an ``nn.Module`` whose forward pass on
    ``in_channels x size x size`` inputs gives one finite logit per class, and whose MAC count (fvcore,
    :func:`svdbench.macs.analyze_macs`, what every run records) is finite and positive. Returns it."""
    model = build(num_classes=num_classes, in_channels=in_channels, **kwargs)
    assert isinstance(model, nn.Module), f"{build!r} returned {type(model).__name__}, not an nn.Module"
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, in_channels, size, size))
    assert tuple(out.shape) == (2, num_classes), f"output of shape {tuple(out.shape)} for 2 x {num_classes} classes"
    assert torch.isfinite(out).all(), "non-finite logits"
    macs = analyze_macs(model, (1, in_channels, size, size)).macs
    assert macs > 0 and math.isfinite(macs), f"{macs} MACs"
    return model


def _tensor_splits(splits: TensorSplits) -> tuple[int, int, tuple[int, ...]]:
    shapes = set()
    for name, split in (("train", splits.train), ("test", splits.test), ("val", splits.val)):
        if split is None:
            continue
        x, y = split
        assert x.dim() == 4 and len(x) > 0 and tuple(y.shape) == (len(x),), f"{name}: {len(x)} images, {len(y)} labels"
        assert x.dtype == torch.uint8 or (x.is_floating_point() and 0 <= x.min() and x.max() <= 1), f"{name} images"
        assert y.dtype == torch.int64, f"{name} labels are {y.dtype}, not int64"
        assert 0 <= y.min() and y.max() < splits.num_classes, f"{name} labels outside [0, {splits.num_classes})"
        shapes.add(tuple(x.shape[1:]))
    assert len(shapes) == 1, f"splits of different image shapes: {sorted(shapes)}"
    (shape,) = shapes
    assert len(splits.mean) == len(splits.std) == shape[0] and min(splits.std) > 0, "mean/std per channel"
    return len(splits.train[1]), len(splits.test[1]), shape


def _dataset_splits(splits: DatasetSplits) -> tuple[int, int, tuple[int, ...]]:
    shape = tuple(splits.input_shape)
    assert len(shape) == 3, f"input_shape {shape} is not (C, H, W)"
    for name, ds in (("train", splits.train), ("test", splits.test), ("val", splits.val)):
        if ds is None:
            continue
        assert len(ds) > 0, f"{name} is empty"
        for x, y in ds:
            assert tuple(x.shape) == shape and x.is_floating_point(), f"{name}: an image of {tuple(x.shape)}"
            assert 0 <= int(y) < splits.num_classes, f"{name}: label {int(y)}"
    return len(splits.train), len(splits.test), shape


def check_dataset(fn: Callable[..., Any], name: str = "mine", seed: int = 0, **settings: Any) -> dict[str, Any]:
    """The dataset contract: ``fn(cfg, seed)`` (a ``dataset._target_`` or a registered dataset, ``cfg``
    a :class:`~svdbench.config.DatasetConfig` with ``settings``, e.g. ``kwargs={...}`` or ``root=...``)
    returns :class:`TensorSplits` (images N x C x H x W uint8 or float in [0, 1], labels N int64 in
    ``[0, num_classes)``, one image shape, per-channel mean and std) or :class:`DatasetSplits`, and
    :func:`~svdbench.data.load_dataset` batches it. Returns ``num_train``, ``num_test``,
    ``num_classes`` and ``shape``."""
    target = None if DATASETS.find(name) is fn else f"{fn.__module__}.{fn.__qualname__}"  # built in, or one's own
    cfg = DatasetConfig(name=name, _target_=target, **{"download": False, **settings})
    splits = fn(cfg, seed)
    assert isinstance(splits, (TensorSplits, DatasetSplits)), f"returned {type(splits).__name__}"
    assert splits.num_classes >= 2, f"num_classes {splits.num_classes}"
    num_train, num_test, shape = (_tensor_splits if isinstance(splits, TensorSplits) else _dataset_splits)(splits)
    bundle = load_dataset(cfg, batch_size=4, eval_batch_size=4, seed=seed)
    x, y = next(iter(bundle.train))
    assert tuple(x.shape) == (min(4, bundle.num_train), *shape) == (len(y), *bundle.input_shape), "batches"
    assert bundle.num_classes == splits.num_classes
    return {"num_train": num_train, "num_test": num_test, "num_classes": splits.num_classes, "shape": shape}
