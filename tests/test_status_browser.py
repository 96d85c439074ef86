"""The status page in a real headless browser (Debian's Chromium), when one is installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.podio.sync import sync_podio
from core.settings import load_settings
from jobs.service import Service
from sandbox.server import Sandbox
from scripts.status_screenshot import browse, chromium
from store.db import Database
from tests.test_serve_webhooks import TOKEN, free_port

pytestmark = pytest.mark.skipif(chromium() is None,
                                reason="Chromium not installed (apt-get install chromium)")


def test_status_page_renders_in_chromium(sandbox: Sandbox, tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/status.db")
    db.upgrade()
    env = {k.lower(): v for k, v in sandbox.env().items() if k.startswith("PODIO_")}
    settings = load_settings(**env, database_url=db.url, webhook_token=TOKEN,
                             sync_interval_seconds=3600, rules_interval_seconds=3600)
    sync_podio(settings, db)
    port = free_port()
    service = Service(settings, db, port=port).start()
    try:
        dom = browse(f"http://127.0.0.1:{port}/", tmp_path / "page.png", tmp_path / "profile")
    finally:
        service.shutdown()
    assert "<h1>saeko-sync — estado</h1>" in dom
    assert "<td>tickets</td>" in dom and "Webhooks" in dom
    assert (tmp_path / "page.png").stat().st_size > 10_000
