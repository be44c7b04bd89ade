"""The report's column model: every renderer (Markdown, LaTeX, CSV, typed for W&B) writes the same columns
in the same order, with one cell per header in every row, with and without the latency columns, the
matched table (one column per target speed-up) and the paired verdicts included; and a column added to
a table's list appears in every format, files and W&B tables included."""

import csv
import json
from pathlib import Path

import pytest

from svdbench.axes import MACS, latency_axis
from svdbench.report import build_report, render, report_tables, tables
from svdbench.report.columns import CSV, MD, TEX, TYPED, Column, fields
from svdbench.report.load import load_runs
from svdbench.report.matched import matched_targets
from svdbench.report.matched_tables import PAIRED, matched_columns
from svdbench.report.quality import front_quality, verdicts
from svdbench.report.rows import fmt_value, front_members, group_rows, mark_fronts, schema_defaults

LATENCY = latency_axis("onnxruntime/cpu", 64)


def _result(root: Path, name: str, method: str, seed: int, top1: float, macs: int, knob: float = 0.0, **extra):
    """A completed results.json with onnxruntime latency at batch 64 (deployed: MACs / 100 ms, dense 10 ms)."""
    data = {"status": "completed", "method": method, "model": "resnet8", "dataset": "synthetic", "seed": seed,
            "config": {"seed": seed, "method": {"knob": knob}}, "top1": top1, "macs": macs, "macs_dense": 1000,
            "params": 10, "params_dense": 100, "epochs_after_start": 3,
            "latency": {"threads": 1, "runs": {"onnxruntime/cpu": {"deployed": {"64": {"median_ms": macs / 100}},
                                                                   "dense": {"64": {"median_ms": 10.0}}}}},
            **extra}  # fmt: skip
    (root / name).mkdir(parents=True)
    (root / name / "results.json").write_text(json.dumps(data))


@pytest.fixture
def results(tmp_path) -> Path:
    """Dense and two methods over two seeds (alpha with a validation split, so ``-`` and numbers mix),
    a single-seed configuration, a setting with ``|`` in it, and a failed run."""
    root = tmp_path / "runs"
    for seed in (0, 1):
        _result(root, f"d{seed}", "dense", seed, 90.0 + seed, 1000)
        _result(root, f"a{seed}", "alpha", seed, 88.0 + seed, 500, val_top1=87.0)
        _result(root, f"b{seed}", "beta", seed, 86.5 - seed, 400)
    _result(root, "b_one", "beta", 0, 80.0, 300, knob="x|y")
    failed = {
        "status": "failed",
        "method": "beta",
        "model": "resnet8",
        "dataset": "synthetic",
        "seed": 2,
        "error": "a|b",
    }
    (root / "f").mkdir()
    (root / "f" / "results.json").write_text(json.dumps(failed))
    return root


def _rows(root: Path, axis=MACS):
    runs, failed, _ = load_runs([root])
    rows = group_rows(runs, axis)
    mark_fronts(rows)
    return rows, failed


def _md(text: str) -> tuple[list[str], list[list[str]]]:
    """(header, cells of each row) of a Markdown table, ``\\|`` kept inside its cell."""
    lines = text.splitlines()
    split = [[c.strip() for c in ln.replace("\\|", "\0").strip("|").split("|")] for ln in lines]
    assert len(lines[1].strip("|").split("|")) == len(split[0])  # one alignment per header
    return split[0], [[c.replace("\0", "\\|") for c in row] for row in split[2:]]


def _tex(text: str) -> tuple[list[str], list[list[str]], str]:
    """(header, cells of each row, column spec) of a booktabs table."""
    lines = text.splitlines()
    spec = next(ln for ln in lines if ln.startswith("\\begin{tabular}"))[len("\\begin{tabular}{") : -1]
    body = lines[lines.index("\\midrule") + 1 : lines.index("\\bottomrule")]
    head = lines[lines.index("\\toprule") + 1]
    return (
        [c.strip() for c in head.removesuffix(" \\\\").split(" & ")],
        [ln.removesuffix(" \\\\").split(" & ") for ln in body],
        spec,
    )


