"""Data-parallel training (torchrun, DDP on CPU with gloo), sharding of the in-memory batches,
mixed precision on the CPU (bf16 autocast through decomposed layers, fp16 with a GradScaler) and
the validation of the speed options."""

import json
import os
import re
import socket
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import svdbench
from svdbench import app, distributed
from svdbench.checkpoint import load_checkpoint, save_checkpoint
from svdbench.config import DatasetConfig, TrainerConfig
from svdbench.data import EvalShard, LoaderBatches, TensorBatches, load_dataset
from svdbench.deployed import load_deployed
from svdbench.errors import InputError
from svdbench.evaluation import evaluate
from svdbench.methods import SVDTraining
from svdbench.optim import Accel, OptimConfig, resolve_accel
from svdbench.pipeline import run_experiment
from svdbench.regularizers import SparsityRegularizer, orthogonality_loss, sparsity_loss
from svdbench.train import StageHooks, StageOptions, train_stage

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
    ENV.pop(var, None)
LOG_LINE = re.compile(
    r"\] - (\w+) epoch (\d+)/\d+: loss ([\d.]+) \(reg ([\d.]+)\), train top1 ([\d.]+), test top1 ([\d.]+)"
    r"(?:, val top1 [\d.]+)? \([^)]*\)$",
    re.M,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def logged(rec: dict) -> tuple:
    """A history record as run_experiment logs it."""
    return (rec["stage"], str(rec["epoch"]), f"{rec['train_loss']:.4f}", f"{rec['reg_loss']:.4f}",
            f"{rec['train_top1']:.2f}", f"{rec['test_top1']:.2f}")  # fmt: skip


@pytest.mark.slow
def test_torchrun_two_processes_write_one_result(tmp_path, root, tiny):
    for attempt in range(2):
        out = tmp_path / f"try{attempt}" / "run"
        # the deployed model is saved: the test re-evaluates it in one process
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
               "run.py", *tiny("save_model"), f"hydra.run.dir={out}"]  # fmt: skip
        proc = subprocess.run(cmd, cwd=root, env=ENV, capture_output=True, text=True, timeout=240)
        # gloo's worker threads can abort a rank at interpreter exit on a loaded machine, after its results
        # are written ("terminate called without an active exception"): that, and only that, is tried again
        if proc.returncode == 0 or "terminate called without an active exception" not in proc.stderr:
            break
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert [p.relative_to(out.parent).as_posix() for p in out.parent.rglob("results.json")] == ["run/results.json"]
    res = json.loads((out / "results.json").read_text())
    assert res["status"] == "completed" and res["world_size"] == 2 and res["device"] == "cpu"
    assert res["accel"] == {"amp": "off", "channels_last": False, "compile": False, "cudnn_benchmark": False}
    assert [(h["stage"], h["epoch"]) for h in res["history"]] == [("train", 1), ("finetune", 1)]
    assert not (out / "checkpoint.pt").exists() and not list(out.glob("stage_*.pt"))
    # every rank logged the same (all-reduced) numbers as the history rank 0 recorded
    expected = [logged(h) for h in res["history"]]
    for log_file in ("run.log", "run_rank1.log"):
        assert LOG_LINE.findall((out / log_file).read_text()) == expected, log_file
    # the sharded, all-reduced evaluation equals a one-process evaluation of the saved model
    ds = DatasetConfig(name="synthetic", shape=[3, 16, 16], num_train=128, num_test=64)
    data = load_dataset(ds, batch_size=128, eval_batch_size=512)
    deployed = load_deployed(out)
    assert evaluate(deployed, data.test)["top1"] == res["top1"]
    assert svdbench.count_macs(deployed, res["input_shape"]) == res["macs"]


