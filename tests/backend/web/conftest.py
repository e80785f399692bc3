"""Browser fixtures: headless Debian Chromium driven by Playwright, one page per test."""

from __future__ import annotations

import os

import pytest

from tests.support import WebServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (the system's, never a downloaded one)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run apt-get install -y chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh page (empty localStorage) at 1280x800; uncaught page errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def restart_web(tmp_path):
    """Factory: a new web process on a stopped one's port with its environment; stopped after the test."""
    servers: list[WebServer] = []

    def restart(old: WebServer) -> WebServer:
        env = {k: v for k, v in old.env.items() if k != "PORT"}
        server = WebServer(env, tmp_path, name=f"{old.name}-restarted{len(servers)}", port=old.port)
        servers.append(server)  # before start, so a failed start is still cleaned up
        return server.start()

    yield restart
    for server in servers:
        server.stop()
