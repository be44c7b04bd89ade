"""Fair comparisons by construction: one budget after one dense start (recorded with the start's
content hash), a validation split held out of training (never the test set) that selection uses,
and a starting checkpoint that SVD training never silently discards."""

from types import SimpleNamespace

import pytest
import torch
from conftest import tensors_digest

from svdbench import app
from svdbench.config import DatasetConfig
from svdbench.data import VAL_SEED, hold_out_validation, load_dataset, val_size
from svdbench.data.splits import TensorSplits
from svdbench.errors import DatasetError, InputError
from svdbench.methods import Dense, L1FilterPruning, SVDTraining
from svdbench.pipeline import run_experiment
from svdbench.plan import configure
from svdbench.results import best_epoch


def numbered(n: int) -> TensorSplits:
    """Images whose every pixel is the image's index: which image went where can be read back."""
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 2) / n
    return TensorSplits(train=(x, torch.arange(n) % 2), test=(x[:10] + 2.0, torch.zeros(10, dtype=torch.long)),
                        num_classes=2, mean=(0.0,), std=(1.0,))  # fmt: skip


def ids(split) -> set[int]:
    return {round(float(v) * 100) for v in split[0][:, 0, 0, 0]}


def test_validation_is_held_out_of_training_with_a_fixed_draw():
    s = hold_out_validation(numbered(100), 20)
    train, val = ids(s.train), ids(s.val)
    assert len(val) == 20 and len(train) == 80 and not train & val and train | val == set(range(100))
    assert ids(hold_out_validation(numbered(100), 20).val) == val  # the same images every time, every seed
    expected = torch.randperm(100, generator=torch.Generator().manual_seed(VAL_SEED))[:20]
    assert val == set(expected.tolist())
    assert torch.equal(s.test[0], numbered(100).test[0])  # the test split is never touched
    assert hold_out_validation(numbered(100), 0).val is None
    own = hold_out_validation(s, 5)  # a dataset with its own validation split keeps it
    assert ids(own.val) == val
    with pytest.raises(DatasetError, match="dataset.val_size=100 leaves no training images"):
        hold_out_validation(numbered(100), 100)


def test_fashion_mnist_holds_out_5000_by_default():
    cfg = DatasetConfig(name="fashion_mnist", download=False)
    b = load_dataset(cfg, batch_size=256, eval_batch_size=1000)
    assert (b.num_train, b.num_val, b.num_test) == (55_000, 5_000, 10_000)
    seen = set()
    for split in (b.train, b.val):  # no image is in both (the raw uint8 bytes as a key)
        keys = {img.numpy().tobytes() for img in split.images}
        assert not keys & seen
        seen |= keys
    off = load_dataset(DatasetConfig(name="fashion_mnist", download=False, val_size=0), batch_size=256,
                       eval_batch_size=1000)  # fmt: skip
    assert (off.num_train, off.val) == (60_000, None)


@pytest.mark.parametrize(
    "name, subset, held_out",
    [("fashion_mnist", 2000, 182), ("fashion_mnist", 10000, 910), ("fashion_mnist", 55000, 5000),
     ("fashion_mnist", 59000, 5000), ("cifar10", 2000, 223), ("cifar100", 45000, 5000), ("synthetic", 100, 0)],
)  # fmt: skip
def test_the_default_validation_split_scales_with_train_subset(name, subset, held_out):
    """ceil(N x 5000 / (T - 5000)): the proportion of the full split (1 in 11 of Fashion-MNIST's 60000, 1 in 9 of
    CIFAR's 50000), at most the default; an explicit val_size is kept as it is."""
    assert val_size(DatasetConfig(name=name, train_subset=subset)) == held_out
    assert val_size(DatasetConfig(name=name, train_subset=subset, val_size=5000)) == 5000


def test_a_train_subset_of_fashion_mnist_evaluates_a_validation_split_in_proportion():
    b = load_dataset(DatasetConfig(name="fashion_mnist", download=False, train_subset=2000), batch_size=256,
                     eval_batch_size=1000)  # fmt: skip
    assert (b.num_train, b.num_val, b.num_test) == (2000, 182, 10_000)
    full = load_dataset(DatasetConfig(name="fashion_mnist", download=False), batch_size=256, eval_batch_size=1000)
    held = {img.numpy().tobytes() for img in full.val.images}  # a part of the full run's validation images
    assert {img.numpy().tobytes() for img in b.val.images} <= held


