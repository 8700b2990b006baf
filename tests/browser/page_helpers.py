"""The page in a headless chromium: start it with the performance log on, fill forms, wait for answers."""
from __future__ import annotations

import base64
import json
from pathlib import Path

DESKTOP = (1280, 900)
DENSE = {"cacm-ivf8-flat": "IVF8,Flat", "cacm-ivf8-pq8x4": "IVF8,PQ8x4"}  # the dense bundles served: name -> factory


def make_driver(paths: tuple[str, str], size: tuple[int, int] = DESKTOP):
    """Headless chromium with the performance log on (every request the page makes is recorded)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = paths[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
                "--disable-extensions", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-default-apps", "--force-color-profile=srgb", "--hide-scrollbars",
                f"--window-size={size[0]},{size[1]}", "--lang=en-US"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(paths[1]), options=opts)
    driver.set_page_load_timeout(30)
    return driver


class Page:
    """The page in one browser: open it, fill forms, wait for a mode's answer, read what it shows."""

    def __init__(self, driver, url: str, shots: Path):
        self.driver, self.url, self.shots = driver, url, shots
        self.requests: list[str] = []

    def open(self, mode: str = "search", key: str | None = None) -> Page:
        """Load the page in `mode` (with `key` put in sessionStorage first) and wait until it listed the indexes."""
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.get(f"{self.url}/#{mode}")
        self.driver.execute_script("sessionStorage.clear(); if (arguments[0]) sessionStorage.setItem('rkd.apiKey', "
                                   "arguments[0]);", key)
        self.driver.refresh()
        WebDriverWait(self.driver, 20).until(lambda d: d.execute_script("return document.body.dataset.ready"))
        return self

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def type(self, css: str, text: str) -> None:
        box = self.find(css)
        box.clear()
        box.send_keys(text)

    def mode(self, mode: str) -> None:
        """Switch mode as a user does: click the mode's label."""
        self.find(f"input[name=mode][value={mode}]").find_element("xpath", "..").click()

    def submit(self, css: str, section: str, timeout: float = 30.0) -> str:
        """Press Enter in the field `css`; wait until the section's answer is in; return its status."""
        from selenium.webdriver.common.keys import Keys
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.execute_script("document.getElementById(arguments[0]).dataset.status = ''", section)
        self.find(css).send_keys(Keys.ENTER)
        wait = WebDriverWait(self.driver, timeout)
        return wait.until(lambda d: d.execute_script(
            "const s = document.getElementById(arguments[0]).dataset.status; return s === 'done' || s === "
            "'error' ? s : null", section))

    def alert(self) -> str:
        """Text of the error box ("" while hidden)."""
        box = self.find("#error")
        return box.text if box.is_displayed() else ""

    def shot(self, name: str, max_height: int = 1200) -> Path:
        """PNG of the page from its top, as tall as its content up to `max_height` CSS pixels."""
        width, height = self.driver.execute_script(
            "window.scrollTo(0, 0); const e = document.documentElement; return [e.clientWidth, e.scrollHeight]")
        clip = {"x": 0, "y": 0, "width": width, "height": min(height, max_height), "scale": 1}
        data = self.driver.execute_cdp_cmd("Page.captureScreenshot",
                                           {"format": "png", "captureBeyondViewport": True, "clip": clip})
        path = self.shots / f"{name}.png"
        path.write_bytes(base64.b64decode(data["data"]))
        _palette(path)
        return path

    def drain_requests(self) -> list[str]:
        """URLs of every request the page sent since the last call (Network.requestWillBeSent)."""
        urls = []
        for entry in self.driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg.get("method") == "Network.requestWillBeSent":
                urls.append(msg["params"]["request"]["url"])
        self.requests += urls
        return urls


def open_browser(chrome_paths, url: str, shots: Path):
    """A Page in a fresh headless browser (the caller quits `page.driver`)."""
    return Page(make_driver(chrome_paths), url, shots)


def _palette(path: Path) -> None:
    """Rewrite a screenshot as a 256-colour PNG (about a third of the bytes; text stays sharp: no dithering)."""
    from PIL import Image

    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(path, optimize=True)
