"""The method plug-in contract (:func:`svdbench.contracts.check_method`) for every registered method:
built from its config, one training step through every hook, compress, export equal to the model it
deploys, state that survives a checkpoint, JSON-safe details; that it fails a method breaking it;
and the registry's own rules."""

import dataclasses
from dataclasses import dataclass

import pytest
import torch
from hydra.errors import ConfigCompositionException

from svdbench.config import method_class
from svdbench.contracts import check_method
from svdbench.errors import InputError
from svdbench.methods import METHODS, FilterPruningConfig, Method, MethodConfig, method_target, register_method
from svdbench.plan import record_config

SHAPE = (1, 3, 16, 16)


@pytest.mark.parametrize("name", METHODS.names())
def test_method_contract(name):
    cls = METHODS.get(name)
    assert cls.name == name and cls.Config._target_ in ("", method_target(cls))  # supplied, never another class
    check_method(cls)


def test_the_contract_fails_a_method_that_breaks_it():
    class Broken(METHODS.get("dense")):
        def export(self, model):
            return torch.nn.Sequential(model, torch.nn.Dropout(0.0), torch.nn.Softmax(dim=1))  # not the same function

    with pytest.raises(AssertionError, match="the deployed model differs"):
        check_method(Broken)

    class Unsafe(METHODS.get("dense")):
        def details(self):
            return {"device": torch.device("cpu")}

    with pytest.raises(AssertionError, match="details is not JSON-safe"):
        check_method(Unsafe)


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
