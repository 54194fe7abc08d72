"""Headless Chromium for the browser tests (Debian's `chromium` and `chromium-driver`), driven by selenium.

A missing browser skips the test, except when $EX4_REQUIRE_BROWSER is set (CI installs it: a skip there would
hide a failure).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
         "--no-first-run", "--disable-component-update", "--disable-sync", "--window-size=1400,1000"]


def start_chromium(profile_dir: Path, with_logs: bool = False):
    """A selenium driver for headless Chromium with its own profile folder; `with_logs` keeps the console and
    network logs (`driver.get_log("browser")`, `"performance"`)."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing and os.environ.get("EX4_REQUIRE_BROWSER"):
        pytest.fail(f"EX4_REQUIRE_BROWSER is set but {' and '.join(missing)} is missing")
    if missing:
        pytest.skip(f"needs {' and '.join(missing)} (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    if with_logs:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    return driver