@pytest.mark.slow
def test_svd_from_a_dense_checkpoint_computes_the_same_function(tmp_path, tiny_cfg):
    """No training, energy 0, no BatchNorm recalibration: the deployed model is the checkpoint."""
    dense = run_experiment(tiny_cfg(save_model=False), Dense(), tmp_path / "dense")
    cfg = tiny_cfg(init_from=str(tmp_path / "dense"), save_model=False,
                   trainer={"epochs": 0, "bn_recalibration_batches": 0})  # fmt: skip
    svd = run_experiment(cfg, SVDTraining.create(energy=0.0, finetune_epochs=0), tmp_path / "svd")
    assert svd["config"]["method"]["init"] == "svd"  # auto, from the trained weights
    assert svd["top1"] == dense["top1"] == svd["stage_top1"]["dense"]


def test_random_init_from_a_checkpoint_is_refused_naming_the_setting(tmp_path, tiny_cfg):
    cfg = tiny_cfg(init_from=str(tmp_path / "dense"))
    with pytest.raises(InputError, match=r"method.init=random would discard the trained weights of init_from"):
        configure(cfg, SVDTraining.create(init="random"))
    assert configure(tiny_cfg(), SVDTraining.create()).config.init == "random"  # no checkpoint: the paper's


@pytest.mark.slow
def test_one_budget_after_one_dense_start(tmp_path, tiny_cfg):
    dense_dir = tmp_path / "dense"
    run_experiment(tiny_cfg(save_model=False), Dense(), dense_dir)
    digest = tensors_digest(dense_dir / "dense.pt")
    cfg = tiny_cfg(init_from=str(dense_dir), save_model=False, trainer={"epochs": 1, "budget": 2})
    svd = run_experiment(cfg, SVDTraining.create(energy=0.3), tmp_path / "svd")
    l1 = run_experiment(cfg, L1FilterPruning.create(ratio=0.5), tmp_path / "l1")
    assert [h["stage"] for h in svd["history"]] == ["train", "finetune"]  # 1 + 1
    assert [h["stage"] for h in l1["history"]] == ["finetune", "finetune"]  # 0 + 2: it does not train
    for res in (svd, l1):
        assert res["epochs_after_start"] == 2 and res["dense_start"] == digest
        assert res["config"]["trainer"]["budget"] == 2
    assert (svd["config"]["method"]["finetune_epochs"], l1["config"]["method"]["finetune_epochs"]) == (1, 2)
    with pytest.raises(InputError, match=r"trainer.budget=1 is less than the 2 training epochs"):
        configure(tiny_cfg(trainer={"epochs": 2, "budget": 1}), SVDTraining())


@pytest.mark.slow
def test_validation_is_recorded_and_selects(tmp_path, tiny_cfg):
    cfg = tiny_cfg(dataset={"val_size": 32}, save_model=False)
    res = run_experiment(cfg, Dense(), tmp_path / "run")
    assert res["samples"] == {"train": 96, "val": 32, "test": 64} and res["config"]["dataset"]["val_size"] == 32
    assert 0 <= res["val_top1"] <= 100 and all("val_top1" in h for h in res["history"])
    hc = SimpleNamespace(sweeper={"_target_": "BasicSweeper"})
    assert app.objective(hc, res) == res["val_top1"]
    assert app.objective(hc, {**res, "val_top1": None}) == res["top1"]


def test_the_best_epoch_of_the_last_stage_is_recorded_beside_the_final_one():
    """As the SVD authors' ImageNet code reports it (the best fine-tuning epoch on the evaluation set): for
    reproduction tables only; the report and the fronts use the final epoch."""
    history = [{"stage": "train", "epoch": 1, "test_top1": 95.0}]
    history += [{"stage": "finetune", "epoch": k + 1, "test_top1": v} for k, v in enumerate((80.0, 82.5, 82.5, 81.0))]
    assert best_epoch(history) == {"stage": "finetune", "epoch": 2, "top1": 82.5}  # the first of equals
    assert best_epoch([]) is None and best_epoch([{"stage": "train", "epoch": 1, "test_top1": None}]) is None


@pytest.mark.slow
def test_a_run_records_its_best_epoch_and_reports_its_final_one(tmp_path, tiny_cfg):
    res = run_experiment(tiny_cfg(trainer={"epochs": 2}, save_model=False), Dense(), tmp_path / "run")
    best = res["top1_best_epoch"]
    finals = [h["test_top1"] for h in res["history"] if h["stage"] == best["stage"]]
    assert best["top1"] == max(finals) and res["top1"] == res["history"][-1]["test_top1"]


@pytest.mark.slow
def test_no_best_epoch_is_recorded_for_a_model_compressed_after_its_last_epoch(tmp_path, tiny_cfg):
    """Pruned after training and not fine-tuned: no epoch of the deployed model was evaluated (the training's best
    is the uncompressed model's, not a figure of this run's result)."""
    res = run_experiment(tiny_cfg(save_model=False), L1FilterPruning.create(speedup=1.5, finetune_epochs=0),
                         tmp_path / "run")  # fmt: skip
    assert res["status"] == "completed" and "top1_best_epoch" not in res
