"""``method=scratch`` (Liu et al., ICLR 2019): the deployed architecture of another run, re-initialised
and trained from scratch for the epochs of Scratch-E or Scratch-B; the source checked before any work."""

import hashlib
import json
import shutil

import pytest
import torch

from svdbench import preflight
from svdbench.deployed import WEIGHTS_FILE, document, load_deployed
from svdbench.errors import InputError
from svdbench.macs import analyze_macs, count_params
from svdbench.methods import Dense, L1FilterPruning, Scratch, SVDTraining
from svdbench.methods.scratch import ScratchConfig
from svdbench.models import build_model
from svdbench.pipeline import run_experiment
from svdbench.regularizers import SparsityRegularizer

SHAPE = (1, 3, 16, 16)
RESNET8 = {"family": "cifar_resnet", "name": "resnet8"}


def resnet8():
    return build_model("cifar_resnet", "resnet8", 10, 3)


def pruned():
    net, method = resnet8(), L1FilterPruning.create(ratio=0.5)
    method.prepare(net, SHAPE)
    method.compress(net)
    return net


def write_run(run_dir, deployed=None, **extra):
    """A completed results.json (and, with ``deployed``, its deployed.json and deployed.pt) as a run writes them."""
    run_dir.mkdir(parents=True)
    dense = resnet8()
    res = {"status": "completed", "method": "l1_filter", "model": "resnet8", "dataset": "synthetic", "seed": 0,
           "config": {"model": RESNET8, "method": {"speedup": 2.0}}, "top1": 10.0, "input_shape": list(SHAPE),
           "macs_dense": analyze_macs(dense, SHAPE).macs, "params_dense": count_params(dense),
           "params": count_params(deployed if deployed is not None else dense),
           "macs": analyze_macs(deployed if deployed is not None else dense, SHAPE).macs, "epochs_after_start": 4,
           **extra}  # fmt: skip
    (run_dir / "results.json").write_text(json.dumps(res))
    if deployed is not None:
        torch.save(deployed.state_dict(), run_dir / WEIGHTS_FILE)
        (run_dir / "deployed.json").write_text(json.dumps(document(deployed, dense, RESNET8, 10, 3)))
    return res


@pytest.fixture
def source(tmp_path):
    """A pruned run with a pretrain stage of 2 epochs, from a dense start of 3 epochs: 2 + 3 + 4 = 9 in all."""
    write_run(tmp_path / "dense", epochs_after_start=3)
    history = [{"stage": "pretrain", "epoch": 1}, {"stage": "pretrain", "epoch": 2}, {"stage": "finetune", "epoch": 1}]
    res = write_run(tmp_path / "src", pruned(), history=history, init_from=str(tmp_path / "dense"))
    return tmp_path / "src", res


def test_the_epochs_follow_scratch_e_and_scratch_b_and_are_recorded(source, compose_cfg):
    src, res = source
    assert Scratch.create(architecture_from=str(src)).starting_from(False).config.epochs == 9
    speedup = res["macs_dense"] / res["macs"]
    b = Scratch.create(architecture_from=str(src), budget_rule="scratch_b").starting_from(False)
    assert b.config.epochs == int(9 * speedup + 0.5) > 9 and b.train_epochs == b.config.epochs
    given = Scratch.create(architecture_from=str(src), epochs=5).starting_from(False)
    assert given.train_epochs == 5 and given.details()["epochs_rule"] == "method.epochs"
    plan = preflight.plan(compose_cfg(["+debug=tiny", "method=scratch", f"method.architecture_from={src}"]))
    assert plan.config["method"]["epochs"] == 9 and [(s.name, s.epochs) for s in plan.before_compress] == [
        ("train", 9)
    ]  # what --cfg job prints and results.json records
    details = plan.method.details()
    doc = json.loads((src / "deployed.json").read_text())  # the architecture trained, as a digest of its data
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    assert details.pop("source_architecture") == "sha256:" + hashlib.sha256(canonical).hexdigest()
    assert details == {"source": str(src), "source_method": "l1_filter", "speedup_target": 2.0,
                       "source_speedup": speedup, "source_epochs": {"dense_start": 5, "after_start": 4},
                       "epochs_rule": "scratch_e", "epochs": 9}  # fmt: skip


@pytest.mark.parametrize("change", ["remade", "gone"])
def test_given_epochs_need_no_dense_start_after_training(change, source):
    """A source whose dense start was remade or moved since: refused before training without method.epochs, and
    with it, details() (after training) was a traceback (hostile round 19, r19a F2)."""
    src, _ = source
    dense = src.parent / "dense"
    if change == "remade":
        torch.save({"weight": torch.ones(2)}, dense / "dense.pt")  # another dense run made there since
        res = json.loads((src / "results.json").read_text())
        (src / "results.json").write_text(json.dumps({**res, "dense_start": "digest of the weights it started from"}))
    else:
        shutil.rmtree(dense)
    with pytest.raises(ValueError, match="give method.epochs|no run to read its epochs from"):
        Scratch.create(architecture_from=str(src)).starting_from(False)
    details = Scratch.create(architecture_from=str(src), epochs=5).starting_from(False).details()
    assert details["epochs_rule"] == "method.epochs" and details["epochs"] == 5
    assert details["source_epochs"] == {"dense_start": None, "after_start": None}


