"""The structure the design promises: no import cycles (also none hidden inside functions), one
module that imports wandb, nothing pointing outside the repository."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "svdbench"
MODULES = sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def own_imports(path: Path, top_level: bool) -> list[tuple[int, str]]:
    """(line, module) of every import of svdbench's own code in ``path``: at module level, or (with
    ``top_level=False``) inside functions."""
    tree = ast.parse(path.read_text())
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    inside = {id(n) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
              for n in ast.walk(fn)}  # fmt: skip
    found = []
    for node in ast.walk(tree):
        if (id(node) in inside) == top_level:
            continue
        if isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            mod = (f"{base}.{node.module}" if node.module else base) if node.level else node.module or ""
            if mod.split(".")[0] != "svdbench":
                continue
            for alias in node.names:  # "from . import lowrank" imports a module; "from .x import y" the module x
                sub = f"{mod}.{alias.name}"
                found.append((node.lineno, sub if (ROOT / (sub.replace(".", "/") + ".py")).exists() or
                              (ROOT / sub.replace(".", "/")).is_dir() else mod))  # fmt: skip
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "svdbench"]
    return found


def test_no_import_of_our_own_code_inside_a_function():
    hits = [f"{p.relative_to(ROOT)}:{line} {mod}" for p in MODULES for line, mod in own_imports(p, top_level=False)]
    assert hits == []


def test_no_import_cycles():
    graph = {module_name(p): {m for _, m in own_imports(p, top_level=True)} - {module_name(p)} for p in MODULES}
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # a package importing its own submodules (its __init__ re-exporting them) is not a cycle
    real = [c for c in cycles if not all(c[0].startswith(m) or m.startswith(c[0]) for m in c)]
    assert real == []


@pytest.mark.parametrize(
    "module, must_not_load", [("svdbench.onnx_export", "svdbench.latency"), ("svdbench.tracking", "svdbench.report")]
)
def test_lower_modules_do_not_load_upper_ones(module, must_not_load):
    code = f"import sys, {module}; print({must_not_load!r} in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert proc.stdout.split() == ["False"], proc.stderr


def test_tracking_is_the_only_module_importing_wandb():
    files = [ROOT / "run.py", *MODULES]
    importing = sorted(
        str(p.relative_to(ROOT))
        for p in files
        for n in ast.walk(ast.parse(p.read_text()))
        if (isinstance(n, ast.Import) and any(a.name.split(".")[0] == "wandb" for a in n.names))
        or (isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "wandb")
    )
    assert set(importing) == {"svdbench/tracking.py"}


def test_nothing_points_outside_the_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    needles = (".." + "/shared", "METHOD" + ".md", "PITFALLS" + ".md")
    hits = [f for f in tracked if (ROOT / f).is_file() and not f.endswith((".png", ".svg", ".pt"))
            and any(n in (ROOT / f).read_text(errors="ignore") for n in needles)]  # fmt: skip
    assert hits == []
