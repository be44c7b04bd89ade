"""train_stage's stop agreement (signal number, divergence) and progress bar, on a tiny model."""

import io
import signal
import sys

import pytest
import torch

import svdbench
from svdbench.config import DatasetConfig
from svdbench.data import load_dataset
from svdbench.errors import DivergedError, Preempted
from svdbench.methods import SVDTraining
from svdbench.optim import OptimConfig
from svdbench.regularizers import SparsityRegularizer
from svdbench.train import StageHooks, StageOptions, train_stage


def setup(method=None):
    ds = DatasetConfig(name="synthetic", shape=[3, 8, 8], num_train=48, num_test=16)
    data = load_dataset(ds, batch_size=16, eval_batch_size=512)
    method = method or SVDTraining.create(regularizer=SparsityRegularizer())
    net = method.prepare(svdbench.models.cifar_resnet(8, num_classes=10, in_channels=3), (1, 3, 8, 8))
    return net, method, data


SGD = OptimConfig("sgd", 0.1, weight_decay=5e-4)


def options(**kw):
    return StageOptions(**{"epochs": 2, "optim": SGD, "stage": "train", "progress": False, **kw})


class Guard:
    """A PreemptionGuard as the loop sees it: true from the ``after``-th poll on, with ``signum`` set."""

    def __init__(self, after: int, signum: int) -> None:
        self.polls, self.after, self._signum, self.signum = 0, after, signum, None

    def __call__(self) -> bool:
        self.polls += 1
        if self.polls >= self.after:
            self.signum = self._signum
        return self.signum is not None


def test_the_signal_number_comes_from_the_stop_callable():
    net, method, data = setup()
    states = []
    hooks = StageHooks(save=states.append, stop=Guard(2, signal.SIGUSR1))
    with pytest.raises(Preempted) as err:
        train_stage(net, method, data.train, data.test, options(), hooks)
    assert err.value.signum == signal.SIGUSR1 and str(err.value) == "received SIGUSR1"
    assert [(s["epoch"], s["step_in_epoch"]) for s in states] == [(0, 2)]  # saved mid-epoch, then stopped


def test_a_stop_callable_without_signum_means_sigterm():
    net, method, data = setup()
    with pytest.raises(Preempted) as err:
        train_stage(net, method, data.train, data.test, options(), StageHooks(stop=lambda: True))
    assert err.value.signum == signal.SIGTERM


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [False, True])
def test_progress_bar_is_drawn_on_a_terminal_only(monkeypatch, terminal):
    stream = FakeTerminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    net, method, data = setup()
    hist = train_stage(net, method, data.train, data.test, options(progress=True))
    assert len(hist) == 2
    assert ("\r" in stream.getvalue()) == terminal  # redirected (a log file, CI): not one frame
    if not terminal:
        assert stream.getvalue() == ""


def test_nan_loss_names_stage_and_epoch():
    class NanFromSecondEpoch(SVDTraining):
        steps = 0

        def regularization(self, model, stage):
            self.steps += 1
            return torch.tensor(float("nan") if self.steps > 3 else 0.0)  # 3 steps per epoch

    net, method, data = setup(NanFromSecondEpoch.create(regularizer=SparsityRegularizer()))
    with pytest.raises(DivergedError, match=r"loss became nan in stage 'finetune', epoch 2$"):
        train_stage(net, method, data.train, data.test, options(stage="finetune"))


def test_epoch_eval_chooses_the_splits_evaluated_every_epoch():
    """trainer.epoch_eval=[val] spares the test pass of every epoch (a large test set's cost); nothing else
    of the training changes."""
    torch.manual_seed(0)
    net, method, data = setup()
    full = train_stage(net, method, data.train, data.test, options(epochs=1), val=data.test)
    torch.manual_seed(0)
    net, method, data = setup()
    some = train_stage(net, method, data.train, data.test, options(epochs=1, epoch_eval=("val",)), val=data.test)
    assert full[0]["test_top1"] is not None and some[0]["test_top1"] is None
    assert some[0]["val_top1"] == full[0]["val_top1"] and some[0]["train_loss"] == full[0]["train_loss"]