@pytest.mark.parametrize(
    "keys, message",
    [({"budget_rule": "scratch_b", "epochs": 5}, "method.budget_rule=scratch_b and method.epochs=5: give one"),
     ({"source": "svd/spatial"}, r"method.source=svd/spatial: it is worked out from method.architecture_from "
                                 r"\(l1_filter\); leave it out")],
)  # fmt: skip
def test_a_key_scratch_works_out_itself_is_refused_not_dropped(keys, message, source):
    """The run trained 5 epochs labelled budget_rule=scratch_b; a source of one's own became the worked-out one,
    without a word (hostile round 20, r20a F1)."""
    with pytest.raises(ValueError, match=message):
        Scratch.create(architecture_from=str(source[0]), **keys).starting_from(False)
    given = Scratch.create(architecture_from=str(source[0]), epochs=5).starting_from(False)
    assert given.config.budget_rule is None and given.details()["epochs_rule"] == "method.epochs"


def test_a_file_of_the_source_run_is_named_as_a_file(source):
    with pytest.raises(ValueError, match=r"results.json is a file: give the run's directory \("):
        Scratch.create(architecture_from=str(source[0] / "results.json"))


def test_without_a_source_it_is_dense_training(tiny_cfg):
    method = Scratch()
    assert method.starting_from(True) is method and method.train_epochs is None and method.details() == {}
    net = resnet8()
    assert method.prepare(net, SHAPE) is net


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: None, "holds no run"),
        (lambda d: write_run(d, status="failed"), "is not a completed run"),
        (lambda d: write_run(d), "saved no deployed.json .*rerun it with save_model=true"),
        (lambda d: (d.mkdir(), (d / "results.json").write_text("{")), "cannot be read"),
    ],
    ids=["missing", "failed", "no-architecture", "corrupt"],
)
def test_a_bad_source_is_one_line_before_any_work(setup, message, tmp_path, compose_cfg):
    setup(tmp_path / "src")
    with pytest.raises(ValueError, match=f"^method.architecture_from: .*{message}"):
        ScratchConfig(architecture_from=str(tmp_path / "src"))
    with pytest.raises(InputError, match=message) as err:
        preflight.plan(compose_cfg(["+debug=tiny", "method=scratch", f"method.architecture_from={tmp_path / 'src'}"]))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="method.budget_rule must be scratch_e or scratch_b"):
        ScratchConfig(budget_rule="scratch_x")


def test_another_model_or_input_or_init_from_is_refused(source):
    method = Scratch.create(architecture_from=str(source[0]))
    with pytest.raises(ValueError, match="is of another model or dataset: its dense model has"):
        method.check(build_model("cifar_resnet", "resnet20", 10, 3), SHAPE)
    with pytest.raises(ValueError, match=r"was made on input \[1, 3, 16, 16\], this run's is \[1, 3, 32, 32\]"):
        method.check(resnet8(), (1, 3, 32, 32))
    with pytest.raises(ValueError, match="init_from would be discarded"):
        method.starting_from(True)
    method.check(resnet8(), SHAPE)


def test_prepare_rebuilds_the_architecture_with_fresh_weights(source):
    src, res = source
    net = Scratch.create(architecture_from=str(src)).prepare(resnet8(), SHAPE)
    deployed = load_deployed(src)
    assert analyze_macs(net, SHAPE).macs == res["macs"] and count_params(net) == count_params(deployed)
    theirs = deployed.state_dict()
    assert net.state_dict().keys() == theirs.keys()
    assert not any(torch.equal(v, theirs[k]) for k, v in net.state_dict().items() if k.endswith("conv1.weight"))
    assert all(m.running_var.eq(1).all() for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))


@pytest.mark.slow
def test_scratch_trains_the_deployed_architecture_of_a_low_rank_and_a_pruned_run(tmp_path, tiny_cfg):
    """Scratch-B of a spatial SVD-training run, Scratch-E of an L1-norm run from a dense start."""
    svd = SVDTraining.create(regularizer=SparsityRegularizer("hoyer", 0.01), decomposition="spatial", energy=0.3,
                             finetune_epochs=1)  # fmt: skip
    low = run_experiment(tiny_cfg(save_model=True), svd, tmp_path / "svd")
    run_experiment(tiny_cfg(save_model=False, trainer={"epochs": 2}), Dense(), tmp_path / "dense")
    cfg = tiny_cfg(save_model=True, init_from=str(tmp_path / "dense"))
    l1 = run_experiment(cfg, L1FilterPruning.create(speedup=1.5, finetune_epochs=1), tmp_path / "l1")
    cases = [(low, "svd", "scratch_b", int(2 * low["speedup"] + 0.5)), (l1, "l1", "scratch_e", 2 + 1)]
    for source, name, rule, epochs in cases:
        method = Scratch.create(architecture_from=str(tmp_path / name), budget_rule=rule)
        res = run_experiment(tiny_cfg(save_model=True), method, tmp_path / f"scratch_{name}")
        assert res["status"] == "completed" and res["method"] == "scratch"
        assert (res["macs"], res["params"]) == (source["macs"], source["params"])
        assert res["config"]["method"]["epochs"] == epochs and res["epochs_after_start"] == epochs
        assert [h["stage"] for h in res["history"]] == ["train"] * epochs
        d = res["method_details"]
        assert (d["source"], d["source_method"], d["epochs_rule"], d["epochs"]) == (
            str(tmp_path / name), source["method"], rule, epochs
        )  # fmt: skip
        ours, theirs = load_deployed(tmp_path / f"scratch_{name}"), load_deployed(tmp_path / name)
        assert [(n, type(m)) for n, m in ours.named_modules()] == [(n, type(m)) for n, m in theirs.named_modules()]
        assert not torch.equal(ours.state_dict()["fc.weight"], theirs.state_dict()["fc.weight"])
    assert cases[1][0]["config"]["method"]["speedup"] == 1.5
