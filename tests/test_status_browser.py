"""The status page in a real headless browser (Debian's Chromium), installed by the test
set-up where it is missing (as root with apt); skipped, with the reason, only when it
cannot be installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.podio.sync import sync_podio
from core.settings import load_settings
from jobs.service import Service
from sandbox.server import Sandbox
from scripts.status_screenshot import browse, ensure_chromium
from store.db import Database
from tests.test_serve_webhooks import TOKEN, free_port

STATUS_TOKEN = "navegador-" + "n" * 24


@pytest.fixture(scope="module", autouse=True)
def chromium_installed() -> None:
    found, why = ensure_chromium()
    if found is None:
        pytest.skip(why)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_status_page_renders_in_chromium(sandbox: Sandbox, db: Database, tmp_path: Path) -> None:
    env = {k.lower(): v for k, v in sandbox.env().items() if k.startswith("PODIO_")}
    settings = load_settings(**env, database_url=db.url, webhook_token=TOKEN,
                             status_token=STATUS_TOKEN, status_refresh_seconds=60,
                             sync_interval_seconds=3600, rules_interval_seconds=3600)
    sync_podio(settings, db)
    port = free_port()
    service = Service(settings, db, port=port).start()
    try:
        refused = browse(f"http://127.0.0.1:{port}/", None, tmp_path / "profile")
        dom = browse(f"http://127.0.0.1:{port}/?token={STATUS_TOKEN}", tmp_path / "page.png",
                     tmp_path / "profile")
    finally:
        service.shutdown()
    assert "Última sincronización" not in refused  # without the token: a login prompt only
    assert "<h1>saeko-sync — estado</h1>" in dom
    for heading in ("Última sincronización por flujo", "Escrito hoy por automatización",
                    "Webhooks", "Trabajos programados", "Cuotas de API"):
        assert f"<h2>{heading}</h2>" in dom, heading
    assert "<td>tickets</td>" in dom and "Hora local (America/Tijuana)" in dom
    assert "se actualiza cada 60 s" in dom and "Podio informa usuario de integración" in dom
    assert (tmp_path / "page.png").stat().st_size > 10_000