def _csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def _check_table(cols, items, tmp_path: Path) -> dict:
    """Render ``items`` in the four formats; check one cell per header in every row and that each format
    shows its columns in the list's order. Returns the headers by format."""
    md_head, md_rows = _md(render.markdown(cols, items))
    tex_head, tex_rows, spec = _tex(render.latex(cols, items, "caption"))
    csv_head, csv_rows = _csv(render.write_csv(tmp_path / "t.csv", cols, items))
    typed = render.typed(cols, items)
    assert len(md_rows) == len(tex_rows) == len(csv_rows) == len(typed.rows) == len(items) > 0
    assert all(len(r) == len(md_head) for r in md_rows)
    assert all(len(r) == len(tex_head) == len(spec) for r in tex_rows)
    assert all(len(r) == len(csv_head) for r in csv_rows)
    assert all(len(r) == len(typed.columns) for r in typed.rows)
    assert md_head == [c.header for c in cols if c.shown(MD)]
    assert tex_head == [c.latex or render.latex_escape(c.header) for c in cols if c.shown(TEX)]
    assert csv_head == [f.name for c in cols for f in c.csv]
    assert typed.columns == [f.name for c in cols for f in c.typed]
    for md_row, tex_row in zip(md_rows, tex_rows, strict=True):
        if [c for c in cols if c.shown(MD)] == [c for c in cols if c.shown(TEX)]:  # the same cell, escaped
            assert [render.latex_escape(c.replace("\\|", "|")).replace("±", "$\\pm$") for c in md_row] == tex_row
    for csv_row, typed_row in zip(csv_rows, typed.rows, strict=True):  # a field in both: the same value
        for name in set(csv_head) & set(typed.columns):
            a, b = csv_row[csv_head.index(name)], typed_row[typed.columns.index(name)]
            if isinstance(b, (int, float)):
                assert float(a) == pytest.approx(b, abs=1e-3)
            else:
                assert a == ("" if b is None else str(b))
    return {MD: md_head, TEX: tex_head, CSV: csv_head, TYPED: typed.columns}


@pytest.mark.parametrize("axis", [MACS, LATENCY], ids=["macs", "latency"])
def test_comparison_is_the_same_columns_in_every_format(results, tmp_path, axis):
    rows, _ = _rows(results, axis)
    cols = tables.comparison_columns(rows)
    heads = _check_table(cols, rows, tmp_path)
    latency = {MD: "latency (ms)", TEX: "latency (ms)", CSV: "latency_ms_mean", TYPED: "latency_ms"}
    for fmt, name in latency.items():
        assert (name in heads[fmt]) == axis.is_latency
    # the logical columns: Markdown and LaTeX show the same ones; CSV and W&B hold fields of them in that order
    assert len(heads[MD]) == len(heads[TEX]) == 13 + 2 * axis.is_latency
    assert heads[CSV][:4] == heads[TYPED][:4] == heads[MD][:4] == ["method", "model", "dataset", "settings"]
    last = len(heads[CSV]) - 1 - 3 * axis.is_latency  # CSV only, before latency's mean, std and speed-up
    assert heads[CSV].index("macs_dense") + 1 == heads[CSV].index("paths") == last


@pytest.mark.parametrize("axis", [MACS, LATENCY], ids=["macs", "latency"])
def test_front_failed_and_quality_tables_agree_in_every_format(results, tmp_path, axis):
    rows, failed = _rows(results, axis)
    heads = _check_table(tables.front_columns(rows), front_members(rows), tmp_path)
    assert heads[CSV] == ["scope", "model", "dataset", "method", "settings", "top1_mean", "macs_mean", "n_seeds",
                          "val_top1_mean"]  # fmt: skip
    assert ("latency (ms)" in heads[MD]) == axis.is_latency and "latency_ms_mean" not in heads[CSV]
    heads = _check_table(tables.logged_front_columns(rows), front_members(rows), tmp_path)
    assert heads[TYPED] == ["scope", *render.header(tables.comparison_columns(rows), TYPED)]
    heads = _check_table(tables.FAILED, failed, tmp_path)
    assert heads[MD] == heads[CSV] == heads[TYPED] == ["method", "model", "dataset", "seed", "error", "path"]
    quality = front_quality(rows, "top1")
    heads = _check_table(tables.QUALITY, quality, tmp_path)
    assert heads[MD][-1] == "y_ref (top-1 %)" and heads[TEX][-1] == "$y_\\mathrm{ref}$ (\\%)"
    vs = verdicts(quality)
    assert render.header(tables.VERDICTS)[:5] == ["model", "dataset", "macs_dense", "method_a", "method_b"]
    assert all(len(render.cells(tables.VERDICTS, v)) == len(tables.VERDICTS) for v in vs) and vs


