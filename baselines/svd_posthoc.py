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

from svdbench.methods import SVDTraining

from .config import SVDPosthocMethodConfig

DEFAULT_ENERGY = 0.32


class PosthocSVD(SVDTraining):
    """SVD training's decomposition, pruning and export without its training: init by SVD of the
    trained weights, no orthogonality or sparsity term, no ``train`` stage. Give ``energy`` or
    ``threshold``; with neither, ``energy`` is 0.32."""

    name = "svd_posthoc"
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
        if energy is None and threshold is None:
            energy = DEFAULT_ENERGY
        SVDPosthocMethodConfig(
            decomposition=decomposition, energy=energy, threshold=threshold, finetune_epochs=finetune_epochs
        )
        super().__init__(
            decomposition=decomposition, init="svd", orthogonality=0.0, energy=energy, threshold=threshold,
            finetune_epochs=finetune_epochs, skip=skip, decompose_linear=decompose_linear,
            merge_unprofitable=bool(merge_unprofitable),
        )  # fmt: skip

    def details(self) -> dict:
        d = super().details()
        for key in ("orthogonality", "regularizer", "regularizer_weight"):  # no training terms
            d.pop(key)
        return d
