"""The docs page in a real headless Chromium: Swagger UI renders, and its examples predict.

Chromium and its driver are Debian's (`apt-get install chromium chromium-driver`), named by
path so that Selenium Manager never runs: nothing is downloaded. The page must work offline,
so every request it makes has to go to the server under test.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from testkit.processes import Server

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# As root and offline: without the background-networking flags Chromium keeps calling home,
# and the closed network refuses it.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1024",
)
DEADLINE = 20.0
# Found by method and path, not by Swagger UI's generated id, which changes with tags.
PREDICT = '.opblock-post:has(.opblock-summary-path[data-path="/predict"])'
LIVE_STATUS = f"{PREDICT} .live-responses-table tr.response .response-col_status"
LIVE_BODY = f"{PREDICT} .live-responses-table tr.response .highlight-code code"
NO_NETWORK = ("data", "blob", "chrome", "chrome-untrusted")  # inline data; Chromium's own pages


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    """Headless Chromium with a fresh profile, logging every network request of its pages."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        reason = f"{' and '.join(missing)} missing: apt-get install chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI installs them (.ci/run): never skip there
        pytest.skip(reason)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        driver = webdriver.Chrome(options, Service(executable_path=str(CHROMEDRIVER)))
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture(params=["gunicorn_server", "function_server"])
def server(request: pytest.FixtureRequest) -> Server:
    """Each real target: the service under gunicorn, and the function under functions-framework."""
    target: Server = request.getfixturevalue(request.param)
    return target


def requested_urls(driver: webdriver.Chrome) -> list[str]:
    """The URLs of every request sent since the last call (the log is drained as it is read)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def execute(driver: webdriver.Chrome, wait: WebDriverWait[webdriver.Chrome], key: str) -> Any:
    """Click Execute and return the live response's JSON body, once it has `key` and a 200.

    Waiting for the key, quoted, tells the new response from the one shown before it.
    """
    driver.find_element(By.CSS_SELECTOR, f"{PREDICT} .btn.execute").click()
    wait.until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, LIVE_BODY), f'"{key}"'),
        f"no {key} in the live response",
    )
    assert driver.find_element(By.CSS_SELECTOR, LIVE_STATUS).text == "200"
    return json.loads(
        driver.find_element(By.CSS_SELECTOR, LIVE_BODY).get_attribute("textContent") or ""
    )


def test_docs_page_executes_the_examples(browser: webdriver.Chrome, server: Server) -> None:
    origin = f"http://127.0.0.1:{server.port}"
    wait = WebDriverWait(browser, DEADLINE)
    requested_urls(browser)  # forget what earlier pages requested
    browser.get(f"{origin}/docs")

    operation = wait.until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, PREDICT)), "POST /predict not rendered"
    )
    operation.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
    try_out = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, f"{PREDICT} .try-out__btn")))
    if try_out.text == "Try it out":  # tryItOutEnabled opens it already, with a Cancel button
        try_out.click()
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, f"{PREDICT} .btn.execute")))
    assert set(execute(browser, wait, "prediction")) == {"prediction"}  # the default: one

    examples = Select(operation.find_element(By.CSS_SELECTOR, "select.examples-select-element"))
    examples.select_by_value("batch")
    assert len(execute(browser, wait, "predictions")["predictions"]) == 2

    urls = requested_urls(browser)
    assert f"{origin}/predict?probabilities=false" in urls  # the log did record the page's calls
    elsewhere = [
        url
        for url in urls
        if urlsplit(url).scheme not in NO_NETWORK and not url.startswith(f"{origin}/")
    ]
    assert elsewhere == [], "the page must work offline"
    errors = [
        entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"
    ]
    assert errors == []
