"""Vision transformers (timm): model.kwargs reach timm.create_model, the low-rank methods act on a ViT's
Linear layers (patch embedding and classifier dense by default), filter pruning removes MLP neurons, and
each deployed model computes what the compressed one does, in PyTorch and in onnxruntime."""

import json

import pytest
import torch
from torch import nn

from svdbench import lowrank
from svdbench.errors import InputError
from svdbench.macs import analyze_macs
from svdbench.methods import TRP, FPGMPruning, L1FilterPruning, PosthocSVD, SoftFilterPruning, SVDTraining
from svdbench.models import build_model, roles
from svdbench.onnx_export import export_onnx, unavailable

SHAPE = (1, 1, 28, 28)
KW = {"img_size": 28, "patch_size": 4, "embed_dim": 32, "depth": 2, "num_heads": 2, "mlp_ratio": 4.0}
LINEARS = [f"blocks.{b}.{n}" for b in range(2) for n in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")]


def vit(**kw) -> nn.Module:
    torch.manual_seed(0)
    return build_model("timm", "vit_tiny_patch16_224", 10, 1, kwargs={**KW, **kw})


def test_timm_takes_model_kwargs_and_other_families_refuse_them(compose_cfg, build):
    net = vit()
    assert net.patch_embed.proj.kernel_size == (4, 4) and len(net.blocks) == 2 and net.blocks[0].attn.num_heads == 2
    assert net(torch.zeros(SHAPE)).shape == (1, 10) and roles.is_vision_transformer(net)
    with pytest.raises(InputError, match=r"^model.kwargs \(depth\) is not read by model.family=cifar_resnet"):
        build(compose_cfg(["model=resnet8", "+model.kwargs={depth:3}"]))
    with pytest.raises(InputError, match=r"^model.kwargs: timm model 'vit_tiny_patch16_224' does not take it"):
        build_model("timm", "vit_tiny_patch16_224", 10, 1, kwargs={"wings": 2})
    for key in ("num_classes", "in_chans", "pretrained"):
        with pytest.raises(InputError, match=rf"^model.kwargs.{key}: svdbench sets it"):
            build_model("timm", "vit_tiny_patch16_224", 10, 1, kwargs={key: 3})


@pytest.mark.parametrize("method", [SVDTraining, PosthocSVD, TRP])
def test_low_rank_methods_decompose_the_vits_linear_layers(method):
    settings = {"init": "svd"} if method is SVDTraining else {"period": 1} if method is TRP else {}
    m = method.create(decompose_linear=True, energy=0.2, **settings)
    net = vit()
    m.check(net, SHAPE)
    net = m.prepare(net, SHAPE)
    if method is TRP:
        assert m.layers == LINEARS  # patch embedding and classifier dense
        m.before_forward(net, 0, "train")
    m.compress(net)
    assert sorted(lowrank.ranks(net)) == sorted(LINEARS)
    assert isinstance(net.patch_embed.proj, nn.Conv2d) and isinstance(net.head, nn.Linear)
    deployed = m.export(net)
    x = torch.randn(3, *SHAPE[1:])
    with torch.no_grad():
        assert torch.allclose(net.eval()(x), deployed.eval()(x), atol=1e-5)  # eval mode, fp32
    assert analyze_macs(deployed, SHAPE).macs < analyze_macs(vit(), SHAPE).macs


def test_embedding_and_head_decomposed_when_asked_and_a_vit_needs_decompose_linear(caplog):
    net = PosthocSVD.create(decompose_linear=True, embedding_head_dense=False).prepare(vit(), SHAPE)
    assert {"patch_embed.proj", "head"} <= set(lowrank.ranks(net))
    with pytest.raises(ValueError, match="layers are Linear: set method.decompose_linear=true"):
        SVDTraining.create().check(vit(), SHAPE)
    TRP.create(decompose_linear=True, decomposition="spatial").check(vit(), SHAPE)
    assert "method.decomposition=spatial does not apply to Linear layers" in caplog.text


@pytest.mark.parametrize("method", [L1FilterPruning, SoftFilterPruning, FPGMPruning])
def test_filter_pruning_removes_mlp_neurons_to_the_target_counting_attention(method):
    m = method.create(speedup=1.3)
    net = vit()
    dense = analyze_macs(net, SHAPE).macs
    m.check(net, SHAPE)
    net = m.prepare(net, SHAPE)
    assert sorted(m.groups) == ["blocks.0.mlp.fc1", "blocks.1.mlp.fc1"]  # heads and the residual stream whole
    if m.soft:
        m.on_epoch_end(net, 0, "train")
    m.compress(net)
    deployed = m.export(net)
    assert net.blocks[0].mlp.fc1.out_features < 128 and net.blocks[0].attn.qkv.out_features == 96
    reached = dense / analyze_macs(deployed, SHAPE).macs  # fvcore, attention products included
    assert reached >= 1.3 and reached == pytest.approx(m.speedup_planned)
    x = torch.randn(2, *SHAPE[1:])
    with torch.no_grad():
        assert torch.allclose(net.eval()(x), deployed.eval()(x))
    with pytest.raises(ValueError, match=r"out of reach.*left whole: head, patch_embed.proj, blocks.0.attn.qkv"):
        method.create(speedup=5).check(vit(), SHAPE)


@pytest.mark.skipif(unavailable() is not None, reason="onnx/onnxruntime not installed")
def test_a_deployed_vit_exports_to_onnx_and_computes_the_same(tmp_path):
    m = SVDTraining.create(decompose_linear=True, init="svd", energy=0.2)
    net = m.prepare(vit(), SHAPE)
    m.compress(net)
    exp = export_onnx(m.export(net), SHAPE[1:], tmp_path / "vit.onnx")  # checked against PyTorch at batch 1 and 3
    assert exp.max_abs_diff <= exp.tolerance < 1e-2


@pytest.mark.slow
def test_every_method_runs_a_vit_end_to_end_and_the_report_puts_them_on_one_front(tmp_path, run_py):
    """model=vit_fmnist (its width and depth cut down) on synthetic 1x28x28 data: dense, then every low-rank method
    and L1-norm from it; complete results.json files on one report front."""
    small = ["model.kwargs.embed_dim=32", "model.kwargs.depth=1"]
    data = ["dataset=synthetic", "dataset.shape=[1,28,28]", "dataset.num_train=64", "dataset.num_test=32"]
    base = ["model=vit_fmnist", *small, *data, "trainer.epochs=1", "trainer.batch_size=32", "trainer.device=cpu"]
    dense = tmp_path / "dense"
    assert run_py(*base, "method=dense", f"hydra.run.dir={dense}").returncode == 0
    arms = {
        "svd": ["method=svd", "method.decompose_linear=true", "method.speedup=1.2"],
        "posthoc": ["method=svd_posthoc", "method.decompose_linear=true", "method.speedup=1.2"],
        "trp": ["method=trp", "method.decompose_linear=true", "method.speedup=1.2"],
        "l1": ["method=l1_filter", "method.speedup=1.2"],
    }
    for name, args in arms.items():
        proc = run_py(
            *base, *args, "method.finetune_epochs=1", f"init_from={dense}", f"hydra.run.dir={tmp_path / name}"
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        rec = json.loads((tmp_path / name / "results.json").read_text())
        assert rec["status"] == "completed" and rec["speedup"] >= 1.2
        assert rec["mac_counter"]["by_operator"].get("scaled_dot_product_attention", 0) > 0
    from svdbench.report import build_report

    rep = build_report([tmp_path], tmp_path / "report")
    assert {r.method for r in rep.rows} == {"dense", "svd", "svd_posthoc", "trp", "l1_filter"}
    assert len({r.task for r in rep.rows}) == 1  # one front: the same task, the same dense MACs