def _epochs(r) -> int:
    return r.runs[0].rec.epochs_after_start


def _epochs_text(r) -> str:
    return str(_epochs(r))


#: a new column: one line in a table's list
EPOCHS = Column("epochs", _epochs_text, align="r", csv=fields(epochs=_epochs), typed=fields(epochs=_epochs))


def test_a_new_column_appears_in_every_format(results, tmp_path):
    rows, _ = _rows(results)
    cols = (*tables.COMPARISON[:4], EPOCHS, *tables.COMPARISON[4:])
    heads = _check_table(cols, rows, tmp_path)
    assert heads[MD][4] == heads[TEX][4] == "epochs" and heads[CSV][4] == heads[TYPED][4] == "epochs"
    md_head, md_rows = _md(render.markdown(cols, rows))
    assert {r[4] for r in md_rows} == {"3"} and render.markdown(cols, rows).splitlines()[1].split("|")[5] == "--:"


def test_a_column_added_to_the_comparison_list_reaches_every_file_and_wandb(results, tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "COMPARISON", (*tables.COMPARISON, EPOCHS))
    rep = build_report([results], tmp_path / "rep", axis=LATENCY)
    out = tmp_path / "rep"
    for stem in ("comparison", "comparison_alpha"):
        assert _md((out / f"{stem}.md").read_text())[0][13] == "epochs"
        assert _tex((out / f"{stem}.tex").read_text())[0][13] == "epochs"
        head, rows = _csv(out / f"{stem}.csv")
        assert head.index("epochs") == head.index("paths") + 1 and {r[head.index("epochs")] for r in rows} == {"3"}
    assert "| epochs | latency (ms) |" in (out / "report.md").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert all(r["epochs"] == 3 for r in summary["rows"] + summary["fronts"])
    t = report_tables(rep)
    assert t.comparison.columns[-3:] == ["epochs", "latency_ms", "realized_speedup"]
    assert t.fronts.columns == ["scope", *t.comparison.columns] and t.comparison.rows[0][-3] == 3


# ---------------------------------------------------------------- matched targets and paired verdicts


@pytest.fixture
def targeted(tmp_path) -> Path:
    """alpha at 2x (its config's method.speedup) with a realized speed-up at batch 64; beta at 2x (its
    method_details' speedup_target, 2.08x reached) and, with one seed, at 4x; dense without a target."""
    root = tmp_path / "targeted"
    for seed in (0, 1):
        _result(root, f"d{seed}", "dense", seed, 90.0, 1000)
        _result(root, f"a{seed}", "alpha", seed, 88.0 + seed, 500,
                config={"seed": seed, "method": {"knob": 0.0, "speedup": 2.0}},
                latency={"runs": {"onnxruntime/cpu": {"speedup": {"64": 1.4 + 0.1 * seed, "8": 9.0}}}})  # fmt: skip
        _result(root, f"b{seed}", "beta", seed, 86.5 - seed, 480, method_details={"speedup_target": 2.0})
    _result(root, "b4", "beta", 0, 80.0, 250, knob=1.0, method_details={"speedup_target": 4.0})
    return root


def _per_target(x: str, csv: int = 0) -> list[str]:
    """The fields of target ``x`` in W&B (``csv``: in the CSV file)."""
    return [f"top1_mean_{x}", f"top1_std_{x}", f"n_seeds_{x}", *([f"seeds_{x}"] if csv else []),
            f"realized_speedup_{x}", f"macs_speedup_{x}"]  # fmt: skip


