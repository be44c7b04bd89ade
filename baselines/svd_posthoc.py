"""Post-hoc low-rank decomposition of a trained dense network (METHOD.md 2.3): the lower bound
SVD training has to beat.

The pipeline first trains the dense network (stage ``pretrain``, unless ``init_from`` gives one);
``prepare`` factorises every conv by truncated SVD of its trained weight, channel-wise (Zhang et
al. 2016: ``Cout x Cin*k*k``, deployed as k x k conv to r channels then 1x1) or spatial-wise
(Jaderberg et al. 2014: ``Cin*kh x Cout*kw``, deployed as kh x 1 then 1 x kw); there is no
``train`` stage; ``compress`` drops each layer's singular-value tail holding at most ``energy`` of
``sum(s^2)`` (or ``|s| < threshold``); stage ``finetune`` trains the factors; ``export`` deploys the
pairs of small layers (a layer whose pair would cost more than the dense layer stays dense when
``merge_unprofitable``).
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from svdbench import lowrank
from svdbench.methods.base import Method

from .config import SVDPosthocMethodConfig

DEFAULT_ENERGY = 0.32


class PosthocSVD(Method):
    """Give ``energy`` or ``threshold``; with neither, ``energy`` is 0.32."""

    name = "svd_posthoc"
    compresses = True
    pretrain_dense = True
    train_epochs = 0

    def __init__(
        self,
        decomposition: str = "channel",
        energy: float | None = None,
        threshold: float | None = None,
        finetune_epochs: int = 0,
        skip: Sequence[str] = (),
        decompose_linear: bool = False,
        merge_unprofitable: bool = True,
        **unused,
    ) -> None:
        super().__init__(finetune_epochs)
        if energy is None and threshold is None:
            energy = DEFAULT_ENERGY
        SVDPosthocMethodConfig(
            decomposition=decomposition, energy=energy, threshold=threshold, finetune_epochs=finetune_epochs
        )
        self.decomposition, self.energy, self.threshold = decomposition, energy, threshold
        self.skip, self.decompose_linear = list(skip), bool(decompose_linear)
        self.merge_unprofitable = bool(merge_unprofitable)
        self.ranks_before: dict[str, int] = {}
        self.ranks_after: dict[str, int] = {}

    def prepare(self, model: nn.Module, input_shape) -> nn.Module:
        model = lowrank.decompose(model, self.decomposition, "svd", skip=self.skip, linear=self.decompose_linear)
        self.ranks_before = lowrank.ranks(model)
        return model

    def compress(self, model: nn.Module) -> dict:
        self.ranks_before = lowrank.ranks(model)
        self.ranks_after = lowrank.prune(model, energy=self.energy, threshold=self.threshold)
        return self.details()

    def export(self, model: nn.Module) -> nn.Module:
        return lowrank.export(model, merge_unprofitable=self.merge_unprofitable)

    def details(self) -> dict:
        return {
            **super().details(),
            "decomposition": self.decomposition,
            "init": "svd",
            "energy": self.energy,
            "threshold": self.threshold,
            "skip": self.skip,
            "decompose_linear": self.decompose_linear,
            "merge_unprofitable": self.merge_unprofitable,
            "ranks_before": dict(self.ranks_before),
            "ranks_after": dict(self.ranks_after),
        }
