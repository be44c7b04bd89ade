"""The README's set-up commands and library example stay true."""

import re

import svdbench


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
