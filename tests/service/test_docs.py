"""Issue 20: /docs works offline: their pages name only the service's own files, and
the service serves those files (from the installed fastapi-offline package). The headless
browser check is in test_browser.py."""

from __future__ import annotations

import re
from typing import Any

import pytest


@pytest.mark.parametrize("page", ["/docs"])
def test_docs_pages_name_only_local_files(make_client: Any, page: str) -> None:
    client = make_client()
    html = client.get(page)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert not re.search(r"(https?:)?//[a-z]", html.text), "an absolute URL: not offline"
    assets = re.findall(r'(?:src|href)="(/[^"]+)"', html.text)
    assert assets and all(a.startswith("/docs-assets/") for a in assets), assets
    for asset in assets:
        got = client.get(asset)
        assert got.status_code == 200 and len(got.content) > 100, asset
    if page == "/docs":
        assert '"validatorUrl": null' in html.text  # no call to swagger.io's validator
        assert "url: '/openapi.json'" in html.text


def test_docs_without_the_package_say_what_to_install(
    make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import service.docs_ui

    monkeypatch.setattr(service.docs_ui, "assets_folder", lambda: None)
    resp = make_client().get("/docs")
    assert resp.status_code == 503 and "pip install 'floss[serve]'" in resp.text
    assert "//" not in resp.text.replace("</", "")


def test_no_page_loads_from_a_cdn(make_client: Any) -> None:
    """ReDoc's page fetches its logo from a CDN: the service does not offer it."""
    assert make_client().get("/redoc").status_code == 404
