"""`saeko-sync hooks register` as an admin runs it, against the sandbox's Podio: when
PUBLIC_URL or WEBHOOK_TOKEN change it replaces its own hooks (one per app and event is
left, other integrations' hooks are untouched), it refuses a short token, and it says in
Spanish what «inactivo» means and what to do."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from connectors.podio.client import PodioClient
from core.settings import load_settings
from sandbox.server import Sandbox
from tests.test_cli import APPS, run_cli, write_env

TOKENS = ["a" * 24, "b" * 30, "c" * 40]
URLS = ["http://127.0.0.1:9", "http://localhost:9/saeko", "http://127.0.0.1:9"]
FOREIGN = "http://127.0.0.1:9/otra-integracion/podio"


def _register(sandbox: Sandbox, folder: Path, url: str, token: str) -> str:
    write_env(sandbox, folder, PUBLIC_URL=url, WEBHOOK_TOKEN=token)
    done = run_cli(["hooks", "register"], folder)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    return done.stdout


def test_changing_url_or_token_replaces_our_hooks_only(sandbox: Sandbox, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # one table row per line
    podio = sandbox.tools["podio"]
    tickets = sandbox.env()["PODIO_APP_TICKETS_ID"]
    # Another integration's hook on the tickets app, registered over the API.
    other = PodioClient.from_settings(load_settings(
        **{k.lower(): v for k, v in sandbox.env().items() if k.startswith("PODIO_")}))
    try:
        other.request("POST", f"/hook/app/{tickets}/", json={"url": FOREIGN,
                                                             "type": "item.update"})
    finally:
        other.close()
    outputs = [_register(sandbox, tmp_path, url, token) for url, token in zip(URLS, TOKENS,
                                                                              strict=True)]
    hooks = podio.hooks()
    ours = [h for h in hooks if h["url"] != FOREIGN]
    final = f"{URLS[-1]}/hooks/podio/{TOKENS[-1]}"
    assert {h["url"] for h in ours} == {final}
    per_app_event = Counter((h["ref"]["id"], h["type"]) for h in ours)
    assert len(per_app_event) == 3 * APPS and set(per_app_event.values()) == {1}
    assert [h["type"] for h in hooks if h["url"] == FOREIGN] == ["item.update"]

    first, second, third = outputs
    assert first.count("creado; inactivo hasta que serve lo verifique") == 3 * APPS
    # The second run deletes every hook of the first (and says so without the token).
    assert second.count("borrado: era nuestro con otra URL o token") == 3 * APPS
    assert "http://127.0.0.1:9/hooks/podio/aaaa…" in second and TOKENS[0] not in second
    assert third.count("creado;") == 3 * APPS
    for shown in outputs:
        assert "«inactivo»: Podio no envía eventos a un hook hasta verificarlo" in shown
        assert "`saeko-sync serve` lo valida" in shown
        podio_part = shown.split("Jira →")[0]  # Jira's part names Jira's own (English) events
        for english in ("created", "exists", "failed", "inactive"):
            assert english not in podio_part

    # The same settings again: nothing created or deleted, inactive ones asked to verify.
    again = _register(sandbox, tmp_path, URLS[-1], TOKENS[-1])
    assert again.count("ya existía; inactivo (se pidió verificarlo de nuevo)") == 3 * APPS
    assert "borrado" not in again and "creado" not in again
    assert len([h for h in podio.hooks() if h["url"] != FOREIGN]) == 3 * APPS


@pytest.mark.parametrize(("extra", "named"), [
    ({"PUBLIC_URL": "http://127.0.0.1:9", "WEBHOOK_TOKEN": "abc"}, "WEBHOOK_TOKEN es demasiado "
                                                                    "corto (3 caracteres; mínimo 24)"),
    ({"PUBLIC_URL": "", "WEBHOOK_TOKEN": "x" * 30}, "PUBLIC_URL sin definir"),
])
def test_a_short_token_or_no_public_url_is_refused_in_one_line(
        sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        extra: dict[str, str], named: str) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    write_env(sandbox, tmp_path, **extra)
    done = run_cli(["hooks", "register"], tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr  # one line, even at 80 columns
    assert named in done.stderr and "Traceback" not in done.stderr
    assert sandbox.tools["podio"].hooks() == []  # nothing was registered