def test_matched_and_paired_are_the_same_columns_in_every_format(targeted, tmp_path):
    rows, _ = _rows(targeted)
    tg = matched_targets(rows)
    heads = _check_table(matched_columns(tg), tg.matched, tmp_path)
    assert heads[MD] == heads[TEX] == ["model", "dataset", "method", "2x", "4x"]
    assert heads[CSV] == ["model", "dataset", "macs_dense", "method", *_per_target("2x", 1), *_per_target("4x", 1)]
    assert heads[TYPED] == ["model", "dataset", "method", *_per_target("2x"), *_per_target("4x")]
    _, md_rows = _md(render.markdown(matched_columns(tg), tg.matched))
    # realized speed-up where latency was recorded (batch 64); the reached MAC speed-up where > 2 % off; n where fewer
    assert md_rows == [["resnet8", "synthetic", "alpha", "88.50 ± 0.71 (1.45x)", "-"],
                       ["resnet8", "synthetic", "beta", "86.00 ± 0.71 (MACs 2.08x)", "80.00 (n=1)"]]  # fmt: skip
    heads = _check_table(PAIRED, tg.paired, tmp_path)
    shown = ["model", "dataset", "target", "method A", "method B", "seeds", "A - B (points)", "95% interval", "verdict",
             "note"]  # fmt: skip
    assert heads[MD] == shown and heads[TEX] == [render.latex_escape(h) for h in shown]
    assert heads[TYPED] == ["model", "dataset", "target", "method_a", "method_b", "n_seeds", "diff_mean", "diff_std",
                            "ci_low", "ci_high", "verdict", "note"]  # fmt: skip


def test_the_matched_files_and_wandb_tables_have_the_same_columns(targeted, tmp_path):
    rep = build_report([targeted], tmp_path / "rep")
    out = tmp_path / "rep"
    cols = matched_columns(rep.targets)
    md_head, md_rows = _md((out / "matched.md").read_text())
    tex_head, tex_rows, _ = _tex((out / "matched.tex").read_text())
    csv_head, csv_rows = _csv(out / "matched.csv")
    t = report_tables(rep)
    assert md_head == tex_head == ["model", "dataset", "method", "2x", "4x"]
    assert csv_head == render.header(cols) and t.matched.columns == render.header(cols, TYPED)
    assert len(md_rows) == len(tex_rows) == len(csv_rows) == len(t.matched.rows) == 2
    assert md_rows[0][3] == "88.50 ± 0.71 (1.45x)" and tex_rows[0][3] == "88.50 $\\pm$ 0.71 (1.45x)"
    alpha = dict(zip(csv_head, csv_rows[0], strict=True))
    assert (alpha["realized_speedup_2x"], alpha["macs_speedup_2x"], alpha["seeds_2x"]) == ("1.4500", "2.0000", "0 1")
    assert dict(zip(t.matched.columns, t.matched.rows[1], strict=True))["realized_speedup_2x"] is None
    assert "| model | dataset | method | 2x | 4x |" in (out / "report.md").read_text()
    paired_head, paired_rows = _csv(out / "paired.csv")
    assert paired_head == render.header(PAIRED) and t.paired.columns == render.header(PAIRED, TYPED)
    assert len(paired_rows) == len(t.paired.rows) == 1
    assert _tex((out / "paired.tex").read_text())[0] == [
        c.latex or render.latex_escape(c.header) for c in PAIRED if c.shown(TEX)]  # fmt: skip


def test_settings_show_a_varying_key_only_where_it_differs_from_the_default(tmp_path):
    """Two SVD-training configurations that differ in dataset.test_subset (unset in one) and trainer.lr (at its
    default in one): each row names only what it sets to other than the default."""
    default_lr = schema_defaults("svd")["trainer.lr"]
    for name, ds, lr in (("a", {"test_subset": None}, default_lr), ("b", {"test_subset": 100}, default_lr * 2)):
        config = {"seed": 0, "method": {"energy": 0.01}, "dataset": ds, "trainer": {"lr": lr}}
        _result(tmp_path / "runs", name, "svd", 0, 80.0, 500, config=config)
    rep = build_report([tmp_path / "runs"], tmp_path / "rep")
    settings = sorted(r.settings for r in rep.rows)
    assert settings == ["energy=0.01", f"energy=0.01, ds.test_subset=100, tr.lr={fmt_value(default_lr * 2)}"]
