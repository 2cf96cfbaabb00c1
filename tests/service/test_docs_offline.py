"""`/docs` and `/redoc` load everything from this server: no CDN, so they work offline.

Each page is parsed for every URL it makes the browser load (scripts, stylesheets, icons, the
OpenAPI document the inline script names); each must be a path on this server and answer 200 with
the content type a browser accepts for it.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
    ".json": ("application/json",),
}


class _References(HTMLParser):
    """Collects the URLs a page loads: script src, link href, and the spec URLs of its
    inline scripts (Swagger UI's `url: '...'`) and of ReDoc's `spec-url` attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self._in_script = True
        for name in ("src", "href", "spec-url"):
            if values.get(name) and tag in ("script", "link", "redoc", "img"):
                self.urls.append(values[name] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.urls.extend(re.findall(r"\burl:\s*'([^']+)'", data))


def references(html: str) -> list[str]:
    """Every URL the page loads, in document order."""
    parser = _References()
    parser.feed(html)
    return parser.urls


@pytest.mark.parametrize(
    ("page", "needed"),
    [
        ("/docs", {".js", ".css", ".json"}),
        ("/redoc", {".js", ".json"}),
    ],
)
def test_docs_pages_load_only_local_assets(client: TestClient, page: str, needed: set) -> None:
    response = client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    urls = references(response.text)
    kinds = {"." + url.rsplit(".", 1)[-1] for url in urls}
    assert needed <= kinds, urls
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and url.startswith("/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        suffix = "." + parts.path.rsplit(".", 1)[-1]
        assert asset.headers["content-type"].split(";")[0] in CONTENT_TYPES[suffix], url
        assert len(asset.content) > 1000, url  # the real bundle, not an empty placeholder


def test_the_swagger_bundle_is_a_real_swagger_ui(client: TestClient) -> None:
    html = client.get("/docs").text
    script = next(u for u in references(html) if u.endswith(".js"))
    assert "SwaggerUIBundle" in client.get(script).text