@pytest.mark.parametrize("n, world", [(128, 2), (130, 4), (7, 3), (3, 4)])
def test_shards_are_disjoint_and_cover(n, world):
    def shards(shuffle):
        out = []
        for rank in range(world):
            b = TensorBatches(torch.zeros(n, 1, 2, 2), torch.arange(n), 4, (0.0,), (1.0,), shuffle=shuffle,
                              generator=torch.Generator().manual_seed(3), shard=(rank, world))  # fmt: skip
            labels = [y for _, y in b]
            assert len(labels) == len(b)
            out.append(torch.cat(labels).tolist() if labels else [])  # a rank may get no test sample
        return out

    train = shards(shuffle=True)  # padded: the same count on every rank, as DDP needs
    assert len({len(s) for s in train}) == 1 and len(train[0]) == -(-n // world)
    assert set().union(*map(set, train)) == set(range(n))
    assert sum(map(len, train)) - n == (-n) % world  # only the padding repeats
    if n % world == 0:
        assert all(not set(a) & set(b) for i, a in enumerate(train) for b in train[i + 1 :])
    test = shards(shuffle=False)  # not padded: disjoint and covering exactly
    assert sorted(sum(test, [])) == list(range(n))


def test_shards_are_the_global_batch_split_between_ranks():
    """Rank r's batch i is every world-th sample of the one-process batch i of world times the
    size, with the same crops and flips: the ranks' generators stay in step."""
    world, b, n = 2, 8, 48
    images, labels = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8), torch.arange(n)

    def batches(batch_size, shard):
        return TensorBatches(images, labels, batch_size, (0.5,) * 3, (0.5,) * 3, shuffle=True, pad=2, flip=True,
                             generator=torch.Generator().manual_seed(1), shard=shard)  # fmt: skip

    whole = list(batches(b * world, None))
    per_rank = [list(batches(b, (r, world))) for r in range(world)]
    for i, (x, y) in enumerate(whole):
        for r in range(world):
            assert torch.equal(per_rank[r][i][1], y[r::world]) and torch.equal(per_rank[r][i][0], x[r::world])


def test_loader_path_shards_and_reshuffles():
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    ds = TensorDataset(torch.zeros(10, 1), torch.arange(10))
    assert sorted(i for r in range(3) for i in EvalShard(10, r, 3)) == list(range(10))
    epochs = []
    for r in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=r, shuffle=True, seed=0)
        loader = LoaderBatches(DataLoader(ds, 5, sampler=sampler), "cpu", (r, 2))
        epochs.append([torch.cat([y for _, y in loader]).tolist() for _ in range(2)])
    for e in range(2):
        assert sorted(epochs[0][e] + epochs[1][e]) == list(range(10))
    assert epochs[0][0] != epochs[0][1]  # set_epoch: a new permutation per pass


@pytest.mark.parametrize("decomposition", ["channel", "spatial"])
@pytest.mark.parametrize("mode", ["rebuild", "factors"])
def test_cpu_bf16_autocast_through_decomposed_model(decomposition, mode):
    net = svdbench.decompose(svdbench.models.cifar_resnet(8, num_classes=10, in_channels=3), decomposition, "random")
    for layer in svdbench.lowrank.lowrank_layers(net).values():
        layer.forward_mode = mode
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x)
    assert out.dtype == torch.bfloat16
    loss = F.cross_entropy(out.float(), y) + orthogonality_loss(net) + 0.01 * sparsity_loss(net, kind="hoyer")
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def tiny_data():
    ds = DatasetConfig(name="synthetic", shape=[3, 8, 8], num_train=64, num_test=32)
    return load_dataset(ds, batch_size=16, eval_batch_size=512)


@pytest.mark.parametrize("accel", [Accel(amp="bf16"), Accel(amp="fp16"), Accel(channels_last=True)])
def test_train_stage_with_speed_options_on_cpu(accel):
    data = tiny_data()
    net = svdbench.models.cifar_resnet(8, num_classes=10, in_channels=3)
    method = SVDTraining.create(regularizer=SparsityRegularizer("hoyer", 0.01))
    net = method.prepare(net, (1, 3, 8, 8))
    states = []
    options = StageOptions(epochs=2, optim=OptimConfig("adam", 1e-3), stage="train", progress=False, accel=accel)
    hist = train_stage(net, method, data.train, data.test, options, StageHooks(save=states.append))
    assert len(hist) == 2 and all(torch.isfinite(torch.tensor(h["train_loss"])) for h in hist)
    assert ("scaler" in states[-1]) == (accel.amp == "fp16")
    if accel.amp == "fp16":  # the GradScaler state is checkpointed and restored
        assert states[-1]["scaler"]["scale"] > 0
        options.epochs = 3
        more = train_stage(net, method, data.train, data.test, options, StageHooks(resume=states[0]))
        assert len(more) == 3
    if accel.channels_last:
        convs = [m.weight for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
        assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)


