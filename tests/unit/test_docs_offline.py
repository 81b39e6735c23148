"""/docs and /redoc name no host but the server's own, their assets are served from the
installed package, and with API keys on they stay open (and open nothing else)."""

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.sessions.memory import MemorySessionStore
from tests import fakes

pytestmark = pytest.mark.unit

KEY = "alice-key-0123456789abcdef"
URL = re.compile(r"""https?://[^\s"'<>()]*""", re.IGNORECASE)
LINKED = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
PAGES = {
    "/docs": ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"),
    "/redoc": ("redoc.standalone.js", "favicon.png"),
}


def foreign_urls(html: str, server: str) -> list[str]:
    """Every absolute http(s) URL in the page that does not point at `server`."""
    return [url for url in URL.findall(html) if not url.startswith(server.rstrip("/") + "/")]


@pytest.fixture
def keyed() -> Iterator[TestClient]:
    settings = Settings(api_keys=f"alice:{KEY}")
    app = create_app(settings, registry=fakes.registry(), store=MemorySessionStore(60, 10))
    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize("page", sorted(PAGES))
def test_page_names_no_other_host_and_its_assets_are_served(keyed: TestClient, page: str) -> None:
    r = keyed.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert foreign_urls(r.text, str(keyed.base_url)) == []
    assert "fonts.googleapis" not in r.text and "cdn." not in r.text
    linked = LINKED.findall(r.text)
    assert sorted(linked) == sorted(f"/docs/assets/{name}" for name in PAGES[page])
    for path in linked:
        asset = keyed.get(path)  # no key: as open as the page
        assert asset.status_code == 200 and len(asset.content) > 1000, path
    assert "/openapi.json" in r.text


def test_assets_prefix_opens_files_only(keyed: TestClient) -> None:
    assert keyed.get("/docs/oauth2-redirect").status_code == 200
    assert keyed.get("/openapi.json").status_code == 200
    for path in (
        "/docs/assets/%2e%2e/%2e%2e/v1/models",
        "/docs/assets/..%2f..%2fv1%2fmodels",
        "/docs/assets/%2e%2e/core.py",  # the package's code, beside its static folder
        "/docs/assets/no-such.js",
    ):
        assert keyed.get(path).status_code == 404, path
    assert keyed.get("/v1/models").status_code == 401
    assert keyed.get("/v1/models", headers={"X-API-Key": KEY}).status_code == 200


def test_foreign_urls_finds_other_hosts() -> None:
    html = (
        '<link href="https://fonts.googleapis.com/css?family=Roboto">'
        "<script src='http://127.0.0.1:9/x.js'></script><a href=\"http://testserver/docs\">"
    )
    assert foreign_urls(html, "http://testserver") == [
        "https://fonts.googleapis.com/css?family=Roboto",
        "http://127.0.0.1:9/x.js",
    ]
