"""The dense start: which weights a run started from is a digest of the tensors, not of the file, and
a checkpoint of another architecture is refused naming the tensors that do not fit."""

import json
import os

import pytest
import torch
from conftest import tensors_digest

from svdbench.checkpoint import dense_digest, load_dense_checkpoint, state_digest
from svdbench.errors import InputError
from svdbench.methods import Dense, SVDTraining
from svdbench.models import build_model
from svdbench.pipeline import run_experiment
from svdbench.report import build_report


def test_the_digest_is_of_the_tensors_not_of_the_file(tmp_path):
    state = {k: v.detach() for k, v in build_model("cifar_resnet", "resnet8", 10, 3).state_dict().items()}
    torch.save(state, tmp_path / "a.pt")
    torch.save(state, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() != (tmp_path / "b.pt").read_bytes()  # the archive names its members
    assert dense_digest(tmp_path / "a.pt") == dense_digest(tmp_path / "b.pt") == tensors_digest(tmp_path / "a.pt")
    changed = dict(state, **{"fc.bias": state["fc.bias"] + 1e-6})
    assert state_digest(changed) != state_digest(state)
    renamed = {("x." + k): v for k, v in state.items()}
    assert state_digest(renamed) != state_digest(state)


@pytest.mark.slow
def test_two_dense_runs_of_the_same_weights_are_one_start(tmp_path, tiny_cfg):
    """Two identical dense runs (same seed) save their weights through different temporary files:
    runs started from either record one dense start, and the report does not warn."""
    for d in ("dense_a", "dense_b"):
        run_experiment(tiny_cfg(), Dense(), tmp_path / d)
    # the same weights in a file of other bytes (torch.save names the archive's members after the file)
    torch.save(torch.load(tmp_path / "dense_b/dense.pt", weights_only=True), tmp_path / "another_name.pt")
    os.replace(tmp_path / "another_name.pt", tmp_path / "dense_b/dense.pt")
    assert (tmp_path / "dense_a/dense.pt").read_bytes() != (tmp_path / "dense_b/dense.pt").read_bytes()
    for d, e in (("dense_a", 0.2), ("dense_b", 0.3)):
        cfg = tiny_cfg(init_from=str(tmp_path / d), trainer={"budget": 2})
        run_experiment(cfg, SVDTraining.create(energy=e), tmp_path / f"svd_{d}")
    starts = {
        json.loads((tmp_path / f"svd_{d}/results.json").read_text())["dense_start"] for d in ("dense_a", "dense_b")
    }
    assert starts == {tensors_digest(tmp_path / "dense_a/dense.pt")}
    rep = build_report([tmp_path], tmp_path / "report")
    assert rep.budget == []


def test_another_architecture_is_refused_naming_what_does_not_fit(tmp_path):
    model = build_model("cifar_resnet", "resnet8", 10, 3)
    state = model.state_dict()
    torch.save({**{k: v for k, v in state.items() if k != "fc.weight"}, "fc.U": torch.zeros(10, 4)}, tmp_path / "f.pt")
    with pytest.raises(InputError) as err:
        load_dense_checkpoint(model, tmp_path / "f.pt")
    msg = str(err.value)
    assert "\n" not in msg and "missing: fc.weight" in msg and "unexpected: fc.U" in msg
    torch.save({**state, "fc.bias": torch.zeros(7)}, tmp_path / "g.pt")
    with pytest.raises(InputError, match=r"other shapes: fc.bias \(7,\) for \(10,\)"):
        load_dense_checkpoint(model, tmp_path / "g.pt")
