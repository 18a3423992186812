"""Headless Chromium for page tests: Debian's `/usr/bin/chromium` driven by Playwright.

No browser is downloaded (`playwright install` is never run): Playwright's
Python package drives the system Chromium through `executable_path`. Chromium
runs headless with a fresh, throw-away profile and with the flags that keep it
off the network it cannot reach here (background networking, component
updates, sync and QUIC off). `make test` installs the `chromium` Debian package
(`make sysdeps`); Playwright comes with the `dev` extra.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("PONDER_CHROMIUM", "/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
VIEWPORT: Any = {"width": 1280, "height": 1000}
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "playground"


def require_browser() -> None:
    """Fail (not skip) with what to install when the browser cannot run: CI must run these tests."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: `make sysdeps` installs Debian's chromium package"
    try:
        import playwright  # noqa: F401
    except ImportError:
        raise AssertionError("playwright missing: `pip install -e .[dev]` installs it") from None


@contextlib.contextmanager
def chromium(viewport: Any = None) -> Iterator[Any]:
    """A Playwright BrowserContext in headless Chromium with a new empty --user-data-dir."""
    require_browser()
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="ponder-chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=list(FLAGS),
                viewport=viewport or VIEWPORT, timeout=60_000,
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@dataclass
class Console:
    """What a page reported: uncaught exceptions and console errors (a broken page shows here first)."""

    errors: list[str] = field(default_factory=list)

    def watch(self, page: Any) -> Any:
        def console(message: Any) -> None:
            if message.type == "error":
                self.errors.append(f"console: {message.text}")

        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("console", console)
        return page

    def unexpected(self, *allowed: str) -> list[str]:
        """Errors not containing any of `allowed` (e.g. the 401 a wrong-key test provokes)."""
        return [e for e in self.errors if not any(a in e for a in allowed)]


def screenshot(page: Any, name: str) -> Path:
    """Save a PNG of the page under artifacts/playground/ (git-ignored) and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
