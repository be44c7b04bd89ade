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
from hydra.errors import ConfigCompositionException

from svdbench.config import method_class
from svdbench.errors import InputError
from svdbench.methods import METHODS, FilterPruningConfig, Method, MethodConfig, method_target, register_method
from svdbench.models import build_model
from svdbench.pipeline import record_config
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
    assert cls.name == name and cls.Config._target_ in ("", method_target(cls))  # supplied, never another class
    regularizer = SparsityRegularizer("hoyer", 0.01) if cls.uses_regularizer else None
    method = cls(cls.Config(), regularizer)
    assert method.config._target_ == method_target(cls)
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

    class Other(Method):
        pass

    Other.__qualname__ = "Other"
    with pytest.raises(ValueError, match="'svd' is already registered"):
        register_method("svd")(Other)


def test_register_method_checks_the_config():
    @dataclass
    class WrongConfig(MethodConfig):
        _target_: str = "somewhere.else"

    class Wrong(Method):
        Config = WrongConfig

    with pytest.raises(TypeError, match="_target_ defaults to 'somewhere.else', not .*Wrong'"):
        register_method("wrong")(Wrong)

    @dataclass
    class Plain:
        alpha: float = 0.5

    class Untyped(Method):
        Config = Plain

    with pytest.raises(TypeError, match="Untyped.Config must be a MethodConfig dataclass"):
        register_method("wrong")(Untyped)
    assert "wrong" not in METHODS


def test_methods_sharing_a_config_class_each_get_their_own_target(compose_cfg, build, tiny_cfg):
    """l1_filter and sfp share FilterPruningConfig and dense takes MethodConfig itself: the target is
    supplied, on the command line (Hydra's method node, validate, results.json's config) and in Python."""
    l1, sfp = METHODS.get("l1_filter"), METHODS.get("sfp")
    assert l1.Config is sfp.Config is FilterPruningConfig and METHODS.get("dense").Config is MethodConfig
    for cls in (l1, sfp, METHODS.get("dense")):
        composed = compose_cfg([f"method={cls.name}"])
        assert composed.method._target_ == method_target(cls)
        typed, method = build(composed)
        assert type(method) is cls and type(typed.method) is cls.Config and method_class(typed.method) is cls
        assert record_config(typed, method)["method"]["_target_"] == method_target(cls)  # what results.json holds
    with pytest.raises(ConfigCompositionException) as err:  # the node is still typed
        compose_cfg(["method=sfp", "method.ratio=half"])
    assert "could not be converted to Float" in str(err.value.__cause__)
    config = FilterPruningConfig(ratio=0.3)
    for method in (l1(config), sfp(config), l1.create(ratio=0.3)):
        assert method.config._target_ == method_target(type(method)) and method.config.ratio == 0.3
        assert record_config(tiny_cfg(), method)["method"]["_target_"] == method_target(type(method))
    assert config._target_ == ""  # the caller's object is left alone
    with pytest.raises(TypeError, match="SoftFilterPruning takes a config of its own, got one for .*L1FilterPruning"):
        sfp(l1(config).config)
    with pytest.raises(TypeError, match="Dense takes a MethodConfig, got SVDConfig"):
        METHODS.get("dense")(METHODS.get("svd").Config())


def test_every_config_field_has_a_default():
    """``method=NAME`` alone must compose: every setting has a default."""
    for name in METHODS:
        cfg = METHODS.get(name).Config
        missing = [f.name for f in dataclasses.fields(cfg) if f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]  # fmt: skip
        assert missing == [], name
