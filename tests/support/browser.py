"""Browser tests: pytest-playwright's fixtures on Debian's Chromium, against the real daphne.

Loaded for the whole suite by ``tests/conftest.py``. Playwright cannot download its own browsers
here, so ``browser`` launches ``/usr/bin/chromium`` (``apt-get install chromium``); without it
browser tests are skipped, or fail when ``CI`` is set. Contexts open at 1440×900 with the
``asgi_server`` as base URL, so ``page.goto("/admin/")`` works. Uncaught JavaScript errors and
Content-Security-Policy violations (a script, style, image or connection the policy refused,
which Chromium reports on the console) in any page fail the test; other console errors are
collected (``browser_errors``) and reported. Browser
tests need ``@pytest.mark.django_db(transaction=True)``: the server reads what the test commits.

Playwright's sync API runs an event loop of its own in this thread and leaves it marked as
running between calls, which pytest-asyncio (``Runner.run()``) and Django's async-safety check
refuse. So that loop is marked running only from the setup to the teardown of a test that uses
Playwright. Such a test may use the ORM directly (``DJANGO_ALLOW_ASYNC_UNSAFE`` is set for it
alone), but while the loop is marked Django gives it database connections of its own (closed at
its end), which see only committed data: hence ``transaction=True``. ``async_to_sync`` cannot
be called in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    ViewportSize,
    WebError,
    expect,
)

from apps.accounts.models import Role
from tests.support.factories import user_create
from tests.support.processes import REPO_ROOT, AsgiServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium dials out at start, and this machine's closed network refuses it.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT_DIR = REPO_ROOT / "var" / "screenshots"
DESKTOP: ViewportSize = {"width": 1440, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
PASSWORD = "browser-test-password"
EXPECT_TIMEOUT_MS = 15_000
CSP_VIOLATION = "Content Security Policy"  # in every refusal Chromium logs


def pytest_configure(config: pytest.Config) -> None:
    # Raised by pytest-playwright's own base_url fixture; ours is set in browser_context_args.
    deprecated = "Session-scoped fixtures defined as instance methods"
    warning = "pytest.PytestRemovedIn10Warning"
    config.addinivalue_line("filterwarnings", f"ignore:{deprecated}:{warning}")
    # A page's answer may wait on a Celery worker and the fake upstream on 2 loaded cores (CI):
    # expectations wait up to 15 s instead of Playwright's 5, and pass as soon as they hold.
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use Playwright get the ``browser`` marker (``-m "not browser"``)."""
    for item in items:
        if "playwright" in getattr(item, "fixturenames", ()):
            item.add_marker("browser")


# --- Playwright's event loop ---------------------------------------------------------------


class PlaywrightLoop:
    """Playwright's event loop, marked running in this thread only while Playwright is used."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        previous = asyncio._get_running_loop()
        if previous not in (None, self.loop):
            raise RuntimeError("Playwright's sync API cannot run inside another event loop")
        asyncio._set_running_loop(self.loop)
        try:
            yield
        finally:
            asyncio._set_running_loop(previous)


playwright_loop = PlaywrightLoop()


@pytest.fixture(scope="session")
def playwright(playwright):
    """pytest-playwright's, with its event loop no longer marked running once it started."""
    playwright_loop.loop = asyncio._get_running_loop()
    assert playwright_loop.loop is not None, "Playwright started without its event loop"
    asyncio._set_running_loop(None)
    yield playwright
    # pytest-playwright stops Playwright next, which runs the loop to its end and unmarks it.
    asyncio._set_running_loop(playwright_loop.loop)


@pytest.fixture(autouse=True)
def _playwright_loop_running(request: pytest.FixtureRequest) -> Iterator[None]:
    if "playwright" not in request.fixturenames:
        yield
        return
    if inspect.iscoroutinefunction(getattr(request, "function", None)):
        message = "browser tests use Playwright's sync API: write them as plain `def` tests"
        pytest.fail(message, pytrace=False)
    if _rolls_back(request):
        pytest.fail(
            "browser tests need @pytest.mark.django_db(transaction=True): the server and the "
            "test's own connections see only committed data, and nothing would roll it back",
            pytrace=False,
        )
    with pytest.MonkeyPatch.context() as patch, playwright_loop.running():
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        try:
            yield
        finally:
            # The connections Django opened while the loop was marked, or they would outlive
            # the test database.
            connections.close_all()


def _rolls_back(request: pytest.FixtureRequest) -> bool:
    """Whether the test's database access is wrapped in a transaction rolled back at its end."""
    if "transactional_db" in request.fixturenames:
        return False
    marker = request.node.get_closest_marker("django_db")
    if marker is not None:
        return not (marker.args[0] if marker.args else marker.kwargs.get("transaction", False))
    return "db" in request.fixturenames


