"""Decomposed layers: exact reconstruction, pruning, export and their MACs against docs/method.md 1.1's formulas."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import svdbench
from svdbench import lowrank
from svdbench.lowrank import LowRankConv2d, LowRankLinear, decompose_layer, kept_rank

CONV_CASES = [  # (cin, cout, kernel, stride, padding, dilation)
    (3, 8, 3, 1, 1, 1),
    (4, 6, 3, 2, 1, 1),
    (5, 7, 5, 1, 2, 1),
    (6, 4, 1, 1, 0, 1),
    (3, 5, (3, 5), (2, 1), (1, 2), 1),
    (4, 4, 3, 1, 2, 2),
    (2, 9, 7, 2, 3, 1),
]


@pytest.mark.parametrize("decomposition", ["channel", "spatial"])
@pytest.mark.parametrize("case", CONV_CASES)
def test_full_rank_svd_init_reproduces_conv(decomposition, case):
    cin, cout, k, s, p, d = case
    conv = nn.Conv2d(cin, cout, k, s, p, d, bias=True).double()
    x = torch.randn(2, cin, 13, 11, dtype=torch.double)
    ref = conv(x)
    layer = LowRankConv2d(conv, decomposition, init="svd")
    for mode in ("rebuild", "factors"):
        layer.forward_mode = mode
        torch.testing.assert_close(layer(x), ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(layer.to_factors()(x), ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(layer.to_dense()(x), ref, rtol=1e-9, atol=1e-9)


def test_full_rank_linear_reproduces_dense():
    lin = nn.Linear(12, 5).double()
    x = torch.randn(4, 12, dtype=torch.double)
    layer = LowRankLinear(lin, init="svd")
    assert layer.rank == 5
    for mode in ("rebuild", "factors"):
        layer.forward_mode = mode
        torch.testing.assert_close(layer(x), lin(x))
    torch.testing.assert_close(layer.to_factors()(x), lin(x))


def test_shapes_follow_method_table():
    conv = nn.Conv2d(4, 6, 3)
    ch = LowRankConv2d(conv, "channel")
    assert ch.U.shape == (6, 6) and ch.V.shape == (36, 6) and ch.s.shape == (6,)
    sp = LowRankConv2d(conv, "spatial")  # (Cin*k) x (Cout*k) = 12 x 18
    assert sp.U.shape == (12, 12) and sp.V.shape == (18, 12)


def test_random_init_is_orthonormal_with_kaiming_scale():
    conv = nn.Conv2d(16, 32, 3)
    layer = LowRankConv2d(conv, "channel", init="random")
    assert svdbench.regularizers.orthogonality(layer.U) < 1e-10
    assert svdbench.regularizers.orthogonality(layer.V) < 1e-10
    ref_std = conv.weight.std().item()
    assert 0.7 < layer.weight().std().item() / ref_std < 1.3


def test_grouped_conv_rejected_when_asked_and_left_dense_in_a_model():
    with pytest.raises(ValueError, match="grouped"):
        decompose_layer(nn.Conv2d(4, 4, 3, groups=2))
    with pytest.raises(TypeError, match="only nn.Conv2d and nn.Linear"):
        decompose_layer(nn.BatchNorm2d(4))
    net = nn.Sequential(nn.Conv2d(4, 8, 3, groups=2), nn.Conv2d(8, 8, 3))
    with pytest.warns(UserWarning, match="left dense: 0"):
        svdbench.decompose(net)
    assert isinstance(net[0], nn.Conv2d) and isinstance(net[1], LowRankConv2d)


def test_decompose_skip_and_linear_options():
    net = svdbench.models.cifar_resnet(8, num_classes=10, in_channels=3)
    svdbench.decompose(net, skip=["conv1", "layer3.*"], linear=True)
    names = set(lowrank.lowrank_layers(net))
    assert "conv1" not in names and not any(n.startswith("layer3") for n in names)
    assert {"layer1.0.conv1", "layer2.0.conv2", "fc"} <= names


@pytest.mark.parametrize(
    "s, energy, expected",
    [
        ([4.0, 3.0, 2.0, 1.0], 0.0, 4),  # nothing may go
        ([4.0, 3.0, 2.0, 1.0], 1 / 30, 3),  # 1^2 = 1 <= 30/30*... exactly at the boundary: dropped
        ([4.0, 3.0, 2.0, 1.0], 0.1, 3),  # 1 <= 3; 1+4=5 > 3
        ([4.0, 3.0, 2.0, 1.0], 5 / 30, 2),  # tail 4+1 = 5 <= 5
        ([4.0, 3.0, 2.0, 1.0], 0.99, 1),  # at least rank 1 stays
        ([1.0, -4.0, 2.0, 3.0], 0.1, 3),  # order and sign do not matter
    ],
)
def test_kept_rank_energy(s, energy, expected):
    assert kept_rank(torch.tensor(s), energy=energy) == expected


def test_kept_rank_threshold():
    assert kept_rank(torch.tensor([0.5, 0.04, 0.2, 0.01]), threshold=0.05) == 2
    assert kept_rank(torch.tensor([0.01, 0.02]), threshold=0.05) == 1


def _layer_with_singular_values(values, m=10, n=12):
    conv = nn.Conv2d(n, m, 1, bias=False)
    layer = LowRankConv2d(conv, "channel")
    q1, _ = torch.linalg.qr(torch.randn(m, m))
    q2, _ = torch.linalg.qr(torch.randn(n, m))
    with torch.no_grad():
        layer.U.copy_(q1)
        layer.V.copy_(q2)
        layer.s.copy_(torch.tensor(values))
    return layer


def test_prune_keeps_expected_ranks_and_largest_values():
    net = nn.Sequential(nn.Conv2d(12, 10, 1), nn.Conv2d(12, 10, 1))
    a = _layer_with_singular_values([10, 9, 8, 7, 6, 0.5, 0.4, 0.3, 0.2, 0.1])
    b = _layer_with_singular_values([1, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    net[0], net[1] = a, b
    total_small = sum(v**2 for v in [0.5, 0.4, 0.3, 0.2, 0.1])
    energy = (total_small + 1e-6) / sum(v**2 for v in [10, 9, 8, 7, 6, 0.5, 0.4, 0.3, 0.2, 0.1])
    ranks = svdbench.prune(net, energy=energy)
    assert ranks == {"0": 5, "1": 10}
    assert sorted(a.s.tolist(), reverse=True) == [10, 9, 8, 7, 6]
    assert a.U.shape == (10, 5) and a.V.shape == (12, 5)  # physically shrunk


@pytest.mark.parametrize("rank, full, multiple, expected", [(5, 10, 1, 5), (5, 10, 4, 8), (8, 10, 4, 8),
                                                        (9, 10, 4, 10), (1, 64, 16, 16), (17, 64, 16, 32)])  # fmt: skip
def test_round_rank_rounds_up_to_a_multiple_or_full_rank(rank, full, multiple, expected):
    assert svdbench.lowrank.round_rank(rank, full, multiple) == expected


def test_prune_with_round_to_keeps_the_largest_values_and_the_energy_guarantee():
    net = nn.Sequential(nn.Conv2d(12, 10, 1), nn.Conv2d(12, 10, 1))
    values = [10, 9, 8, 7, 6, 0.5, 0.4, 0.3, 0.2, 0.1]
    net[0], net[1] = _layer_with_singular_values(values), _layer_with_singular_values([1.0] * 10)
    energy = 0.02  # the energy rule alone keeps 5 of the first layer (the 0.5 ... 0.1 tail is < 2 %)
    rec = svdbench.lowrank.prune_recorded(net, energy=energy, round_to=4)
    assert rec.before == {"0": 10, "1": 10} and rec.unrounded == {"0": 5, "1": 10}
    assert rec.after == {"0": 8, "1": 10}  # 5 -> 8; 10 is the full rank, kept whole
    assert sorted(net[0].s.tolist(), reverse=True) == pytest.approx(values[:8])
    with pytest.raises(ValueError, match="round_to must be >= 1"):
        svdbench.lowrank.round_rank(3, 10, 0)


def test_pruned_layer_equals_truncated_svd():
    conv = nn.Conv2d(8, 16, 3, padding=1).double()
    layer = LowRankConv2d(conv, "channel")
    w2d = conv.weight.detach().reshape(16, -1)
    u, s, vh = torch.linalg.svd(w2d, full_matrices=False)
    r = svdbench.lowrank.prune_layer(layer, energy=0.2)
    expected = (u[:, :r] * s[:r]) @ vh[:r]
    torch.testing.assert_close(layer.matrix(), expected)


@pytest.mark.parametrize("decomposition", ["channel", "spatial"])
def test_export_equals_pruned_model_and_is_scriptable(decomposition):
    net = svdbench.models.cifar_resnet(8, num_classes=10, in_channels=3)
    svdbench.decompose(net, decomposition, init="svd", linear=True)
    svdbench.prune(net, energy=0.3)
    net.eval()
    deployed = svdbench.export(net, merge_unprofitable=False).eval()
    assert not lowrank.lowrank_layers(deployed)
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(deployed(x), net(x), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(torch.jit.script(deployed)(x), net(x), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(torch.jit.trace(deployed, x)(x), net(x), rtol=1e-4, atol=1e-5)


def _conv_out(h, k, s, p):
    return (h + 2 * p - k) // s + 1


@pytest.mark.parametrize("decomposition", ["channel", "spatial"])
def test_exported_macs_match_method_formulas(decomposition):
    # one layer at a time so the fvcore count is that layer's alone
    for cin, cout, k, s, p in [(8, 16, 3, 1, 1), (8, 16, 3, 2, 1), (16, 8, 5, 1, 2), (6, 12, 3, 2, 0)]:
        layer = LowRankConv2d(nn.Conv2d(cin, cout, k, s, p), decomposition)
        svdbench.lowrank.prune_layer(layer, energy=0.3)
        r = layer.rank
        h = w = 20
        ho, wo = _conv_out(h, k, s, p), _conv_out(w, k, s, p)
        if decomposition == "channel":
            formula = ho * wo * (k * k * cin * r + r * cout)
        else:  # first conv keeps the input width
            formula = ho * w * k * cin * r + ho * wo * k * r * cout
        deployed = svdbench.export(nn.Sequential(layer), merge_unprofitable=False)
        assert svdbench.count_macs(deployed, (1, cin, h, w)) == formula
        assert layer.deployed_macs((ho, wo), w) == formula


def test_merge_unprofitable_deploys_dense_at_full_rank():
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1))
    svdbench.decompose(net, "channel", init="svd", min_rank=1)
    deployed = svdbench.export(net)  # full rank everywhere: pairs would cost more
    assert isinstance(deployed[0], nn.Conv2d) and isinstance(deployed[1], nn.Conv2d)
    dense_macs = 16 * 16 * (9 * 3 * 16 + 9 * 16 * 16)
    assert svdbench.count_macs(deployed, (1, 3, 16, 16)) == dense_macs
    svdbench.prune(net, energy=0.5)
    pruned = svdbench.export(net)
    assert svdbench.count_macs(pruned, (1, 3, 16, 16)) <= dense_macs


def test_forward_modes_choose_cheaper_and_agree():
    layer = LowRankConv2d(nn.Conv2d(64, 64, 3, padding=1), "channel")
    x = torch.randn(32, 64, 16, 16)
    rebuild, factors = layer._cost(x)
    assert rebuild == 64 * 576 * 64 + 32 * 256 * 9 * 64 * 64  # W rebuild + dense conv
    assert factors == 32 * 256 * (9 * 64 * 64 + 64 * 64)
    assert not layer.use_factors(x)  # full rank: one conv is cheaper
    svdbench.lowrank.prune_layer(layer, energy=0.5)
    layer.s.data[8:] = 0  # make it clearly low rank
    layer.keep(torch.arange(8))
    assert layer.use_factors(x)
    layer.forward_mode = "rebuild"
    a = layer(x)
    layer.forward_mode = "factors"
    torch.testing.assert_close(layer(x), a, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["channel", "spatial", "linear"])
def test_abs_s_layers_compute_with_the_absolute_singular_values(kind):
    """``abs_s`` (method.abs_singular_values): W2d = U diag(|s|) V^T in both forwards and in the
    deployed pair, and d/ds = sign(s) * the gradient of the signed layer at |s|."""
    torch.manual_seed(0)
    dense = nn.Linear(7, 5) if kind == "linear" else nn.Conv2d(3, 6, 3, padding=1)
    x = torch.randn(2, 7) if kind == "linear" else torch.randn(2, 3, 6, 6)
    signed = decompose_layer(dense, "channel" if kind == "linear" else kind)
    with torch.no_grad():
        signed.s[::2] *= -1  # some negative values, as training can make them
    absolute = decompose_layer(dense, "channel" if kind == "linear" else kind)
    absolute.load_state_dict(signed.state_dict())
    absolute.abs_s = True
    expect = (absolute.U * signed.s.detach().abs()) @ absolute.V.T
    assert torch.allclose(absolute.matrix(), expect, atol=1e-6)
    assert not torch.allclose(signed.matrix(), expect, atol=1e-3)
    w = expect if kind == "linear" else absolute.matrix_to_weight(expect)
    ref = F.linear(x, w, dense.bias) if kind == "linear" else F.conv2d(x, w, dense.bias, padding=1)
    for mode in ("rebuild", "factors"):
        absolute.forward_mode = mode
        assert torch.allclose(absolute(x), ref, atol=1e-5), mode
    assert torch.allclose(absolute.to_factors()(x), ref, atol=1e-5)
    assert torch.allclose(absolute.to_dense()(x), ref, atol=1e-5)
    absolute(x).square().sum().backward()
    positive = decompose_layer(dense, "channel" if kind == "linear" else kind)
    positive.load_state_dict({**signed.state_dict(), "s": signed.s.detach().abs()})
    positive(x).square().sum().backward()
    assert torch.allclose(absolute.s.grad, torch.sign(signed.s.detach()) * positive.s.grad, atol=1e-4)


def test_svd_training_sets_abs_s_on_every_layer_it_decomposes():
    net = svdbench.models.cifar_resnet(8, num_classes=10, in_channels=3)
    on = svdbench.methods.SVDTraining.create(abs_singular_values=True).prepare(net, (1, 3, 16, 16))
    assert {m.abs_s for m in lowrank.lowrank_layers(on).values()} == {True}
    net = svdbench.models.cifar_resnet(8, num_classes=10, in_channels=3)
    off = svdbench.methods.SVDTraining.create().prepare(net, (1, 3, 16, 16))
    assert {m.abs_s for m in lowrank.lowrank_layers(off).values()} == {False}
