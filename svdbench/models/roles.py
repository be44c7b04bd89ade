"""What some layers of a model are for, where a method treats them apart: a vision transformer's
patch embedding, classifier and attention projections.

A timm ViT-style model (a ``patch_embed`` module holding a conv ``proj``, and ``blocks`` whose
``attn`` has a ``qkv`` Linear) is recognised by :func:`is_vision_transformer`; any other model may
declare the same facts with methods of its own, ``embedding_layers()`` and ``head_layers()``
(names of modules), as CNNs declare ``fixed_output_channels()`` for filter pruning.
"""

from __future__ import annotations

from torch import nn

__all__ = ["is_vision_transformer", "embedding_and_head", "attention_inputs"]


def _blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(getattr(m, "qkv", None), nn.Linear)]


def is_vision_transformer(model: nn.Module) -> bool:
    """A timm ViT-style model: a patch embedding with a ``proj`` layer and attention with a ``qkv`` Linear."""
    embed = getattr(model, "patch_embed", None)
    return embed is not None and hasattr(embed, "proj") and bool(_blocks(model))


def _declared(model: nn.Module, method: str) -> list[str]:
    declare = getattr(model, method, None)
    return list(declare()) if callable(declare) else []


def embedding_and_head(model: nn.Module) -> list[str]:
    """The layers a low-rank method leaves dense unless asked: a ViT's patch embedding (``patch_embed.proj``)
    and classifier (its last Linear), or what the model declares (``embedding_layers()``, ``head_layers()``);
    [] for any other model (a CNN's stem and classifier are decomposed as the SVD-training authors do)."""
    declared = _declared(model, "embedding_layers") + _declared(model, "head_layers")
    if declared or not is_vision_transformer(model):
        return declared
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return ["patch_embed.proj", *linears[-1:]]


def attention_inputs(model: nn.Module) -> list[str]:
    """A ViT's ``qkv`` projections: their outputs are split into heads by a reshape, so filter pruning
    keeps their output channels (the heads) whole."""
    return [f"{n}.qkv" if n else "qkv" for n, _ in _blocks(model)]
