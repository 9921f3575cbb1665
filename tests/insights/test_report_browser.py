"""index.html in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by
Selenium): it renders the scripted history without console errors, shows every environment and
its charts, drills down to the commits, and asks for nothing but the file itself.

The screenshot of the whole page (every environment opened) is written to
``build/test-artifacts/insights/report.png`` in the checkout (git-ignored; CI keeps it as an
artifact). Without Chromium the test fails: ``.ci/run`` installs it (``install_browser_packages``:
``apt-get install chromium chromium-driver``) before ``make test``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from generator.paths import REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = REPO_ROOT / "build" / "test-artifacts" / "insights"
WIDTH = 1400


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    """A headless Chromium that keeps its console and network logs."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} missing: install Debian's chromium and chromium-driver the way .ci/run does "
            "(install_browser_packages: apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument(f"--window-size={WIDTH},1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def _requested(driver: webdriver.Chrome) -> set[str]:
    """Every URL the page asked for since the last call (the DevTools network events)."""
    urls = set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.add(message["params"]["request"]["url"])
    return urls


def test_the_report_renders_in_chromium_with_every_environment(browser, report, scripted):
    out, doc = report
    _, ids = scripted
    page = (out / "index.html").resolve().as_uri()
    browser.get(page)
    assert browser.title.startswith("Release insights 2026-01-05T00:00:00Z")

    environments = list(doc["environments"])
    for env in environments:
        summary = browser.find_element(By.CSS_SELECTOR, f'details[id="env-{env}"] > summary')
        assert summary.is_displayed() and summary.text.startswith(f"{env}: "), env
    figures = browser.find_element(By.TAG_NAME, "table")
    names = [row.text.split()[0] for row in figures.find_elements(By.CSS_SELECTOR, "tr")[1:]]
    assert sorted(names[:-1]) == sorted(environments) and names[-1] == "all"

    charts = browser.find_elements(By.TAG_NAME, "svg")
    assert len(charts) == 2 + len(environments)  # per week, lead time, one lineage timeline per environment
    for chart in charts[:2]:
        assert chart.is_displayed() and chart.size["width"] > 300 and chart.size["height"] > 100

    # drill down: prod's failed deployment, its mark and the commit that restored it
    browser.find_element(By.CSS_SELECTOR, 'details[id="env-prod"] > summary').click()
    failed = browser.find_element(By.CSS_SELECTOR, f'details[id="env-prod"] tr.failed code[title="{ids["c6"]}"]')
    assert failed.is_displayed() and failed.text == ids["c6"][:10]
    row = failed.find_element(By.XPATH, "ancestor::tr")
    assert "change failure" in row.text and ids["c7"][:10] in row.text

    for summary in browser.find_elements(By.CSS_SELECTOR, "details:not([open]) > summary"):
        summary.click()
    assert all(chart.is_displayed() for chart in browser.find_elements(By.TAG_NAME, "svg"))
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(WIDTH, min(height + 120, 16000))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    assert browser.save_screenshot(str(shot)), shot
    shutil.copy2(out / "index.html", ARTIFACTS / "index.html")
    assert shot.stat().st_size > 10_000

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    assert _requested(browser) == {page}, "the page fetched something besides itself"
