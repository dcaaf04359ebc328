"""Take the README's screenshot of the admin instance page against a real run of the example:

    python -m testproject.example.screenshot [OUTPUT.png]

Starts ``manage.py runserver`` and ``manage.py runworkflows`` on a SQLite file in a temporary
directory, places an order and approves it in headless Chromium (Debian's ``chromium`` and
``chromedriver``, through Selenium from the ``test`` extra), waits until it has shipped, logs in
to the admin and saves the order's instance page (default ``docs/images/admin-instance.png``).
Compress it afterwards, e.g. ``pngquant --force --output X.png X.png``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 60


def main() -> None:
    output = Path(sys.argv[1] if len(sys.argv) > 1 else REPO_ROOT / "docs" / "images" / "admin-instance.png")
    with tempfile.TemporaryDirectory(prefix="wf-screenshot-") as tmp:
        env = {
            **os.environ,
            "DB": "sqlite",
            "SQLITE_PATH": str(Path(tmp) / "example.sqlite3"),
            "DJANGO_SUPERUSER_PASSWORD": "operator-pw",
            "PYTHONUNBUFFERED": "1",
        }
        manage(env, "migrate", "-v0")
        manage(env, "createsuperuser", "--noinput", "--username", "operator", "--email", "operator@example.com")
        port = free_port()
        with open(Path(tmp) / "server.log", "wb") as log:
            processes = [
                subprocess.Popen(
                    [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                    cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                ),
                subprocess.Popen(
                    [sys.executable, "manage.py", "runworkflows"], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
                ),
            ]
            try:
                wait(lambda: can_connect(port), "runserver to listen")
                shoot(f"http://127.0.0.1:{port}", output, Path(tmp))
            finally:
                for process in processes:
                    process.terminate()
                for process in processes:
                    process.wait(30)
    print(f"saved {output}")


def shoot(base: str, output: Path, tmp: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     f"--user-data-dir={tmp / 'profile'}", "--window-size=1280,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(f"{base}/orders/")
        driver.find_element("name", "item").send_keys("teapot")
        quantity = driver.find_element("name", "quantity")
        quantity.clear()
        quantity.send_keys("2")
        driver.find_element("css selector", "button.primary").click()
        approve = wait(lambda: driver.find_elements("css selector", "button[value=approve]"), "the approval buttons")
        order_url = driver.current_url
        approve[0].click()
        wait(lambda: status(driver) == "Shipped", "the order to ship")

        driver.get(f"{base}/admin/login/?next=/admin/")
        driver.find_element("name", "username").send_keys("operator")
        driver.find_element("name", "password").send_keys("operator-pw")
        driver.find_element("css selector", "input[type=submit]").click()
        wait(lambda: "/admin/login/" not in driver.current_url, "the admin login")
        driver.get(order_url)
        driver.find_element("id", "admin-link").click()
        wait(lambda: driver.find_elements("id", "wf-outcome"), "the admin instance page")
        output.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(output))
    finally:
        driver.quit()
        shutil.rmtree(tmp / "profile", ignore_errors=True)


def status(driver: Any) -> str:
    try:
        return str(driver.find_element("id", "status").text)
    except Exception:  # the page is reloading
        return ""


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, check=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def can_connect(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"timed out after {WAIT_SECONDS} s waiting for {what}")


if __name__ == "__main__":
    main()
