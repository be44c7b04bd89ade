"""The README's set-up commands and library example stay true."""

import re

import svdbench
from svdbench import preflight


def test_readme_opens_with_the_two_setup_commands(root):
    text = (root / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S).group(1).strip().splitlines()
    assert [ln.split("#")[0].strip() for ln in first_block] == ["make demo", "make test"]
    makefile = (root / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (root / ".ci" / "run").read_text()


def test_readme_library_example_runs(root):
    text = (root / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    deployed = scope["deployed"]
    assert not svdbench.lowrank.lowrank_layers(deployed)
    assert svdbench.count_macs(deployed, (1, 3, 32, 32)) <= 40_551_040 * 1.2


def test_make_quick_is_listed_after_the_setup_commands_and_is_a_valid_short_run(root, compose_cfg):
    """The quick start: the demo's method, pruned to 2x, on a subset, a few epochs (its time is measured in the
    README); listed right after the two set-up commands."""
    text = (root / "README.md").read_text()
    after = text[text.index("make test") :].split("```", 2)[1]
    assert "`make quick`" in after.split("\n\n")[1]
    makefile = (root / "Makefile").read_text()
    demo = re.search(r"^DEMO := (.*)$", makefile, re.M).group(1).split()
    quick = re.search(r"^QUICK := \$\(DEMO\) (.*?)(?<!\\)$", makefile, re.M | re.S).group(1)
    overrides = [*demo, *quick.replace("\\\n", " ").split()]
    plan = preflight.plan(compose_cfg(overrides))
    cfg = plan.config
    assert cfg["method"]["speedup"] == 2 and cfg["dataset"]["name"] == "fashion_mnist"
    assert (cfg["dataset"]["train_subset"], cfg["dataset"]["val_size"]) == (3000, 273)
    assert plan.epochs_after_start <= 6
