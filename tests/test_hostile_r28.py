"""Round 28 of the hostile pass, and the items earlier rounds left.

- r26a F9 (left then): ``svdbench latency --batch-sizes 2`` on a run timed at batch 1 said "has latency" and exit 0,
  though the run has no figure at batch 2; a record of other settings is now named, and the run counts as not
  timed (``--force`` replaces it)."""

import json

import pytest
from conftest import record

from svdbench import cli

TIMED = {"batch_sizes": [1, 64], "threads": 1,
         "runs": {"pytorch-eager/cpu": {"deployed": {"1": {"median_ms": 1.0}, "64": {"median_ms": 9.0}},
                                        "dense": {"1": {"median_ms": 2.0}, "64": {"median_ms": 20.0}}}}}  # fmt: skip


@pytest.mark.parametrize(
    "asked, said",
    [
        (["--batch-sizes", "2"], "has no figures at batch size 2;"),
        (["--batch-sizes", "1", "2", "64"], "has no figures at batch size 2;"),
        (["--batch-sizes", "1", "--threads", "2"], "has no figures on 2 thread(s) (it was timed on 1);"),
        (["--onnx"], "has no figures in onnxruntime;"),
        (["--compile", "--batch-sizes", "64"], "has no figures in torch.compile;"),
    ],
)
def test_latency_on_a_run_timed_otherwise_names_what_it_lacks_and_counts_as_not_timed(tmp_path, capsys, asked, said):
    run = record(tmp_path / "run", latency=TIMED)
    before = (run / "results.json").read_text()
    assert cli.main(["latency", str(run), *asked]) == 1
    out = capsys.readouterr().out
    assert said in out and "--force to time it again as asked" in out and "has latency" not in out, out
    assert (run / "results.json").read_text() == before


@pytest.mark.parametrize("asked", [[], ["--batch-sizes", "64"], ["--threads", "1", "--batch-sizes", "1"]])
def test_latency_on_a_run_timed_as_asked_still_skips_it(tmp_path, capsys, asked):
    run = record(tmp_path / "run", latency=TIMED)
    assert cli.main(["latency", str(run), *asked]) == 0
    assert "skipped (has latency; --force to time again)" in capsys.readouterr().out
    assert json.loads((run / "results.json").read_text())["latency"] == TIMED


def test_an_older_record_without_batch_sizes_is_read_from_its_figures(tmp_path, capsys):
    older = {"runs": {"pytorch-eager/cpu": {"deployed": {"1": {"median_ms": 1.0}}, "dense": {"1": {"median_ms": 2.0}}}}}
    run = record(tmp_path / "run", latency=older)
    assert cli.main(["latency", str(run), "--batch-sizes", "1"]) == 0
    assert cli.main(["latency", str(run)]) == 1  # 1 and 64 asked: 64 it has not
    assert "has no figures at batch size 64;" in capsys.readouterr().out
