"""SVD training's orthogonality-only stage (``method.orthogonal_epochs``), the official code's first
training: no sparsity term, its own optimiser and schedule, its own record, inside the budget, and
resumable like every stage."""

import json

import pytest
import torch

from svdbench.errors import InputError
from svdbench.methods import SVDTraining
from svdbench.pipeline import run_experiment
from svdbench.plan import configure
from svdbench.regularizers import SparsityRegularizer, orthogonality_loss


def svd(**settings) -> SVDTraining:
    return SVDTraining.create(regularizer=SparsityRegularizer("hoyer", 0.5), **{"finetune_epochs": 1, **settings})


def test_the_orthogonal_stage_has_no_sparsity_term():
    torch.manual_seed(0)
    method = svd(orthogonal_epochs=1, orthogonality=0.0)
    model = method.prepare(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 4, 3)), (1, 3, 8, 8))
    assert method.regularization(model, "orthogonal") is None  # lambda_o = 0 and no sparsity: nothing at all
    assert method.regularization(model, "train").item() > 0  # the same method adds Hoyer in "train"
    with torch.no_grad():  # U and V start orthonormal: move them off so the orthogonality term is not 0
        for param in model.parameters():
            param.add_(0.3 * torch.randn_like(param))
    with_o = svd(orthogonal_epochs=1, orthogonality=2.0)
    ortho = orthogonality_loss(model)
    assert ortho.item() > 0.01 and torch.allclose(with_o.regularization(model, "orthogonal"), 2.0 * ortho)
    assert method.stages_before_train() == [("orthogonal", 1)] and svd().stages_before_train() == []
    with pytest.raises(ValueError, match="method.orthogonal_epochs"):
        svd(orthogonal_epochs=-1)


def test_the_stage_is_recorded_and_counted_in_the_budget(tmp_path, tiny_cfg):
    cfg = tiny_cfg(checkpoint=True)
    res = run_experiment(cfg, svd(orthogonal_epochs=2, orthogonality=0.0), tmp_path)
    stages = [h["stage"] for h in res["history"]]
    assert stages == ["orthogonal", "orthogonal", "train", "finetune"]
    ortho = [h for h in res["history"] if h["stage"] == "orthogonal"]
    assert all(h["reg_loss"] == 0.0 for h in ortho)  # no sparsity (and lambda_o = 0 here)
    assert [h["reg_loss"] > 0 for h in res["history"] if h["stage"] == "train"] == [True]
    assert list(res["stage_top1"])[:2] == ["orthogonal", "train"] and "orthogonal" in res["wall_time"]
    assert res["epochs_after_start"] == 2 + 1 + 1 and res["config"]["method"]["orthogonal_epochs"] == 2
    # one budget: the orthogonal epochs are spent after the start, so they are taken from fine-tuning
    budget = tiny_cfg(trainer={"budget": 5})
    assert configure(budget, svd(orthogonal_epochs=2)).finetune_epochs == 5 - 2 - 1
    with pytest.raises(InputError, match="trainer.budget=2 is less than the 3 training epochs"):
        configure(tiny_cfg(trainer={"budget": 2}), svd(orthogonal_epochs=2))


# about 1 s per epoch on 2 cores: long enough to be cut inside a stage
ORTHO = [
    "dataset=synthetic", "dataset.shape=[3,24,24]", "dataset.num_train=768", "dataset.num_test=64", "model=resnet8",
    "method.orthogonal_epochs=2", "trainer.epochs=2", "trainer.batch_size=16", "trainer.progress=false",
    "trainer.bn_recalibration_batches=2", "method.finetune_epochs=1", "save_model=false", "measure.latency=false",
]  # fmt: skip
KEEP = ("status", "top1", "macs", "params", "ranks", "stage_top1", "history", "epochs_after_start")


def finish(run_py, out) -> dict:
    proc = run_py(*ORTHO, f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    return {k: res[k] for k in KEEP}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, run_py) -> dict:
    ref = finish(run_py, tmp_path_factory.mktemp("ortho") / "ref")
    assert [h["stage"] for h in ref["history"]].count("orthogonal") == 2
    return ref


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["orthogonal", "train"])
def test_sigkill_in_or_after_the_orthogonal_stage_then_rerun_equals_uninterrupted(
    tmp_path, stage, reference, run_py, sigkill_in_stage
):  # fmt: skip
    out = tmp_path / "cut"
    sigkill_in_stage(ORTHO, out, stage)
    if stage == "train":
        assert (out / "stage_orthogonal.pt").is_file()  # the finished stage is restored, not trained again
    assert finish(run_py, out) == reference
