"""Bad input found when a run starts (data, model, starting point, pruning target): one clear line,
exit code 2 and no results.json. Command-line mistakes found before Hydra starts are the
CONFIG cases of tests/test_attacks.py."""

import pytest
import torch

from svdbench import preflight
from svdbench.errors import InputError
from svdbench.models import cifar_resnet
from svdbench.pipeline import run_experiment

TINY = ["dataset=synthetic", "dataset.shape=[3,16,16]", "dataset.num_train=64", "dataset.num_test=32",
        "trainer.epochs=1", "trainer.progress=false"]  # fmt: skip


@pytest.fixture(scope="module")
def resnet20_checkpoint(tmp_path_factory):
    d = tmp_path_factory.mktemp("r20")
    torch.save(cifar_resnet(20, 10, 3).state_dict(), d / "dense.pt")
    return d


CASES = [
    # (overrides, expected fragment)
    (["dataset=cifar10", "dataset.root=/nonexistent", "dataset.download=false"], "cifar10 not found"),
    (["dataset=fashion_mnist", "dataset.root=/nonexistent", "dataset.download=false"], "Fashion-MNIST files not found"),
    (["dataset=imagenet", "dataset.root=/nonexistent"], "imagenet needs dataset.root"),
    (["model=timm", "model.name=not_a_model"], "model.name=not_a_model is not a timm model"),
    (["model=timm", "model.name=vit_tiny_patch16_224"], "cannot take input (3, 16, 16)"),
    (["model.name=resnet9"], "model.name=resnet9 is not a cifar_resnet model; choose from resnet8"),
    (["model._target_=nowhere.net"], "model._target_: cannot import 'nowhere.net'"),
    (["dataset.name=mine", "dataset._target_=nowhere.data"], "dataset._target_: cannot import 'nowhere.data'"),
    (["init_from=/nonexistent/run"], "init_from: no dense checkpoint"),
    (["method=sfp", "method.speedup=50"], "method.speedup=50.0 is out of reach"),
    (["method=svd", "method.speedup=50"], "method.speedup=50.0 is out of reach: at most"),
    (["method=svd_posthoc", "method.speedups=[2,50]"], "method.speedups=[2.0, 50.0] is out of reach: at most"),
    (["method=trp", "method.speedup=50"], "x (every layer at rank 1)"),
    (["init_from=R20"], "holds another architecture"),
]
#: the same through run.py, end to end: the one line on the console and exit code 2
THROUGH_RUN_PY = {
    "init_from=/nonexistent/run",
    "model.name=resnet9",
    "method=sfp method.speedup=50",
    "method=svd method.speedup=50",
    "method=trp method.speedup=50",
}


def ids(case):
    return " ".join(case[0])


@pytest.mark.parametrize("overrides, fragment", CASES, ids=[ids(c) for c in CASES])
def test_bad_input_is_one_line_and_writes_no_result(tmp_path, compose_cfg, resnet20_checkpoint, overrides, fragment):
    overrides = [o.replace("R20", str(resnet20_checkpoint)) for o in overrides]
    with pytest.raises(InputError) as err:  # when the config is checked (an import) or when the run starts
        plan = preflight.plan(compose_cfg([*TINY, *overrides, "measure.latency=false"]))
        run_experiment(plan.cfg, plan.method, tmp_path / "run")
    assert fragment in str(err.value) and "\n" not in str(err.value)
    assert not list(tmp_path.rglob("results.json")) and not list(tmp_path.rglob("*.pt"))


@pytest.mark.slow
@pytest.mark.parametrize("overrides, fragment", [c for c in CASES if ids(c) in THROUGH_RUN_PY],
                         ids=sorted(THROUGH_RUN_PY, key=[ids(c) for c in CASES].index))  # fmt: skip
def test_bad_input_through_run_py(tmp_path, run_py, overrides, fragment):
    out = tmp_path / "run"
    proc = run_py(*TINY, *overrides, f"hydra.run.dir={out}", timeout=120)
    assert proc.returncode == 2, proc.stdout[-1000:] + proc.stderr[-1000:]
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert fragment in lines[0] and "Traceback" not in lines[0]
    assert not list(tmp_path.rglob("results.json")) and not list(tmp_path.rglob("*.pt"))
