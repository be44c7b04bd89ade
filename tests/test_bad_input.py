"""Bad input: one clear line, a non-zero exit code and no results.json, for every kind of mistake."""

import pytest
import torch

from svdbench.models import cifar_resnet

TINY = ["dataset=synthetic", "dataset.shape=[3,16,16]", "dataset.num_train=64", "dataset.num_test=32",
        "trainer.epochs=1", "trainer.progress=false"]  # fmt: skip


@pytest.fixture(scope="module")
def resnet20_checkpoint(tmp_path_factory):
    d = tmp_path_factory.mktemp("r20")
    torch.save(cifar_resnet(20, 10, 3).state_dict(), d / "dense.pt")
    return d


CASES = [
    # (overrides, expected fragment)  -- errors found while composing (before Hydra starts)
    (["model=resnet9"], "Could not find 'model/resnet9'"),
    (["method=magic"], "Could not find 'method/magic'"),
    (["regularizer=l3"], "Could not find 'regularizer/l3'"),
    (["method.energy=1.2"], "method.energy must be in [0, 1)"),
    (["regularizer.weight=-0.5"], "regularizer.weight must be >= 0"),
    (["method.finetune_epochs=-1"], "method.finetune_epochs must be >= 0"),
    (["dataset.train_subset=0"], "dataset.train_subset must be positive"),
    (["method=l1_filter", "method.ratio=-0.1"], "method.ratio"),
    # errors found when the run starts (data, model, starting point)
    (["dataset=cifar10", "dataset.root=/nonexistent", "dataset.download=false"], "cifar10 not found"),
    (["dataset=fashion_mnist", "dataset.root=/nonexistent", "dataset.download=false"], "Fashion-MNIST files not found"),
    (["dataset=imagenet", "dataset.root=/nonexistent"], "imagenet needs dataset.root"),
    (["model=timm", "model.name=not_a_model"], "unknown timm model"),
    (["model=timm", "model.name=vit_tiny_patch16_224"], "cannot take input (3, 16, 16)"),
    (["init_from=/nonexistent/run"], "init_from: no dense checkpoint"),
    (["method=sfp", "method.speedup=50"], "method.speedup=50.0 is out of reach"),
    (["init_from=R20"], "holds another architecture"),
]


@pytest.mark.slow
@pytest.mark.parametrize("overrides, fragment", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input(tmp_path, run_py, resnet20_checkpoint, overrides, fragment):
    overrides = [o.replace("R20", str(resnet20_checkpoint)) for o in overrides]
    out = tmp_path / "run"
    proc = run_py(*TINY, *overrides, f"hydra.run.dir={out}", timeout=120)
    assert proc.returncode == 2, proc.stdout[-1000:] + proc.stderr[-1000:]
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert fragment in lines[0] and "Traceback" not in lines[0]
    assert not list(tmp_path.rglob("results.json")) and not list(tmp_path.rglob("*.pt"))
