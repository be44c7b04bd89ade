"""Attention's matrix products in the MAC count: timm's fused attention (``aten::scaled_dot_product_attention``,
which fvcore has no handle for) counts Q K^T and A V exactly like the unfused path's explicit matmuls, and
both equal an independent per-layer formula of the vision transformer."""

import warnings

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from svdbench.macs import MacModel, analyze_macs, weight_macs

SHAPE = (1, 1, 28, 28)
IMG, PATCH, IN_CHANS, CLASSES = 28, 4, 1, 10
# (embed_dim D, depth, num_heads, mlp_ratio)
SIZES = [(64, 2, 2, 4.0), (96, 3, 3, 2.0)]


def vit(embed_dim: int, depth: int, num_heads: int, mlp_ratio: float) -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        img_size=IMG,
        patch_size=PATCH,
        in_chans=IN_CHANS,
        num_classes=CLASSES,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=mlp_ratio,
    )


def attention_modules(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if hasattr(m, "fused_attn")]


def expected(embed_dim: int, depth: int, num_heads: int, mlp_ratio: float) -> dict[str, int]:
    """Per-sample MACs written out by hand: patch embedding conv, per block qkv / attention / proj / fc1 / fc2
    over N = patches + cls tokens, and the classifier head on the cls token."""
    d = embed_dim
    patches = (IMG // PATCH) ** 2
    n = patches + 1
    hidden = int(d * mlp_ratio)
    head_dim = d // num_heads
    patch_embed = patches * PATCH * PATCH * IN_CHANS * d
    qkv = n * d * 3 * d
    proj = n * d * d
    attention = num_heads * n * n * head_dim + num_heads * n * n * head_dim  # Q K^T + A V
    fc1 = n * d * hidden
    fc2 = n * hidden * d
    head = d * CLASSES
    linear = depth * (qkv + proj + fc1 + fc2) + head
    return {
        "conv": patch_embed,
        "linear": linear,
        "attention": depth * attention,
        "total": patch_embed + linear + depth * attention,
    }


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"D{s[0]}-depth{s[1]}-heads{s[2]}")
def test_fused_vit_matches_formula(size):
    model = vit(*size)
    assert attention_modules(model) and all(m.fused_attn for m in attention_modules(model))
    want = expected(*size)
    d, depth = size[0], size[1]
    n = (IMG // PATCH) ** 2 + 1
    assert want["attention"] == depth * 2 * n * n * d
    c = analyze_macs(model, SHAPE)
    assert c.by_operator["scaled_dot_product_attention"] == depth * 2 * n * n * d
    assert c.by_operator["conv"] == want["conv"]
    assert c.by_operator["linear"] == want["linear"]
    assert c.macs == want["total"]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"D{s[0]}-depth{s[1]}-heads{s[2]}")
def test_fused_equals_unfused_fvcore_matmuls(size):
    model = vit(*size)
    fused = analyze_macs(model, SHAPE)
    for m in attention_modules(model):
        m.fused_attn = False  # timm then computes q @ k.transpose(-2, -1) and attn @ v, which fvcore counts
    unfused = analyze_macs(model, SHAPE)
    assert "scaled_dot_product_attention" not in unfused.by_operator
    assert unfused.by_operator["matmul"] == fused.by_operator["scaled_dot_product_attention"]
    assert unfused.macs == fused.macs == expected(*size)["total"]


def test_fused_path_does_not_drop_attention():
    size = SIZES[0]
    model = vit(*size)
    # the premise: fvcore on its own leaves the fused op unsupported (nothing counted for it)
    from fvcore.nn import FlopCountAnalysis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bare = FlopCountAnalysis(model.eval(), torch.zeros(SHAPE))
        bare.unsupported_ops_warnings(False)
        bare.uncalled_modules_warnings(False)
        bare.total()
        assert "aten::scaled_dot_product_attention" in bare.unsupported_ops()
    c = analyze_macs(model, SHAPE)
    assert not any("scaled_dot_product_attention" in k for k in c.unsupported_ops)
    conv_linear = c.by_operator["conv"] + c.by_operator["linear"]
    assert c.macs - conv_linear == expected(*size)["attention"] > 0
    # the module-hook counters count Conv2d / Linear only, as their docstrings say: attention is no module
    assert weight_macs(model, SHAPE) == MacModel(model, SHAPE).macs() == conv_linear


class SDPA(nn.Module):
    """q from the input, k and v from parameters: extra leading dims, Lq != Lk, E != Ev, optionally
    grouped-query (fewer k/v heads)."""

    def __init__(self, heads: int, kv_heads: int, lk: int, e: int, ev: int, fused: bool) -> None:
        super().__init__()
        self.groups = heads // kv_heads
        self.k = nn.Parameter(torch.zeros(1, 3, kv_heads, lk, e))
        self.v = nn.Parameter(torch.zeros(1, 3, kv_heads, lk, ev))
        self.fused = fused

    def forward(self, q):
        if self.fused:
            return F.scaled_dot_product_attention(q, self.k, self.v, enable_gqa=self.groups > 1)
        k = self.k.repeat_interleave(self.groups, dim=2)
        v = self.v.repeat_interleave(self.groups, dim=2)
        return (q @ k.transpose(-2, -1)).softmax(-1) @ v


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_sdpa_handle_general_shapes(kv_heads):
    lead, heads, lq, lk, e, ev = 3, 4, 5, 7, 8, 6
    shape = (1, lead, heads, lq, e)
    want = 1 * lead * heads * (lq * lk * e + lq * lk * ev)
    fused = analyze_macs(SDPA(heads, kv_heads, lk, e, ev, fused=True), shape)
    unfused = analyze_macs(SDPA(heads, kv_heads, lk, e, ev, fused=False), shape)
    assert fused.by_operator["scaled_dot_product_attention"] == want
    assert fused.macs == unfused.macs == unfused.by_operator["matmul"] == want
