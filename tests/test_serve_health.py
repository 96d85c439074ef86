"""`serve`'s `/healthz` and `/readyz` over HTTP, as a monitor sees them: Podio failing
every sync cycle turns `/healthz` into a 503 naming the failing streams (and back to 200
once Podio answers again); a stuck worker is a 503 too; `/readyz` waits for the first
cycle and a current database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.settings import load_settings
from jobs.health import HEALTH_FAILED_CYCLES
from jobs.service import Service
from sandbox.server import Sandbox
from store.db import Database
from tests.test_serve_podio import wait_for
from tests.test_serve_webhooks import TOKEN, free_port

SYNC_SECONDS = 1.0  # a sync cycle every second: N failed cycles take a few seconds


def _get(url: str) -> tuple[int, dict[str, Any]]:
    answer = httpx.get(url, timeout=10)
    return answer.status_code, answer.json()


@pytest.fixture
def served(sandbox: Sandbox, tmp_path: Path) -> Iterator[tuple[Service, str]]:
    port = free_port()
    env = {k.lower(): v for k, v in sandbox.env().items()}
    db = Database(f"sqlite:///{tmp_path}/serve.db")
    settings = load_settings(**env, database_url=db.url, webhook_token=TOKEN,
                             sync_interval_seconds=SYNC_SECONDS, rules_interval_seconds=3600)
    service = Service(settings, db, port=port).start()
    try:
        yield service, f"http://127.0.0.1:{port}"
    finally:
        service.shutdown()
        db.dispose()


def test_streams_failing_every_cycle_make_healthz_503(sandbox: Sandbox,
                                                      served: tuple[Service, str]) -> None:
    _service, url = served
    wait_for(lambda: _get(f"{url}/readyz")[0] == 200, timeout=60)
    assert _get(f"{url}/readyz")[1] == {"status": "ok", "problems": []}
    assert _get(f"{url}/healthz")[0] == 200, _get(f"{url}/healthz")

    # Podio starts refusing every item listing: each app's stream fails, cycle after cycle.
    sandbox.faults.add(kind="status", status=400, tool="podio", path="/filter/", count=10**6)
    def every_app_failing() -> dict[str, Any] | None:
        code, body = _get(f"{url}/healthz")
        failing = {s["stream"] for s in body.get("failing_streams", [])}
        return body if code == 503 and {"podio/tickets", "podio/clientes"} <= failing else None

    body: dict[str, Any] = wait_for(every_app_failing, timeout=60)  # type: ignore[assignment]
    assert body["status"] == "error"
    failing = {s["stream"] for s in body["failing_streams"]}
    assert {"podio/tickets", "podio/clientes"} <= failing, body
    assert not any(s.startswith(("jira/", "forms/", "sheets/")) for s in failing), body
    problem = next(p for p in body["problems"] if p.startswith("flujo podio/tickets:"))
    assert f"fallaron todos sus intentos de los últimos {HEALTH_FAILED_CYCLES} ciclos" in problem
    assert "último éxito hace" in problem and "página de estado" in problem
    assert _get(f"{url}/readyz")[0] == 200  # still up and ready: it is the data that is stale

    sandbox.faults.clear()  # Podio answers again: healthy after the next cycle
    wait_for(lambda: _get(f"{url}/healthz")[0] == 200, timeout=60)
    assert _get(f"{url}/healthz")[1]["problems"] == []


def test_a_stuck_worker_makes_healthz_503(served: tuple[Service, str]) -> None:
    service, url = served
    wait_for(lambda: _get(f"{url}/readyz")[0] == 200, timeout=60)
    service.worker_stuck_seconds = 3  # instead of WORKER_STUCK_SECONDS, for the test
    wait_for(lambda: _get(f"{url}/healthz")[0] == 200, timeout=30)
    # A hung call holds the clients' lock: the worker cannot take its turn.
    with service._work:
        code, body = wait_for(lambda: (answer := _get(f"{url}/healthz"))[0] == 503 and answer,
                              timeout=30)  # type: ignore[misc]
    assert any(p.startswith("el trabajador de webhooks y reglas no avanza desde hace")
               for p in body["worker"]), body
    wait_for(lambda: _get(f"{url}/healthz")[0] == 200, timeout=30)


def test_readyz_waits_for_current_migrations(served: tuple[Service, str]) -> None:
    service, url = served
    wait_for(lambda: _get(f"{url}/readyz")[0] == 200, timeout=60)
    with service.db.engine.begin() as conn:  # as if the code were newer than the database
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0011'")
    code, body = _get(f"{url}/readyz")
    assert code == 503
    assert body["problems"] == ["migración 0011 ≠ 0012: ejecuta `saeko-sync db upgrade` y "
                                "reinicia el servicio"]
