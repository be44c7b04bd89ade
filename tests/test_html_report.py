"""report.html: self-contained, every method's trace, hover text, legend and sortable tables; opened in
Debian's chromium (through its chromedriver) for the browser test."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from svdbench.report import build_report
from svdbench.report.colours import PALETTE, method_colors

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
METHODS = ("dense", "alpha", "<b>beta</b> & co")


def _result(root: Path, name: str, method: str, seed: int, top1: float, macs: int, latency_ms: float, knob: float,
            noisy: bool = False):  # fmt: skip
    data = {"status": "completed", "method": method, "model": "resnet8", "dataset": "synthetic", "seed": seed,
            "config": {"seed": seed, "method": {"knob": knob}}, "top1": top1, "val_top1": top1 - 0.5, "macs": macs,
            "macs_dense": 1_000_000, "params": 10, "params_dense": 100,
            "latency": {"runs": {"onnxruntime/cpu": {"deployed": {"64": {"median_ms": latency_ms}},
                                                     "dense": {"64": {"median_ms": 10.0}},
                                                     "noisy": ["64"] if noisy else []}}}}  # fmt: skip
    (root / name).mkdir(parents=True)
    (root / name / "results.json").write_text(json.dumps(data))


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A report of dense, alpha and a method whose name holds HTML, two seeds, two settings each."""
    root = tmp_path_factory.mktemp("html")
    for seed in (0, 1):
        _result(root / "runs", f"d{seed}", "dense", seed, 90.0 + 0.1 * seed, 1_000_000, 10.0, 0.0)
        for k, (top1, macs, ms) in enumerate([(89.0, 500_000, 6.0), (87.0, 330_000, 4.5)]):
            _result(root / "runs", f"a{seed}{k}", "alpha", seed, top1 + 0.2 * seed, macs, ms, float(k), seed + k == 2)
            _result(root / "runs", f"b{seed}{k}", METHODS[2], seed, top1 - 1, int(macs * 0.9), ms * 1.2, float(k))
    build_report([root / "runs"], root / "report")
    return root / "report" / "report.html"


def test_the_page_is_self_contained_and_listed_with_the_report(report):
    page = report.read_text()
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", page)  # nothing fetched
    assert "report.html" in json.loads((report.parent / "summary.json").read_text())["files"]
    assert "&lt;b&gt;beta&lt;/b&gt; &amp; co" in page and "<b>beta</b> & co" not in page  # names are data
    # alpha's second setting, flagged by its seed 1: in its hover on both fronts (MACs, latency)
    assert page.count("batch 64, noisy: timing rounds disagreed") == 2


def test_each_method_keeps_its_colour_and_34_methods_have_distinct_ones():
    methods = [f"m{i:02d}" for i in range(40)]
    colours = method_colors(["dense", *methods])
    assert colours["dense"] == PALETTE[0] and len(set(colours.values())) == len(PALETTE) == 34
    assert method_colors(["m05", "dense"])["m05"] == colours["m00"]  # by order among the report's methods


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1400,1100",
        "--disable-dev-shm-usage",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))


@pytest.mark.slow
@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="no chromium/chromedriver (make browser installs them)")
def test_report_html_in_chromium(report, tmp_path):
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver = _browser()
    try:
        driver.get(report.as_uri())
        figures = driver.execute_script(
            "return Array.from(document.querySelectorAll('.js-plotly-plot')).map(g => g.data.map(t => t.name))"
        )
        assert len(figures) == 2  # the task on MACs and on latency
        for names in figures:
            assert {"dense", "alpha", "&lt;b&gt;beta&lt;/b&gt; &amp; co"} <= set(names)
        # a real mouse over alpha's first point (knob=0, 2 seeds: mean 89.1 %) shows its hover text
        alpha = figures[0].index("alpha")
        points = driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")[0].find_elements(
            By.CSS_SELECTOR, f".scatterlayer .trace:nth-of-type({alpha + 1}) .points path"
        )
        ActionChains(driver).move_to_element(points[0]).perform()
        time.sleep(0.3)
        hover = driver.execute_script("return document.querySelector('.hoverlayer').textContent")
        assert "alpha: knob=0" in hover and "test top-1 89.10 % ± 0.14, validation 88.60 %" in hover
        assert "MACs 0.5 M (2.00x fewer)" in hover and "latency 6 ms (onnxruntime/cpu, batch 64)" in hover
        assert "seeds: 0, 1" in hover and f"run: {report.parent.parent / 'runs' / 'a10'}" in hover
        # a click on a legend entry hides the method (plotly waits out its double-click delay first)
        legend = driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")[0].find_elements(
            By.CSS_SELECTOR, ".legend .traces .legendtoggle"
        )
        ActionChains(driver).move_to_element(legend[1]).click().perform()
        time.sleep(0.8)
        hidden = driver.execute_script("return document.querySelector('.js-plotly-plot').data.map(t => t.visible)")
        assert hidden[1] == "legendonly"
        # the comparison table sorts by a numeric column, both ways
        table = driver.find_element(By.ID, "comparison")
        header = next(th for th in table.find_elements(By.TAG_NAME, "th") if th.text.startswith("MACs"))
        col = [th.text for th in table.find_elements(By.TAG_NAME, "th")].index(header.text)

        def column() -> list[float]:
            rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
            return [float(r.find_elements(By.TAG_NAME, "td")[col].text.split()[0]) for r in rows]

        header.click()
        assert column() == sorted(column()) and len(column()) == 5
        header.click()
        assert column() == sorted(column(), reverse=True)
        driver.save_screenshot(str(tmp_path / "report.png"))
        assert (tmp_path / "report.png").stat().st_size > 10_000
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        requests = [json.loads(e["message"])["message"] for e in driver.get_log("performance")]
        urls = {m["params"]["request"]["url"] for m in requests if m["method"] == "Network.requestWillBeSent"}
        assert urls == {report.as_uri()}, urls  # nothing fetched but the page itself
    finally:
        driver.quit()
