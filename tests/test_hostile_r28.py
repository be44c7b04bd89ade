"""Round 28 of the hostile pass, and the items earlier rounds left.

- r26a F9 (left then): ``svdbench latency --batch-sizes 2`` on a run timed at batch 1 said "has latency" and exit 0,
  though the run has no figure at batch 2; a record of other settings is now named, and the run counts as not
  timed (``--force`` replaces it).
- r27a lead (left then): ``method=scratch`` rebuilt a source's ``deployed.json`` records with real memory before
  any check, so a hand-edited record of a huge layer allocated it; the records are now counted on the meta device
  first and must build the parameters the source's results.json records."""

import json
import resource
import subprocess
import sys

import pytest
from conftest import ENV, ROOT, record

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


FORGE = """
import json, sys
sys.path.insert(0, "tests")
from test_scratch import pruned, write_run
from pathlib import Path
src = Path(sys.argv[1])
write_run(src, pruned())
doc = json.loads((src / "deployed.json").read_text())
conv = next(r for r in doc["modules"] if r["kind"] == "Conv2d")
conv["args"]["out_channels"] = conv["args"]["in_channels"] = 2_000_000  # 36e12 weights: ~144 TB if built
(src / "deployed.json").write_text(json.dumps(doc))
(src / "results.json").write_text(json.dumps({**json.loads((src / "results.json").read_text()), **eval(sys.argv[2])}))
"""


@pytest.mark.parametrize(
    "change, said",
    [({}, "parameters, not "), ({"params": None}, "parameters, not at most ")],
)
def test_a_scratch_source_forged_to_a_huge_layer_is_one_line_before_any_memory_is_taken(tmp_path, change, said):
    src = tmp_path / "src"
    subprocess.run([sys.executable, "-c", FORGE, str(src), repr(change)], cwd=ROOT, env=ENV, check=True)
    run = [sys.executable, "run.py", "+debug=tiny", "method=scratch", f"method.architecture_from={src}",
           "method.epochs=1", f"hydra.run.dir={tmp_path / 'run'}", "--plan"]  # fmt: skip
    cap = 4 << 30  # 4 GiB of address space: building the forged layer fails with MemoryError, not a swap storm

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    proc = subprocess.run(run, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300, preexec_fn=limit)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "deployed.json: its records build" in proc.stderr and said in proc.stderr, proc.stderr
