"""/docs (Swagger UI) and /redoc (ReDoc) of a real server process with API keys on, in
headless Chromium that can reach nothing but that server: every operation renders,
and every request the pages made went to the server.

Chromium is Debian's package (scripts/ensure-chromium, run by `make test`), driven by
Playwright over its own protocol; Playwright's browser download is never used. Host
names resolve to nothing (--host-resolver-rules) and any request the page starts for
another address is aborted and makes the test fail; requests that Chromium itself
refused under the pages' Content-Security-Policy (ReDoc's footer logo) never leave it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
    Route,
    expect,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

from tests.harness import Server
from tests.harness.http import HTTP
from tests.integration.conftest import API_KEYS
from tests.unit.test_docs_offline import foreign_urls

pytestmark = pytest.mark.integration

KEY = API_KEYS["docs"]
TIMEOUT_MS = 60_000  # a loaded 2-core machine; every wait is for a condition, not a time
BLOCKED_BY_BROWSER = {"csp", "net::ERR_BLOCKED_BY_CSP"}


def chromium() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if path:
        return path
    reason = "no chromium on PATH: scripts/ensure-chromium installs it (make test runs it)"
    if os.environ.get("CI", "").lower() in {"1", "true"}:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def server(keyed_server: tuple[str, Server]) -> str:
    """The session's server with keys, KEY among them."""
    return keyed_server[0]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium()
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable,
            # Chromium will not start sandboxed as root; as any other user keep the sandbox
            chromium_sandbox=os.geteuid() != 0,
            args=["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
        )
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Visit:
    page: Page
    server: str
    requests: list[Request] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def ours(self, url: str) -> bool:
        return url.startswith((f"{self.server}/", f"blob:{self.server}/", "data:"))

    def check_confined(self) -> None:
        """Every request went to the server, but for those the browser refused itself."""
        refused = []
        for request in self.requests:
            if not self.ours(request.url):
                failure = request.failure
                assert failure in BLOCKED_BY_BROWSER, (
                    f"the page requested {request.url} (failure: {failure})"
                )
                refused.append(request.url)
        errors = [e for e in self.console_errors if not any(url in e for url in refused)]
        assert errors == [] and self.page_errors == [], (errors, self.page_errors)

    def fetched(self, path: str) -> bool:
        return any(r.url == f"{self.server}{path}" and r.failure is None for r in self.requests)


@pytest.fixture
def visit(browser: Browser, server: str) -> Iterator[Visit]:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    seen = Visit(page, server)

    def route(route: Route) -> None:
        if seen.ours(route.request.url):
            route.continue_()
        else:
            route.abort("blockedbyclient")

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            seen.console_errors.append(message.text)

    context.route("**/*", route)
    page.on("request", lambda request: seen.requests.append(request))
    page.on("console", console)
    page.on("pageerror", lambda error: seen.page_errors.append(str(error)))
    try:
        yield seen
    finally:
        context.close()


def operations(server: str) -> list[tuple[str, str, str]]:
    """(method, path, operationId) of every documented operation."""
    spec = HTTP.get(f"{server}/openapi.json", timeout=60).json()
    return [
        (method, path, operation["operationId"])
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_pages_name_no_other_host(server: str, path: str) -> None:
    r = HTTP.get(f"{server}{path}", timeout=60)
    assert r.status_code == 200
    assert foreign_urls(r.text, server) == []
    assert "default-src 'self'" in r.headers["content-security-policy"]


def test_swagger_ui_renders_every_operation(visit: Visit) -> None:
    page, expected = visit.page, operations(visit.server)
    assert ("post", "/v1/sessions") in {(m, p) for m, p, _ in expected}
    page.goto(f"{visit.server}/docs")  # returns once the page and its assets are loaded
    visit.check_confined()
    for method, path in (("post", "/v1/sessions"), ("get", "/v1/models")):
        summary = page.locator(f'.opblock-{method} .opblock-summary-path[data-path="{path}"]')
        expect(summary).to_be_visible()
    expect(page.locator(".opblock")).to_have_count(len(expected))
    assert visit.fetched("/openapi.json")

    # "Try it out" calls the server from the page: an open path needs no key
    healthz = page.locator('.opblock-get:has(.opblock-summary-path[data-path="/healthz"])')
    healthz.locator(".opblock-summary").click()
    healthz.get_by_role("button", name="Try it out").click()
    healthz.get_by_role("button", name="Execute").click()
    status = healthz.locator(".live-responses-table .response .response-col_status")
    expect(status).to_have_text("200")
    visit.check_confined()


def test_the_docs_page_can_call_the_api_with_a_key(visit: Visit) -> None:
    """What "Try it out" sends for a POST: the page's own Origin, which BrowserGuard
    trusts for a same-origin page, and the key, which ApiKeyAuth wants."""
    visit.page.goto(f"{visit.server}/docs")
    call = """async ([key, body]) => {
        const r = await fetch("/v1/sessions", {method: "POST", body,
            headers: {"X-API-Key": key, "Content-Type": "application/json"}});
        return [r.status, await r.text()];
    }"""
    status, text = visit.page.evaluate(call, [KEY, '{"model": "memory"}'])
    assert status == 201, text
    status, _ = visit.page.evaluate(call, ["not-the-key-0123456789abcdef", "{}"])
    assert status == 401
    assert [e for e in visit.console_errors if "401" in e] == visit.console_errors != []
    visit.console_errors.clear()  # the 401 was the point
    visit.check_confined()


def test_redoc_renders_every_operation(visit: Visit) -> None:
    page, expected = visit.page, operations(visit.server)
    ids = {(method, path): operation_id for method, path, operation_id in expected}
    create, listing = ids["post", "/v1/sessions"], ids["get", "/v1/models"]
    page.goto(f"{visit.server}/redoc")
    visit.check_confined()
    # ReDoc shows its own error page when it cannot use the schema: stop waiting then
    failed = page.get_by_role("heading", name="Something went wrong")
    first = page.locator(f'[data-section-id$="/operation/{create}"] h2')
    expect(first.or_(failed).first).to_be_visible()
    assert not failed.is_visible(), page.locator("redoc").inner_text()
    expect(page.locator(f'[data-section-id$="/operation/{listing}"] h2')).to_be_visible()
    sections = page.locator('[data-section-id^="tag/"][data-section-id*="/operation/"]')
    expect(sections).to_have_count(len(expected))
    rendered = sections.evaluate_all("els => els.map(e => e.dataset.sectionId.split('/').pop())")
    assert sorted(rendered) == sorted(operation_id for _, _, operation_id in expected)
    section = page.locator(f'[data-section-id$="/operation/{create}"]')
    expect(section.locator(".http-verb.post").first).to_be_attached()
    assert visit.fetched("/openapi.json")
    visit.check_confined()


def test_a_page_that_loads_from_elsewhere_fails_the_check(visit: Visit) -> None:
    """The check itself: a request to another host is caught, not silently dropped."""
    visit.page.goto(f"{visit.server}/openapi.json")  # a page without the docs' policy
    with pytest.raises(PlaywrightError):
        visit.page.evaluate("fetch('http://203.0.113.7/x.js')")
    with pytest.raises(AssertionError, match="203.0.113.7"):
        visit.check_confined()
