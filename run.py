"""Run one svdbench experiment (or a sweep with -m), configured by Hydra from conf/.

python run.py                                   # the demo: SVD training of ResNet-8 on Fashion-MNIST
python run.py model=resnet20 method=dense trainer.epochs=30
python run.py -m regularizer.weight=0.02,0.05 method.energy=0.02,0.05
python run.py -m +sweep=svd_grid                # a preset sweep (conf/sweep/, docs/sweeps.md)
python run.py logger=wandb                      # W&B tracking, offline by default
python run.py --config-dir my_conf method=mine  # your own method, model or dataset (docs/extending.md)
"""

import sys

try:  # Ctrl-C while torch and Hydra import (the first second or two): one line, nothing was written yet
    import hydra

    from svdbench import app
except KeyboardInterrupt:
    print("interrupted (SIGINT) while starting: nothing was run or written", file=sys.stderr)
    raise SystemExit(130) from None


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg):
    return app.job(cfg)


if __name__ == "__main__":
    sys.argv = app.start(sys.argv)
    app.launch(main)
