"""A headless Chromium for browser tests: Debian's ``chromium`` and ``chromedriver`` through
Selenium, plus helpers to log in to the admin, wait for the page, and save screenshots for review
(``<artifacts>/admin/*.png``; ``tests.conftest.ARTIFACTS_DIR`` says where, outside the checkout)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import ARTIFACTS_DIR

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = ARTIFACTS_DIR / "admin"
#: Generous: a CI machine running two tox environments at once can be slow.
WAIT_SECONDS = 30


def missing_browser() -> str:
    """Why browser tests cannot run here, or "" when they can."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    if missing:
        return f"browser tests need Debian's chromium and chromium-driver; missing: {', '.join(missing)}"
    return ""


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium with a throw-away profile; quits and deletes the profile afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="wf-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_until(driver: Any, condition: Callable[[Any], Any], message: str = "", ignored: tuple[type[Exception], ...] = ()) -> Any:
    """Wait for ``condition``; an element the page replaced meanwhile (a refresh) is looked up again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    ignored = (StaleElementReferenceException, *ignored)
    return WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.1, ignored_exceptions=ignored).until(condition, message)


def open_page(driver: Any, url: str) -> None:
    driver.get(url)
    wait_until(driver, lambda d: d.execute_script("return document.readyState") == "complete", f"{url} to load")


def submit(driver: Any, element: Any) -> None:
    """Click a submit button (an element, or a CSS selector) and wait until the next page has
    loaded. Given a selector, the button is looked up at the click, again if the page replaced
    itself meanwhile (a page that reloads itself until something happens)."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.support import expected_conditions

    for attempt in range(5):
        old_page = driver.find_element("tag name", "html")
        try:
            (driver.find_element("css selector", element) if isinstance(element, str) else element).click()
            break
        except StaleElementReferenceException:
            if not isinstance(element, str) or attempt == 4:
                raise
    # While the old document is being replaced, Chromium sometimes answers a question about its
    # element with "unhandled inspector error" instead of "stale element": ask again.
    wait_until(driver, expected_conditions.staleness_of(old_page), "the form's response page", ignored=(WebDriverException,))
    wait_until(driver, lambda d: d.execute_script("return document.readyState") == "complete")


def log_in(driver: Any, base_url: str, username: str, password: str) -> None:
    driver.delete_all_cookies()
    open_page(driver, f"{base_url}/admin/login/?next=/admin/")
    driver.find_element("name", "username").send_keys(username)
    driver.find_element("name", "password").send_keys(password)
    submit(driver, driver.find_element("css selector", "input[type=submit]"))
    if "/admin/login/" in driver.current_url:
        raise AssertionError(f"login as {username} failed: {driver.find_element('tag name', 'body').text[:500]}")


def screenshot(driver: Any, name: str, full_page: bool = True) -> Path:
    """Save ``<name>.png``; ``full_page`` grows the window to the page's height first."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    size = driver.get_window_size()
    if full_page:
        height = driver.execute_script("return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)")
        driver.set_window_size(size["width"], min(max(int(height) + 120, size["height"]), 8000))
    try:
        driver.save_screenshot(str(path))
    finally:
        if full_page:
            driver.set_window_size(size["width"], size["height"])
    return path


def messages_shown(driver: Any) -> list[str]:
    """The texts of the admin's message list on the current page."""
    # textContent, not .text: the admin styles messages (capitalized first letter).
    return [item.get_attribute("textContent").strip() for item in driver.find_elements("css selector", "ul.messagelist li")]
