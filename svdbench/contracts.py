"""The plug-in contracts, as checks a test of yours can call: what every method, model family and
dataset registered in svdbench must do. svdbench's own tests run them over its registries
(tests/test_methods.py, tests/test_contracts.py); a plug-in's test runs them on the plug-in::

    from svdbench.contracts import check_method
    import my_bench

    def test_my_method():
        check_method(my_bench.LinearSVD)

Each check raises ``AssertionError`` naming what does not hold.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .methods.base import Method, method_target
from .models import build_model
from .regularizers import SparsityRegularizer

__all__ = ["check_method", "same_state"]


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