# --- The browser ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict, browser_name: str) -> dict:
    """pytest-playwright's options (``--headed``, ``--slowmo``) on Debian's Chromium."""
    if browser_name != "chromium":
        pytest.skip(f"only Debian's chromium is installed here, not {browser_name}")
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium (Debian's package)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI installs it in .ci/run", pytrace=False)
        pytest.skip(message)
    headless = browser_type_launch_args.get("headless", True)
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "args": [*(["--headless"] if headless else []), *CHROMIUM_ARGS],
    }


@pytest.fixture(scope="session")
def browser(launch_browser: Callable[..., Browser]) -> Iterator[Browser]:
    """Chromium for the whole session (pytest-playwright's, launched from ``/usr/bin``)."""
    with playwright_loop.running():
        launched = launch_browser()
    yield launched
    with playwright_loop.running():
        launched.close()


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict, asgi_server: AsgiServer) -> dict:
    """Contexts open at the desktop size, and relative URLs go to the session's daphne."""
    return {**browser_context_args, "viewport": DESKTOP, "base_url": asgi_server.url}


# --- Errors in the page --------------------------------------------------------------------


@dataclass
class BrowserErrors:
    """What the pages of a test's browser contexts reported."""

    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)

    def watch(self, context: BrowserContext) -> BrowserContext:
        context.on("weberror", self._on_page_error)
        context.on("console", self._on_console)
        return context

    def _on_page_error(self, web_error: WebError) -> None:
        url = web_error.page.url if web_error.page else "?"
        self.page_errors.append(f"{url}: {web_error.error.name}: {web_error.error.message}")

    def _on_console(self, message: ConsoleMessage) -> None:
        where = message.location.get("url") or (message.page.url if message.page else "?")
        if message.type == "error":
            self.console_errors.append(f"{where}: {message.text}")
            if CSP_VIOLATION in message.text:
                self.csp_violations.append(f"{where}: {message.text}")


_errors_key = pytest.StashKey[BrowserErrors]()


@pytest.fixture
def browser_errors(request: pytest.FixtureRequest) -> BrowserErrors:
    """This test's page errors (they fail it) and console errors (shown in its report)."""
    errors = request.node.stash[_errors_key] = BrowserErrors()
    return errors


@pytest.fixture
def new_context(new_context: Callable[..., BrowserContext], browser_errors: BrowserErrors):
    """pytest-playwright's, with every context watched for errors; ``context``/``page`` use it."""

    def make(**kwargs: Any) -> BrowserContext:
        return browser_errors.watch(new_context(**kwargs))

    return make


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    try:
        result = yield
    finally:
        errors = item.stash.get(_errors_key, None) or BrowserErrors()
        for title, lines in (
            ("browser page errors", errors.page_errors),
            ("browser console errors", errors.console_errors),
            ("Content-Security-Policy violations", errors.csp_violations),
        ):
            if lines:
                item.add_report_section("call", title, "\n".join(lines))
    if errors.page_errors:
        listed = "\n".join(f"  {error}" for error in errors.page_errors)
        pytest.fail(f"uncaught JavaScript errors in the page:\n{listed}", pytrace=False)
    if errors.csp_violations:
        listed = "\n".join(f"  {violation}" for violation in errors.csp_violations)
        pytest.fail(f"the Content-Security-Policy refused:\n{listed}", pytrace=False)
    return result


# --- People and screenshots ----------------------------------------------------------------


def person_create(
    *, role: Role | None = Role.VIEWER, staff: bool = False, username: str | None = None
) -> User:
    """A user who logs in with ``PASSWORD``; ``staff`` users may open the Django admin."""
    user = user_create(role=role, username=username)
    user.set_password(PASSWORD)
    user.is_staff = staff
    user.save(update_fields=["password", "is_staff"])
    return user


@pytest.fixture
def logged_in_page(
    new_context: Callable[..., BrowserContext], asgi_server: AsgiServer
) -> Callable[..., Page]:
    """``logged_in_page(Role.OPERATOR)``: a page of a new context whose session cookie belongs
    to a new user with that role (``staff=True`` to open the admin), or to ``user=``."""

    def make(
        role: Role | None = Role.VIEWER, *, staff: bool = False, user: User | None = None
    ) -> Page:
        user = user or person_create(role=role, staff=staff)
        client = Client()
        client.force_login(user)
        context = new_context()
        context.add_cookies(
            [
                {"name": morsel.key, "value": morsel.value, "url": asgi_server.url}
                for morsel in client.cookies.values()
            ]
        )
        return context.new_page()

    return make


def screenshot(page: Page, name: str) -> tuple[Path, Path]:
    """Full-page ``var/screenshots/<name>-desktop.png`` (1440×900) and ``<name>-phone.png``
    (390×844) of the page as it is now. The phone one resizes this page, without the mobile and
    touch emulation that only a new context has: reloading the URL there would lose what the
    test did (a posted form, an open dialog)."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size or DESKTOP
    paths = []
    for suffix, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(viewport)
        path = SCREENSHOT_DIR / f"{name}-{suffix}.png"
        page.screenshot(path=path, full_page=True, animations="disabled")
        paths.append(path)
    page.set_viewport_size(before)
    return paths[0], paths[1]
