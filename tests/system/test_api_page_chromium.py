"""The page at / in a real headless Chromium: type a tweet, click, read the bars."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.api_helpers import LABELS, ApiProcess, publish_model

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser() -> Iterator[object]:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium package)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


def test_page_shows_bars_sorted_with_predicted_marked(browser: Any, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    run_id = publish_model(store, seed=4)
    api = ApiProcess(store).start(tmp_path)
    try:
        page = browser.new_page()
        page.goto(api.base + "/")
        page.fill("#text", "Taylor Swift's new album is out 🎵")
        page.click("#classify")
        page.wait_for_selector("#bars .row")
        rows = page.query_selector_all("#bars .row")
        names = [row.get_attribute("data-name") for row in rows]
        probabilities = [float(row.get_attribute("data-probability") or "nan") for row in rows]
        assert sorted(names) == sorted(LABELS), "every domain is a bar"
        assert probabilities == sorted(probabilities, reverse=True)
        predicted = [
            row.get_attribute("data-name") for row in page.query_selector_all("#bars .row.predicted")
        ]
        assert predicted, "at least one predicted domain is marked"
        meta = page.inner_text("#meta")
        assert run_id in meta and "computed" in meta
        widths = [
            row.query_selector(".bar").evaluate("el => el.getBoundingClientRect().width") for row in rows
        ]
        assert widths[0] >= widths[-1] > 0
        page.screenshot(path=str(tmp_path / "page.png"))

        page.click("#classify")  # the same text again comes from the cache
        page.wait_for_function("document.querySelector('#meta').dataset.cached === 'true'")
        assert "from cache" in page.inner_text("#meta")

        page.fill("#text", "   ")
        page.click("#classify")
        page.wait_for_function("document.querySelector('#error').textContent.length > 0")
        assert "422" in page.inner_text("#error")
    finally:
        api.stop()
