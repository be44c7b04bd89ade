"""Round 31 of the hostile pass, and the items round 30 left (the W&B records of a replaced or resumed run are in
tests/test_tracked_runs.py).

- r30a F5 (left then): ``--plan`` of a sweep estimated the jobs it keeps complete; they are named, and count no
  time.
- r30a F4 (left then): ``trainer.budget`` replaced a ``method.finetune_epochs`` set by you or a preset without a
  word; it is still replaced (the budget is the fair comparison), with a warning naming both values.
- r29a (left then): ``model.kwargs.embed_dim=0`` (timm) was "config error: 0.0 cannot be raised to a negative power",
  naming neither the model nor a key; a size timm cannot take names the model and the kwargs given."""

import logging

import pytest
from conftest import refused

from svdbench.methods import L1FilterPruning, SVDTraining
from svdbench.plan import configure


def test_a_budget_says_when_it_replaces_finetune_epochs_that_were_set(tiny_cfg, caplog):
    cfg = tiny_cfg(trainer={"epochs": 1, "budget": 4})
    with caplog.at_level(logging.WARNING, logger="svdbench"):
        method = configure(cfg, SVDTraining.create(finetune_epochs=7))
    assert method.finetune_epochs == 3
    assert "trainer.budget=4 replaces method.finetune_epochs=7 with 3" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="svdbench"):  # the schema's default: nothing was set to replace
        assert configure(cfg, L1FilterPruning.create(ratio=0.5)).finetune_epochs == 4
        assert configure(cfg, SVDTraining.create(finetune_epochs=3)).finetune_epochs == 3  # already the budget's
    assert "replaces" not in caplog.text


@pytest.mark.slow
def test_plan_of_a_sweep_counts_no_time_for_the_jobs_it_keeps(tmp_path, run_py, tiny):
    """r30a F5 (left then): ``--plan`` of a sweep whose jobs were complete estimated their training again."""
    sweep = tmp_path / "sweep"
    args = ["-m", *tiny(), f"hydra.sweep.dir={sweep}"]
    assert run_py(*args, "trainer.lr=0.01").returncode == 0
    plan = run_py(*args, "trainer.lr=0.01,0.02", "--plan")
    assert plan.returncode == 0, plan.stderr
    lines = plan.stdout.splitlines()
    kept = next(ln for ln in lines if ln.startswith("  job 0 "))
    assert f"{sweep / '0'} already holds a completed run of this config (kept; no time)" in kept
    later = lines[lines.index(next(ln for ln in lines if ln.startswith("  job 1 "))) + 1]
    assert later.strip().startswith("time: about ")
    total = next(ln for ln in lines if ln.startswith("in all: about "))
    assert total.removeprefix("in all: ") == later.strip().removeprefix("time: ").split(" on ")[0]
    assert not (sweep / "1").exists()


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
@pytest.mark.parametrize(
    ("key", "reason"),
    [("model.kwargs.embed_dim=0", "cannot be raised to a negative power"),
     ("model.kwargs.num_heads=3", "dim should be divisible by num_heads")],
)  # fmt: skip
def test_a_size_timm_cannot_take_names_the_model_and_its_kwargs(capsys, tiny, key, reason):
    err = refused(capsys, *tiny(), "model=vit_fmnist", key)
    assert err.startswith("config error: timm model 'vit_tiny_patch16_224' cannot be built here with ")
    assert key in err and reason in err
