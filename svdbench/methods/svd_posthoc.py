"""Post-hoc low-rank decomposition of a trained dense network (docs/method.md 2.3): the lower bound
SVD training has to beat.

The pipeline first trains the dense network (stage ``pretrain``, unless ``init_from`` gives one);
``prepare`` factorises every conv by truncated SVD of its trained weight, channel-wise (Zhang et
al. 2016: ``Cout x Cin*k*k``, deployed as k x k conv to r channels then 1x1) or spatial-wise
(Jaderberg et al. 2014: ``Cin*kh x Cout*kw``, deployed as kh x 1 then 1 x kw); there is no
``train`` stage; ``compress`` drops each layer's singular-value tail holding at most ``energy`` of
``sum(s^2)`` (or ``|s| < threshold``, or at the smallest energy reaching ``speedup``; ``speedups``: one
operating point per target); stage ``finetune`` trains the factors; ``export`` deploys the
pairs of small layers (a layer whose pair would cost more than the dense layer stays dense when
``merge_unprofitable``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import register_method
from .svd import LowRankConfig, LowRankMethod


@dataclass
class PosthocSVDConfig(LowRankConfig):
    finetune_epochs: int = 3
    # The 12-epoch dense ResNet-8 on Fashion-MNIST (91.6%) decomposed channel-wise at e = 0.32 deploys
    # at 2.02x fewer MACs (e = 0.3: 1.89x, 0.35: 2.17x; spatial-wise e = 0.3: 2.08x).
    default_energy: ClassVar[float] = 0.32


@register_method("svd_posthoc")
class PosthocSVD(LowRankMethod):
    """SVD training's decomposition, pruning and export without its training: init by SVD of the
    trained weights, no orthogonality or sparsity term, no ``train`` stage."""

    Config = PosthocSVDConfig
    pretrain_dense = True
    train_epochs = 0
