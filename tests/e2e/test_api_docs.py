"""``/api/docs/`` in a real headless Chromium on a machine with no internet: Swagger UI renders
the schema from assets the server itself serves (drf-spectacular-sidecar), and nothing on the
page comes from another origin (a CDN would leave it blank on a closed network)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ASSETS = """
return [
  ...Array.from(document.scripts, s => s.src).filter(Boolean),
  ...Array.from(document.querySelectorAll('link[href]'), l => l.href),
  ...performance.getEntriesByType('resource').map(r => r.name),
];
"""


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


def test_swagger_ui_renders_from_same_origin_assets_only(browser, live_server):
    browser.get(f"{live_server.url}/api/docs/")
    title = WebDriverWait(browser, 30).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, ".swagger-ui .info .title"))
    )
    assert title.text.startswith("Easel API")
    # The schema loaded and was drawn: an operation block per endpoint, generations among them.
    path = ".opblock-summary-path[data-path='/api/v1/generations']"
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.CSS_SELECTOR, path)))
    assets = browser.execute_script(ASSETS)
    assert any("swagger-ui-bundle.js" in url for url in assets), assets
    foreign = [url for url in assets if _origin(url) != _origin(live_server.url)]
    assert foreign == []
