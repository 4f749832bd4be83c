"""Real-browser tests: Debian's headless Chromium driven by Playwright for Python (no browser download).

One Chromium process serves the whole session (started here with a DevTools port); each test connects
Playwright to it on the test's own event loop (pytest-asyncio runs every test and fixture on a per-test
loop, and Playwright's async objects belong to the loop that made them) and gets a fresh, isolated browser
context: no cookies or storage leak between tests.

Chromium comes from the `chromium` Debian package (`make test` installs it when missing). Locally a machine
without it skips these tests; with CI=true it fails them, like PostgreSQL and Rasa.

Helpers: `serve(app)` runs an aiohttp app on a real loopback port; the `shot` fixture saves a screenshot
under test-output/screenshots/; `assert_accessible(page)` runs axe-core in the page and fails on serious or
critical violations, listing them readably. A failing test's page is saved as `<test>-<viewport>-failed.png`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = Path(os.environ.get("MINHU_TEST_OUTPUT", ROOT / "test-output"))
SCREENSHOTS = OUTPUT / "screenshots"
# Flags for a closed network: without them Chromium keeps trying update, sync and QUIC connections.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORTS = {"desk": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
# The axe impacts a test fails on; "moderate" and "minor" are reported by axe but not failures here.
BLOCKING_IMPACTS = ("serious", "critical")
STARTUP_TIMEOUT = 30.0


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the browser tests need Chromium and Playwright in CI: {reason}", pytrace=False)
    pytest.skip(f"{reason}; CI runs these")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/browser is a browser test (`-m "not browser"` leaves them out)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test, so the page fixture knows whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def chromium_path() -> str | None:
    """MINHU_CHROMIUM if set, else Debian's `chromium` on PATH; None when it is not an executable."""
    return shutil.which(os.environ.get("MINHU_CHROMIUM") or "chromium")


@dataclass(frozen=True)
class Chromium:
    endpoint: str  # http://127.0.0.1:<port>, for Playwright's connect_over_cdp
    log: Path


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    """One headless Chromium for the session, listening for DevTools on a free loopback port."""
    executable = chromium_path()
    if executable is None:
        _unavailable("chromium is not installed (Debian: apt-get install chromium; `make test` does it)")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError as error:
        _unavailable(f"Playwright for Python is not installed ({error}); `make test` installs it")
    assert executable is not None
    profile = Path(tempfile.mkdtemp(prefix="minhu-chromium-"))
    OUTPUT.mkdir(parents=True, exist_ok=True)
    log = OUTPUT / "chromium.log"  # Chromium's own chatter (D-Bus and the like), kept off the terminal
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [
                executable,
                *CHROMIUM_ARGS,
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        # Chromium writes the port it picked to DevToolsActivePort in the profile once it listens.
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                _unavailable(f"{executable} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        yield Chromium(f"http://127.0.0.1:{port}", log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
async def browser(chromium: Chromium) -> AsyncIterator[Any]:
    """Playwright connected to the session's Chromium, on this test's event loop."""
    from playwright.async_api import async_playwright

    playwright = await async_playwright().start()
    try:
        connected = await playwright.chromium.connect_over_cdp(chromium.endpoint)
        yield connected
        await connected.close()  # disconnects; the session's Chromium goes on
    finally:
        await playwright.stop()


@pytest.fixture(params=list(VIEWPORTS))
def viewport(request: pytest.FixtureRequest) -> str:
    """desk (1280×800) or phone (390×844); a test runs at both unless it parametrizes `viewport` itself."""
    return str(request.param)


def _slug(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text).strip("_")


async def _screenshot(page: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture
def shot_prefix(request: pytest.FixtureRequest, viewport: str) -> str:
    return f"{_slug(request.node.originalname)}-{viewport}"


@pytest.fixture
async def page(
    browser: Any, viewport: str, shot_prefix: str, request: pytest.FixtureRequest
) -> AsyncIterator[Any]:
    """A page in a fresh browser context at the viewport's size, in Chinese, in Shanghai's time zone.
    A failing test leaves test-output/screenshots/<test>-<viewport>-failed.png."""
    context = await browser.new_context(
        viewport=VIEWPORTS[viewport], locale="zh-CN", timezone_id="Asia/Shanghai", accept_downloads=True
    )
    context.set_default_timeout(10_000)
    new_page = await context.new_page()
    try:
        yield new_page
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed and not new_page.is_closed():
            await _screenshot(new_page, SCREENSHOTS / f"{shot_prefix}-failed.png")
        await context.close()


Shot = Callable[[Any, str], Awaitable[Path]]


@pytest.fixture
def shot(shot_prefix: str) -> Shot:
    """`await shot(page, "queue")` saves a full-page screenshot as
    test-output/screenshots/<test>-<viewport>-queue.png."""

    async def save(page: Any, name: str) -> Path:
        return await _screenshot(page, SCREENSHOTS / f"{shot_prefix}-{_slug(name)}.png")

    return save


def describe_violations(violations: list[dict[str, Any]]) -> str:
    """axe's violations as lines a person can act on: rule, impact, what to do, where."""
    lines = []
    for violation in violations:
        lines.append(
            f"- {violation['id']} ({violation['impact']}): {violation['help']} — {violation['helpUrl']}"
        )
        for node in violation["nodes"][:5]:
            target = " ".join(str(t) for t in node.get("target", []))
            lines.append(f"    at {target}: {node.get('html', '')[:200]}")
            summary = (node.get("failureSummary") or "").replace("\n", " ")
            if summary:
                lines.append(f"      {summary[:300]}")
        if len(violation["nodes"]) > 5:
            lines.append(f"    … and {len(violation['nodes']) - 5} more")
    return "\n".join(lines)


async def accessibility_violations(page: Any) -> list[dict[str, Any]]:
    """Every axe-core violation on the page as it is now (axe.min.js shipped by axe-playwright-python,
    injected into the page: no network)."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    return list(results.response["violations"])


async def assert_accessible(page: Any) -> None:
    """Fail on any serious or critical axe violation, naming each one and where it is."""
    violations = await accessibility_violations(page)
    blocking = [v for v in violations if v["impact"] in BLOCKING_IMPACTS]
    assert not blocking, f"axe found serious/critical violations on {page.url}:\n" + describe_violations(
        blocking
    )


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Run the app on a free loopback port (a real server, as a browser needs); yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
