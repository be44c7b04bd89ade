"""The tiny configuration every end-to-end test runs: synthetic 16x16 data, ResNet-8, one epoch."""

TINY = [
    "dataset=synthetic",
    "dataset.shape=[3,16,16]",
    "dataset.num_train=128",
    "dataset.num_test=64",
    "model=resnet8",
    "trainer.epochs=1",
    "trainer.batch_size=32",
    "trainer.progress=false",
    "trainer.bn_recalibration_batches=2",
    "method.finetune_epochs=1",
    "save_model=false",
]


def tiny(*without: str) -> list[str]:
    """TINY without the overrides whose key starts with one of ``without``."""
    return [o for o in TINY if not o.startswith(without)] if without else list(TINY)
