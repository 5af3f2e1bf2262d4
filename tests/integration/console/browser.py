"""A real headless Chromium (Debian's chromium + chromium-driver) driven by Selenium, for the console's tests.

No browser is downloaded: the binaries come from Debian (``scripts/setup.sh``
installs them). The console's certificate comes from a throw-away local CA;
Chromium is told to trust exactly that certificate's key
(``--ignore-certificate-errors-spki-list``), not to ignore certificate errors.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from ..support import REPO

SCREENSHOTS = REPO / ".run" / "console-screenshots"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
    "--lang=zh-CN",
)


def spki_hash(cert: Path) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)) of a PEM certificate, as Chromium's SPKI list wants it."""
    pub = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-pubkey"], capture_output=True, check=True
    ).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True, check=True)
    return base64.b64encode(hashlib.sha256(der.stdout).digest()).decode()


def chromium(profile: Path, cert: Path):  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        pytest.fail("Debian's chromium and chromium-driver are needed: run scripts/setup.sh", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--ignore-certificate-errors-spki-list={spki_hash(cert)}"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    browser.set_page_load_timeout(60)
    return browser


def screenshot(browser, name: str) -> Path:  # type: ignore[no-untyped-def]
    """The whole page (not only the window) as .run/console-screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, max(700, min(int(height) + 40, 4000)))
    path = SCREENSHOTS / f"{name}.png"
    browser.save_screenshot(str(path))
    browser.set_window_size(1280, 900)
    return path
