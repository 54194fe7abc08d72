"""Open the rendered book in headless Chromium: images load, no console errors, no network, math renders.

In CI (EX4_REQUIRE_BROWSER=1) a missing browser fails instead of skipping.
Reads the session's `smoke_book`: the real book rendered under params/smoke.yml, or the book in
$EX4_BOOK_DIR (`nox -s report` points it at `_book/` after rendering). Needs Debian's `chromium` and `chromium-driver`; skipped with the reason when absent.
Saves screenshots beside the book's index page (or in $EX4_SCREENSHOT_DIR).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlparse

import pytest

from chromium import start_chromium

pytestmark = [pytest.mark.browser, pytest.mark.book]

LOCAL_SCHEMES = {"data", "file", "about", "blob"}


@pytest.fixture(scope="module")
def book_index(smoke_book) -> Path:
    return smoke_book.html_index


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"), with_logs=True)
    yield driver
    driver.quit()


def book_pages(driver, index: Path) -> list[str]:
    """The index page and every page its chapter list links to, as file:// URLs."""
    driver.get(index.as_uri())
    links = driver.execute_script(
        "return Array.from(document.querySelectorAll('nav.sidebar ul.chapters a')).map(a => a.href);")
    pages = [index.as_uri()] + [link.split("#")[0] for link in links]
    return list(dict.fromkeys(pages))


def visit(driver, url: str) -> dict:
    driver.get_log("performance")  # drop what earlier pages logged
    driver.get_log("browser")
    driver.get(url)
    driver.execute_script("return document.readyState")
    report = driver.execute_script("""
        const images = Array.from(document.images);
        const maths = Array.from(document.getElementsByTagName('math'));
        return {
          images: images.length,
          broken: images.filter(img => !img.complete || img.naturalWidth === 0).map(img => img.src.slice(0, 80)),
          maths: maths.length,
          flatMaths: maths.filter(m => m.getBoundingClientRect().width === 0).length,
          resources: performance.getEntriesByType('resource').map(entry => entry.name),
        };""")
    requests = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            requests.append(message["params"]["request"]["url"])
    report["requests"] = requests + report.pop("resources")
    report["errors"] = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    return report


def test_book_pages_load_cleanly_offline_with_images_and_math(browser, book_index):
    pages = book_pages(browser, book_index)
    assert len(pages) >= 2, "the index page lists no chapters"
    reports = {url: visit(browser, url) for url in pages}
    for url, report in reports.items():
        name = Path(urlparse(url).path).name
        assert report["broken"] == [], f"{name}: images that did not load: {report['broken']}"
        assert report["errors"] == [], f"{name}: console errors: {report['errors']}"
        remote = [request for request in report["requests"] if urlparse(request).scheme not in LOCAL_SCHEMES]
        assert remote == [], f"{name}: requests that leave the machine: {remote}"
        assert report["flatMaths"] == 0, f"{name}: MathML elements rendered with no width"
    assert sum(report["images"] for report in reports.values()) > 0, "no figure in the whole book"
    assert sum(report["maths"] for report in reports.values()) > 0, "no MathML in the whole book"

    folder = Path(os.environ.get("EX4_SCREENSHOT_DIR") or book_index.parent)
    folder.mkdir(parents=True, exist_ok=True)
    browser.get(pages[0])
    assert browser.save_screenshot(str(folder / "screenshot.png"))
    richest = max(reports, key=lambda url: reports[url]["images"])
    browser.get(richest)
    assert browser.save_screenshot(str(folder / "screenshot-figures.png"))
    assert (folder / "screenshot.png").stat().st_size > 1000
