"""The method plug-in contract, for every registered method (built in or added by a test): built
from its config, one training step through every hook, compress, export equal to the model it
deploys, state that survives a checkpoint, JSON-safe details. And the registry's own rules."""

import dataclasses
import io
import json
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from svdbench.errors import InputError
from svdbench.methods import METHODS, Method, MethodConfig, method_target, register_method
from svdbench.models import build_model
from svdbench.regularizers import SparsityRegularizer

SHAPE = (1, 3, 16, 16)


def torch_round_trip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)  # what a checkpoint can hold


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("name", METHODS.names())
def test_method_contract(name):
    cls = METHODS.get(name)
    assert cls.name == name and method_target(cls) == cls.Config._target_ == cls.Config()._target_
    regularizer = SparsityRegularizer("hoyer", 0.01) if cls.uses_regularizer else None
    method = cls(cls.Config(), regularizer)
    assert (method.regularizer is None) == (not cls.uses_regularizer)
    torch.manual_seed(0)
    model = build_model("cifar_resnet", "resnet8", 10, 3)
    method.check(model, SHAPE)
    net = method.prepare(model, SHAPE)
    x, y = torch.randn(8, *SHAPE[1:]), torch.randint(0, 10, (8,))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    net.train()
    for step in range(2):  # step 0 is due for every periodic hook
        loss = F.cross_entropy(net(x), y)
        reg = method.regularization(net, "train")
        if reg is not None:
            assert reg.ndim == 0 and torch.isfinite(reg)
            loss = loss + reg
        opt.zero_grad()
        loss.backward()
        method.after_backward(net, step, "train")
        opt.step()
        method.after_step(net, step, "train")
    method.on_epoch_end(net, 0, "train")

    state = method.state_dict()
    again = cls(method.config, regularizer)
    again.load_state_dict(torch_round_trip(state))
    assert same(again.state_dict(), state)

    if cls.compresses:
        method.compress(net)
    deployed = method.export(net)
    net.eval(), deployed.eval()
    with torch.no_grad():
        assert torch.allclose(deployed(x), net(x), atol=1e-4, rtol=1e-4)
    details = method.details()
    assert json.loads(json.dumps(details)) == details and details["finetune_epochs"] == method.finetune_epochs
    for label, point in method.operating_points():
        assert isinstance(point, cls) and point is not method and label


def test_create_refuses_unknown_settings_and_reconfigured_checks_again():
    cls = METHODS.get("svd")
    with pytest.raises(TypeError, match="enrgy"):
        cls.create(enrgy=0.1)
    method = cls.create(energy=0.1, energies=[0.2, 0.3])
    assert [(label, p.config.energy, p.config.energies) for label, p in method.operating_points()] == [
        ("energy_0.2", 0.2, []), ("energy_0.3", 0.3, [])
    ]  # fmt: skip
    with pytest.raises(ValueError, match="method.energy must be in"):
        method.reconfigured(energy=2.0)


def test_a_method_takes_only_its_own_config():
    with pytest.raises(TypeError, match="takes a SVDConfig"):
        METHODS.get("svd")(METHODS.get("trp").Config())


def test_registry_names_the_choices_and_refuses_a_second_owner():
    with pytest.raises(InputError, match=r"unknown method 'magic'; choose from dense, .*svd"):
        METHODS.get("magic")

    @dataclass
    class OtherConfig(MethodConfig):
        _target_: str = f"{__name__}.Other"

    class Other(Method):
        Config = OtherConfig

    Other.__qualname__ = "Other"
    with pytest.raises(ValueError, match="'svd' is already registered"):
        register_method("svd")(Other)


def test_register_method_checks_the_config_target():
    @dataclass
    class WrongConfig(MethodConfig):
        _target_: str = "somewhere.else"

    class Wrong(Method):
        Config = WrongConfig

    with pytest.raises(TypeError, match="_target_ must default to"):
        register_method("wrong")(Wrong)
    assert "wrong" not in METHODS


def test_every_config_field_has_a_default():
    """``method=NAME`` alone must compose: every setting has a default."""
    for name in METHODS:
        cfg = METHODS.get(name).Config
        missing = [f.name for f in dataclasses.fields(cfg) if f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]  # fmt: skip
        assert missing == [], name
