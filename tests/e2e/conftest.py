"""Browser tests: Playwright for Python driving Debian's Chromium against a live portal and the sandbox."""

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", "screenshots"))
# Playwright's sync API runs an event loop in this thread; the live server's database is reached from it.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
            # On one xdist worker (make test's --dist loadgroup): one Chromium, not one per worker.
            item.add_marker(pytest.mark.xdist_group("browser"))


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("REQUIRE_BROWSER"):
            pytest.fail(f"Chromium is required but missing at {CHROMIUM} (apt-get install -y chromium)")
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-quic",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    console_errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
    page.console_errors = console_errors
    yield page
    context.close()


@pytest.fixture
def portal(live_server, sandbox, settings):
    """The live portal with the demo data of `make run`, signed in through the real form."""
    from vms.demo_data import demo_data_create

    demo_data_create(sandbox_url=sandbox.url, password="demo-password-1")
    return live_server


def sign_in(page, portal, username="alice", password="demo-password-1"):  # noqa: S107
    page.goto(f"{portal.url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{portal.url}/")


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(autouse=True)
def _audit_triggers_around_flush(audit_triggers_lifted_for_flush):
    """Browser tests commit for real: see audit_triggers_lifted_for_flush."""


@pytest.fixture(autouse=True)
def _deletion_jobs_inline():
    """Browser tests run bulk deletion jobs in real threads, as production does (tests/conftest.py runs
    them inline elsewhere)."""