def test_resolve_accel(monkeypatch):
    assert resolve_accel("cpu") == Accel()  # the CPU default changes nothing
    assert resolve_accel("cpu", amp="bf16", channels_last="true") == Accel(amp="bf16", channels_last=True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_accel("cuda") == Accel(amp="bf16", channels_last=True, compile=False, cudnn_benchmark=False)
    assert resolve_accel("cuda", deterministic=False).cudnn_benchmark
    assert not resolve_accel("cuda", channels_last="false", deterministic=False, cudnn_benchmark="false").channels_last
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_accel("cuda").amp == "fp16"
    assert resolve_accel("cuda", amp="off").amp == "off"


def test_speed_options_validate():
    assert TrainerConfig(channels_last="True", cudnn_benchmark="False").channels_last == "true"
    for kw, key in [({"amp": "fp8"}, "trainer.amp"), ({"channels_last": "maybe"}, "trainer.channels_last"),
                    ({"cudnn_benchmark": "true"}, "trainer.cudnn_benchmark")]:  # fmt: skip
        with pytest.raises(ValueError, match=re.escape(key)):
            TrainerConfig(**kw)
    TrainerConfig(cudnn_benchmark="true", deterministic=False)


@pytest.mark.slow
def test_run_py_config_errors(root, tmp_path, tiny):
    proc = subprocess.run([sys.executable, "run.py", "trainer.amp=fp8", f"hydra.run.dir={tmp_path}"], cwd=root,
                          env=ENV, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == "config error: trainer.amp must be auto, off, bf16 or fp16, got 'fp8'"
    env = {**ENV, "WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    proc = subprocess.run([sys.executable, "run.py", *tiny()], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "needs hydra.run.dir=<dir>" in proc.stderr
    assert not list(tmp_path.iterdir())


def test_torchrun_argv(monkeypatch):
    argv = ["run.py", "model=resnet8", "hydra.run.dir=/x"]
    assert app.torchrun_argv(argv) == argv  # one process: unchanged
    monkeypatch.setenv("RANK", "1")  # a stray RANK without WORLD_SIZE: still the one process, which writes
    assert distributed.rank() == 0 and distributed.is_main() and distributed.shard() is None
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="WORLD_SIZE=2 but LOCAL_RANK, MASTER_ADDR, MASTER_PORT not set: launch with"):
        app.torchrun_argv(argv)
    for var, value in (("LOCAL_RANK", "0"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500")):
        monkeypatch.setenv(var, value)
    assert app.torchrun_argv(argv) == argv
    with pytest.raises(ValueError, match="hydra.run.dir"):
        app.torchrun_argv(["run.py", "model=resnet8"])
    with pytest.raises(ValueError, match="multirun"):
        app.torchrun_argv(["run.py", "-m", "model=resnet8,resnet20"])
    monkeypatch.setenv("RANK", "1")
    extra = app.torchrun_argv(argv)[len(argv) :]
    assert extra[0] == "hydra.output_subdir=null" and extra[1].endswith("/${hydra.job.name}_rank1.log")
    assert distributed.shard() == (1, 2) and not distributed.is_main()


@pytest.mark.slow
def test_checkpoint_of_another_process_count_is_refused(tmp_path, tiny_cfg):
    cfg = tiny_cfg(
        dataset={"shape": [3, 8, 8], "num_train": 32, "num_test": 16},
        trainer={"batch_size": 16, "bn_recalibration_batches": 1},
        keep_checkpoints=True,
        save_model=False,
    )
    cfg.measure.latency = False
    run_experiment(cfg, SVDTraining.create(regularizer=SparsityRegularizer()), tmp_path)
    (tmp_path / "results.json").unlink()
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    save_checkpoint({**state, "world_size": 2}, tmp_path / "checkpoint.pt")  # as a 2-process run writes it
    with pytest.raises(InputError, match="written by 2 process"):
        run_experiment(cfg, SVDTraining.create(regularizer=SparsityRegularizer()), tmp_path)
