"""MAC and parameter counts: the literature's ResNet-20 figures and an independent hook counter."""

import torch
from torch import nn

import svdbench
from svdbench.macs import MacModel, analyze_macs, weight_macs
from svdbench.models import build_model, cifar_resnet


def hook_macs(model: nn.Module, shape) -> int:
    """Independent counter: forward hooks on Conv2d/Linear, H*W*k*k*Cin/groups*Cout per sample."""
    total = 0

    def conv_hook(m, inp, out):
        nonlocal total
        kh, kw = m.kernel_size
        total += out.shape[2] * out.shape[3] * kh * kw * (m.in_channels // m.groups) * m.out_channels

    def lin_hook(m, inp, out):
        nonlocal total
        total += m.in_features * m.out_features

    hs = [
        m.register_forward_hook(conv_hook if isinstance(m, nn.Conv2d) else lin_hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(shape))
    for h in hs:
        h.remove()
    return total


def test_resnet20_literature_counts():
    net = cifar_resnet(20, 10, 3)
    c = analyze_macs(net, (1, 3, 32, 32))
    assert c.by_operator["conv"] == 40_550_400
    assert c.macs == 40_550_400 + 640  # conv + linear, per sample
    assert c.macs_total == c.macs + c.by_operator["batch_norm"] + c.by_operator["adaptive_avg_pool2d"]
    assert round(svdbench.count_params(net) / 1e6, 2) == 0.27
    assert c.counter.startswith("fvcore")


def test_batch_size_does_not_change_count():
    net = cifar_resnet(8, 10, 1)
    assert svdbench.count_macs(net, (16, 1, 28, 28)) == svdbench.count_macs(net, (1, 1, 28, 28))


def test_fvcore_agrees_with_hook_counter_on_deployed_models():
    for decomposition in ("channel", "spatial"):
        net = cifar_resnet(8, 10, 3)
        svdbench.decompose(net, decomposition, linear=True)
        svdbench.prune(net, energy=0.2)
        deployed = svdbench.export(net, merge_unprofitable=False)
        assert svdbench.count_macs(deployed, (1, 3, 32, 32)) == hook_macs(deployed, (1, 3, 32, 32))
    tv = build_model("torchvision", "resnet18", 10, 3)
    assert svdbench.count_macs(tv, (1, 3, 64, 64)) == hook_macs(tv, (1, 3, 64, 64))


def test_resnet_depths_and_option_a_shortcut():
    for depth, params in [(32, 0.46), (56, 0.85)]:
        assert round(svdbench.count_params(cifar_resnet(depth)) / 1e6, 2) == params
    net = cifar_resnet(8, 10, 1)
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert sum(1 for _ in net.layer2[0].shortcut.parameters()) == 0


def test_hook_counter_in_macs_equals_fvcore_on_plain_cnns():
    """svdbench.macs.weight_macs and MacModel (module hooks, filter pruning's speed-up search) count
    what fvcore counts for conv + linear on plain CNNs: residual, grouped and strided convs, linears."""
    grouped = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=4),
                            nn.Flatten(), nn.Linear(8 * 5 * 5, 20), nn.Linear(20, 5))  # fmt: skip
    cases = [(cifar_resnet(8, 10, 3), (1, 3, 16, 16)), (build_model("torchvision", "resnet18", 10, 3), (1, 3, 32, 32)),
             (grouped, (4, 3, 14, 14))]  # fmt: skip
    for net, shape in cases:
        assert weight_macs(net, shape) == MacModel(net, shape).macs() == svdbench.count_macs(net, shape) > 0
