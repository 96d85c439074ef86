"""The Podio sandbox over raw HTTP (httpx), as the reference podio-api.md describes Podio."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from sandbox.core import Clock
from sandbox.podio.tool import PodioTool
from sandbox.server import Sandbox
from sandbox.webhooks import WebhookDeliverer
from sandbox.world import PODIO_APP_IDS, build_world, podio_item_id
from tests.conftest import WORLD_NOW

CLIENT = {"client_id": "saeko-sync-demo", "client_secret": "demo-secret"}
ADMIN = {"grant_type": "password", "username": "admin@saeko.test", "password": "demo"}
ERROR_KEYS = {"error", "error_description", "error_detail", "error_parameters",
              "error_propagate", "request"}
TICKETS, CLIENTES, CONTRATOS = (PODIO_APP_IDS[n] for n in ("tickets", "clientes", "contratos"))


@pytest.fixture
def podio(sandbox: Sandbox) -> PodioTool:
    return sandbox.tools["podio"]  # type: ignore[return-value]


@pytest.fixture
def base(sandbox: Sandbox) -> str:
    return sandbox.url("podio")


def _token(base: str, **params: Any) -> dict[str, Any]:
    response = httpx.post(f"{base}/oauth/token", data={**CLIENT, **params})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def api(base: str) -> Iterator[httpx.Client]:
    """A client authenticated as the integration user (password grant)."""
    token = _token(base, **ADMIN)["access_token"]
    with httpx.Client(base_url=base, headers={"Authorization": f"OAuth2 {token}"}) as client:
        yield client


def _ticket(api: httpx.Client, fields: dict[str, Any], **query: Any) -> int:
    response = api.post(f"/item/app/{TICKETS}/", json={"fields": fields}, params=query)
    assert response.status_code == 200, response.text
    return int(response.json()["item_id"])


def _field(item: dict[str, Any], external_id: str) -> list[Any]:
    return next(f["values"] for f in item["fields"] if f["external_id"] == external_id)


# --- auth -----------------------------------------------------------------------------

def test_grants_on_both_token_endpoints(base: str, podio: PodioTool) -> None:
    body = _token(base, **ADMIN)
    assert body["expires_in"] == 28800 and body["token_type"] == "bearer"
    assert body["ref"] == {"type": "user", "id": 1000} and body["refresh_token"]
    app_token = podio.env()["PODIO_APP_TICKETS_TOKEN"]
    v2 = httpx.post(f"{base}/oauth/token/v2", json={
        **CLIENT, "grant_type": "app", "app_id": TICKETS, "app_token": app_token})
    assert v2.status_code == 200 and v2.json()["ref"] == {"type": "app", "id": TICKETS}
    staff = _token(base, grant_type="password", username="agente-1@saeko.test", password="demo")
    assert staff["ref"]["type"] == "user" and staff["ref"]["id"] != 1000


def test_auth_errors_expiry_and_refresh(base: str, podio: PodioTool) -> None:
    bad_secret = httpx.post(f"{base}/oauth/token", data={**ADMIN, **CLIENT,
                                                        "client_secret": "nope"})
    assert bad_secret.status_code == 401 and bad_secret.json()["error"] == "invalid_client"
    bad_password = httpx.post(f"{base}/oauth/token", data={**CLIENT, **ADMIN, "password": "x"})
    assert bad_password.status_code == 400 and bad_password.json()["error"] == "invalid_grant"
    assert set(bad_password.json()) == ERROR_KEYS
    code = httpx.post(f"{base}/oauth/token", data={**CLIENT, "grant_type":
                                                   "authorization_code", "code": "abc"})
    assert code.status_code == 400 and code.json()["error"] == "invalid_grant"

    assert httpx.get(f"{base}/app/{TICKETS}").status_code == 401
    garbled = httpx.get(f"{base}/app/{TICKETS}", headers={"Authorization": "Basic zzz"})
    assert garbled.status_code == 401
    tokens = _token(base, **ADMIN)
    bearer = httpx.get(f"{base}/app/{TICKETS}",
                       headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert bearer.status_code == 200

    podio.expire_tokens()
    expired = httpx.get(f"{base}/app/{TICKETS}",
                        headers={"Authorization": f"OAuth2 {tokens['access_token']}"})
    assert expired.status_code == 401
    assert expired.json()["error_description"] == "expired_token"
    assert "expired_token" in expired.headers["www-authenticate"]
    refreshed = _token(base, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    again = httpx.get(f"{base}/app/{TICKETS}",
                      headers={"Authorization": f"OAuth2 {refreshed['access_token']}"})
    assert again.status_code == 200 and again.json()["app_id"] == TICKETS


def test_app_token_reaches_only_its_app(base: str, podio: PodioTool) -> None:
    token = _token(base, grant_type="app", app_id=TICKETS,
                   app_token=podio.env()["PODIO_APP_TICKETS_TOKEN"])["access_token"]
    headers = {"Authorization": f"OAuth2 {token}"}
    assert httpx.get(f"{base}/app/{TICKETS}", headers=headers).status_code == 200
    ticket_id = podio.items("tickets")[0]
    assert httpx.get(f"{base}/item/{ticket_id}", headers=headers).status_code == 200
    other = httpx.get(f"{base}/app/{CLIENTES}", headers=headers)
    assert other.status_code == 403 and other.json()["error"] == "forbidden"
    client_item = podio.items("clientes")[0]
    assert httpx.get(f"{base}/item/{client_item}", headers=headers).status_code == 403
    wrong = httpx.post(f"{base}/oauth/token", data={**CLIENT, "grant_type": "app",
                                                   "app_id": CLIENTES, "app_token": "x"})
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"


def test_rate_headers_and_420(api: httpx.Client, base: str, podio: PodioTool) -> None:
    podio.set_quota(3)
    remaining = [api.get(f"/app/{TICKETS}").headers["x-rate-limit-remaining"]
                 for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    over = api.get(f"/app/{TICKETS}")
    assert over.status_code == 420 and over.json()["error"] == "rate_limit"
    assert over.headers["x-rate-limit-limit"] == "3"
    # the quota is per user and API key: another user still has its own
    other = _token(base, grant_type="password", username="coo@saeko.test", password="demo")
    assert httpx.get(f"{base}/app/{TICKETS}", headers={
        "Authorization": f"OAuth2 {other['access_token']}"}).status_code == 200

    podio.set_quota(100, rate_limited=1, filter_rate_limited=True)
    assert api.post(f"/item/app/{TICKETS}/filter/", json={"limit": 1}).status_code == 200
    limited = api.post(f"/item/app/{TICKETS}/filter/", json={"limit": 1})
    assert limited.status_code == 420
    assert api.get(f"/app/{TICKETS}").status_code == 200  # general class unaffected


def test_injected_fault_uses_podio_error_body(api: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.faults.add(kind="status", tool="podio", status=420, path="/app/")
    response = api.get(f"/app/{TICKETS}")
    assert response.status_code == 420
    assert set(response.json()) == ERROR_KEYS and response.json()["error"] == "rate_limit"


# --- apps and filter ------------------------------------------------------------------

def test_apps_with_and_without_trailing_slash(api: httpx.Client, podio: PodioTool) -> None:
    apps = api.get("/app/space/2001/").json()
    assert {a["app_id"] for a in apps} == set(PODIO_APP_IDS.values())
    assert api.get("/app/space/2001").status_code == 200
    tickets = api.get(f"/app/{TICKETS}/").json()
    estatus = next(f for f in tickets["fields"] if f["external_id"] == "estatus")
    assert [o["text"] for o in estatus["config"]["settings"]["options"]][0] == "Nuevo"
    field = api.get(f"/app/{TICKETS}/field/prioridad").json()
    assert field["type"] == "category" and field["label"] == "Prioridad"
    missing = api.get("/nothing/here")
    assert missing.status_code == 404 and set(missing.json()) == ERROR_KEYS


def test_filter_by_last_edit_range_sort_and_paging(api: httpx.Client, sandbox: Sandbox,
                                                   podio: PodioTool) -> None:
    sandbox.clock.advance(timedelta(hours=1))
    start = sandbox.clock.now()
    created = []
    for n in range(3):
        created.append(_ticket(api, {"titulo": f"Nuevo {n}"}))
        sandbox.clock.advance(timedelta(seconds=30))
    window = {"last_edit_on": {"from": start.strftime("%Y-%m-%d %H:%M:%S")}}
    body = {"filters": window, "sort_by": "last_edit_on", "sort_desc": False, "limit": 2}
    first = api.post(f"/item/app/{TICKETS}/filter/", json=body).json()
    assert first["filtered"] == 3 and first["total"] == len(podio.items("tickets"))
    second = api.post(f"/item/app/{TICKETS}/filter", json={**body, "offset": 2}).json()
    assert [i["item_id"] for i in first["items"] + second["items"]] == created
    desc = api.post(f"/item/app/{TICKETS}/filter/", json={**body, "sort_desc": True}).json()
    assert desc["items"][0]["item_id"] == created[-1]
    to_day = api.post(f"/item/app/{TICKETS}/filter/", json={"filters": {"last_edit_on": {
        "to": (start - timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S")}},
        "limit": 500}).json()
    assert to_day["filtered"] == len(podio.items("tickets")) - 3
    too_big = api.post(f"/item/app/{TICKETS}/filter/", json={"limit": 501})
    assert too_big.status_code == 400
    text = api.post(f"/item/app/{TICKETS}/filter/", json={"filters": {"titulo": ["x"]}})
    assert text.status_code == 400


def test_filter_category_with_null_and_count(api: httpx.Client, podio: PodioTool) -> None:
    modulo = api.get(f"/app/{TICKETS}/field/modulo").json()
    otro = next(o["id"] for o in modulo["config"]["settings"]["options"] if o["text"] == "Otro")
    empty = _ticket(api, {"titulo": "Sin módulo"})
    result = api.post(f"/item/app/{TICKETS}/filter/", json={
        "filters": {"modulo": [otro, None]}, "limit": 500}).json()
    ids = {i["item_id"] for i in result["items"]}
    expected = {i for i in podio.items("tickets")
                if podio.values(i).get("modulo") in ("Otro", None)}
    assert empty in ids and ids == expected
    count = api.get(f"/item/app/{TICKETS}/count", params={"modulo": f"{otro};null"}).json()
    assert count == {"count": len(expected)}


# --- item writes and GET shapes -------------------------------------------------------

def test_create_with_every_set_form_and_get_shapes(api: httpx.Client, podio: PodioTool) -> None:
    app = api.get(f"/app/{TICKETS}").json()
    options = {f["external_id"]: {o["text"]: o["id"] for o in
                                  f["config"]["settings"].get("options", [])}
               for f in app["fields"]}
    school = podio.items("escuelas")[0]
    item_id = _ticket(api, {
        "titulo": "Falla de acceso",
        "descripcion": {"value": "No entra <nadie>"},
        "prioridad": options["prioridad"]["Alta"],
        "estatus": [{"value": options["estatus"]["Escalado"]}],
        "escuela": [school],
        "responsable": [5009],
        "fecha-apertura": {"start_utc": "2026-11-18 16:00:00", "end_utc": "2026-11-18 17:30:00"},
        "fecha-cierre": {"start_date": "2026-11-20"},
        "tiempo-cierre": 4.5,
        "calificacion": "5",
    })
    item = podio.item(item_id)
    assert [f["external_id"] for f in item["fields"]][:3] == ["titulo", "descripcion",
                                                             "escuela"]
    assert _field(item, "descripcion") == [{"value": "<p>No entra &lt;nadie&gt;</p>"}]
    prioridad = _field(item, "prioridad")[0]["value"]
    assert prioridad["text"] == "Alta" and prioridad["id"] == options["prioridad"]["Alta"]
    escuela = _field(item, "escuela")[0]["value"]
    assert escuela["item_id"] == school and escuela["app"]["app_id"] == PODIO_APP_IDS[
        "escuelas"] and escuela["title"]
    contact = _field(item, "responsable")[0]["value"]
    assert contact["profile_id"] == 5009 and contact["user_id"] == 1009
    assert contact["mail"] == ["agente-1@saeko.test"] and contact["name"]
    timed = _field(item, "fecha-apertura")[0]
    assert timed["start_utc"] == "2026-11-18 16:00:00" and timed["start"] == "2026-11-18 08:00:00"
    assert timed["start_time"] == "08:00:00" and timed["end_utc"] == "2026-11-18 17:30:00"
    all_day = _field(item, "fecha-cierre")[0]
    assert all_day["start_date"] == "2026-11-20" and all_day["start_time"] is None
    assert all_day["start_utc"] == "2026-11-20" and "end" not in all_day
    assert _field(item, "tiempo-cierre") == [{"value": "4.5000"}]
    assert _field(item, "calificacion") == [{"value": "5.0000"}]
    assert "modulo" not in {f["external_id"] for f in item["fields"]}  # empty = absent
    simple = podio.values(item_id)
    assert simple["fecha-apertura"] == {"start": "2026-11-18 16:00:00",
                                        "end": "2026-11-18 17:30:00"}
    assert simple["fecha-cierre"] == {"start": "2026-11-20"} and simple["tiempo-cierre"] == 4.5
    assert item["current_revision"]["revision"] == 0
    assert item["created_via"]["id"] != 1  # the API key, not Podio's UI


def test_update_forms_money_clear_and_calculation(api: httpx.Client, podio: PodioTool) -> None:
    client_id = podio.items("clientes")[0]
    # podio-rb's list-of-field-objects shape, money and a local-time date
    response = api.put(f"/item/{client_id}", json={"fields": [
        {"external_id": "mrr", "values": [{"value": "1500.5", "currency": "MXN"}]},
        {"external_id": "salud", "values": [{"value": 72}]},
        {"external_id": "fecha-alta", "values": [{"start": "2026-01-05 09:30:00"}]},
    ]})
    assert response.status_code == 200 and response.json()["revision"] >= 1
    item = podio.item(client_id)
    assert _field(item, "mrr") == [{"value": "1500.5000", "currency": "MXN"}]
    assert _field(item, "fecha-alta")[0]["start_utc"] == "2026-01-05 17:30:00"
    assert api.put(f"/item/{client_id}/value/salud", json=[]).status_code == 200
    assert "salud" not in podio.values(client_id)
    assert api.put(f"/item/{client_id}/value", json={"decisor": "Nueva Persona"}).status_code \
        == 200
    assert podio.values(client_id)["decisor"] == "Nueva Persona"

    contract = podio.items("contratos")[0]
    fin = date.fromisoformat(podio.values(contract)["fin"]["start"])
    days = float((fin - WORLD_NOW.date()).days)  # 20:00 UTC is still the same day in Tijuana
    assert podio.values(contract)["dias-restantes"] == days
    assert _field(podio.item(contract), "dias-restantes") == [{"value": f"{days:.4f}"}]
    read_only = api.put(f"/item/{contract}", json={"fields": {"dias-restantes": 3}})
    assert read_only.status_code == 400 and "read-only" in read_only.json()["error_description"]


@pytest.mark.parametrize(("fields", "message"), [
    ({"no-such-field": "x"}, "No field"),
    ({"tiempo-cierre": "cuatro"}, "expected a number"),
    ({"prioridad": 999}, "unknown option"),
    ({"escuela": [123]}, "no live item"),
    ({"fecha-cierre": {"start": "31/02/2026"}}, "invalid start date"),
    ({"responsable": [42]}, "profile_id"),
    ({"prioridad": [1, 2]}, "single value"),
])
def test_invalid_values_are_rejected(api: httpx.Client, podio: PodioTool,
                                     fields: dict[str, Any], message: str) -> None:
    ticket = podio.items("tickets")[0]
    response = api.put(f"/item/{ticket}", json={"fields": fields})
    assert response.status_code == 400, response.text
    assert message in response.json()["error_description"]
    assert set(response.json()) == ERROR_KEYS


def test_stale_revision_conflicts_and_revision_diff(api: httpx.Client, podio: PodioTool) -> None:
    ticket = _ticket(api, {"titulo": "Original"})
    assert api.put(f"/item/{ticket}", json={"revision": 0,
                                            "fields": {"titulo": "Cambiado"}}).status_code == 200
    stale = api.put(f"/item/{ticket}", json={"revision": 0, "fields": {"titulo": "Otro"}})
    assert stale.status_code == 409 and stale.json()["error"] == "conflict"
    revisions = api.get(f"/item/{ticket}/revision/").json()
    assert [r["revision"] for r in revisions] == [0, 1]
    assert revisions[1]["item_revision_id"] > revisions[0]["item_revision_id"]
    diff = api.get(f"/item/{ticket}/revision/0/1").json()
    assert diff == [{"field_id": diff[0]["field_id"], "external_id": "titulo",
                     "label": "Título", "type": "text", "from": [{"value": "Original"}],
                     "to": [{"value": "Cambiado"}]}]
    noop = api.put(f"/item/{ticket}", json={"fields": {"titulo": "Cambiado"}})
    assert noop.json()["revision"] == 1


def test_ui_changes_and_api_changes_are_told_apart(api: httpx.Client, podio: PodioTool) -> None:
    ticket = podio.create_item_as("agente-2@saeko.test", "tickets", {"titulo": "Desde Podio"})
    podio.update_item_as("agente-2@saeko.test", ticket, {"jira": "SOP-9"})
    api.put(f"/item/{ticket}", json={"fields": {"respuesta": "Listo"}})
    vias = [r["created_via"]["id"] for r in podio.revisions(ticket)]
    assert vias[0] == vias[1] == 1 and vias[2] != 1
    by_via = api.post(f"/item/app/{TICKETS}/filter/", json={
        "filters": {"last_edit_via": [vias[2]]}}).json()
    assert [i["item_id"] for i in by_via["items"]] == [ticket]


def test_delete_answers_404_and_leaves_filter(api: httpx.Client, podio: PodioTool) -> None:
    ticket = _ticket(api, {"titulo": "Borrar"})
    assert api.delete(f"/item/{ticket}").status_code == 204
    assert api.get(f"/item/{ticket}").status_code == 404
    assert ticket not in podio.items("tickets")
    everything = api.post(f"/item/app/{TICKETS}/filter/", json={
        "filters": {"item_id": [ticket]}}).json()
    assert everything["filtered"] == 0
    podio.set_deleted_status(410)
    assert api.get(f"/item/{ticket}").status_code == 410


def test_external_id_lookup(api: httpx.Client) -> None:
    created = api.post(f"/item/app/{TICKETS}/", json={"external_id": "crm-1",
                                                     "fields": {"titulo": "Con id externo"}})
    found = api.get(f"/item/app/{TICKETS}/external_id/crm-1")
    assert found.status_code == 200 and found.json()["item_id"] == created.json()["item_id"]
    assert api.get(f"/item/app/{TICKETS}/external_id/nope").status_code == 404


def test_inject_raw_values_is_returned_verbatim(api: httpx.Client, podio: PodioTool) -> None:
    contract = podio.items("contratos")[0]
    podio.inject_raw_values(contract, "fin", [{"start": "31/02/2026"}])
    assert _field(api.get(f"/item/{contract}").json(), "fin") == [{"start": "31/02/2026"}]


# --- tasks and comments ---------------------------------------------------------------

def test_tasks_per_assignee_listed_by_external_id(api: httpx.Client, podio: PodioTool) -> None:
    ticket = podio.items("tickets")[0]
    created = api.post(f"/task/item/{ticket}/", json={
        "text": "Llamar al director", "external_id": "rule:followup:1",
        "due_date": "2026-11-20", "due_time": "09:00:00", "labels": ["postventa"],
        "responsible": [{"type": "mail", "id": "am-tecate@saeko.test"}, 1003]})
    assert created.status_code == 200 and isinstance(created.json(), list)
    assert created.json()[0]["due_on"] == "2026-11-20 17:00:00"
    listed = api.get("/task/", params={"external_id": "rule:followup:1"}).json()
    assert sorted(t["responsible"]["user_id"] for t in listed) == [1003, 1004]
    assert {t["ref"]["id"] for t in listed} == {ticket}
    single = api.post("/task/", json={"text": "Una", "responsible": 1002,
                                      "ref_type": "item", "ref_id": ticket}).json()
    assert single["task_id"] and single["responsible"]["user_id"] == 1002
    assert api.post(f"/task/{single['task_id']}/complete").status_code == 204
    done = api.get("/task/", params={"reference": f"item:{ticket}", "completed": "true"}).json()
    assert [t["task_id"] for t in done] == [single["task_id"]]
    assert len(podio.tasks(ticket)) == 3 and len(api.get(f"/task/item/{ticket}/").json()) == 3
    assert api.post("/task/", json={"text": "x", "responsible": 777}).status_code == 400


def test_comment_moves_last_event_only(api: httpx.Client, sandbox: Sandbox,
                                       podio: PodioTool) -> None:
    ticket = podio.items("tickets")[0]
    before = podio.item(ticket)
    sandbox.clock.advance(timedelta(minutes=5))
    added = api.post(f"/comment/item/{ticket}/", json={"value": "Escalado a N2",
                                                       "external_id": "rule:x"})
    assert added.status_code == 200 and added.json()["comment_id"]
    after = podio.item(ticket)
    assert after["current_revision"] == before["current_revision"]
    assert after["last_event_on"] > before["last_event_on"]
    assert [c["value"] for c in podio.comments(ticket)] == ["Escalado a N2"]
    assert api.post(f"/comment/item/{ticket}/", json={"value": ""}).status_code == 400


# --- hooks ----------------------------------------------------------------------------

class _Receiver:
    """A tiny webhook receiver on 127.0.0.1 recording form-encoded POSTs."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str]]] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                size = int(self.headers.get("Content-Length", 0))
                form = parse_qs(self.rfile.read(size).decode())
                received.append((self.headers.get("Content-Type", ""),
                                 {k: v[0] for k, v in form.items()}))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/podio/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    try:
        yield server
    finally:
        server.close()


def test_hook_verify_then_update_delivered(api: httpx.Client, sandbox: Sandbox,
                                          podio: PodioTool, receiver: _Receiver) -> None:
    hook = api.post(f"/hook/app/{TICKETS}/", json={"url": receiver.url, "type": "item.update"})
    hook_id = hook.json()["hook_id"]
    assert sandbox.webhooks.wait_idle(5)
    content_type, verify = receiver.posts[0]
    assert content_type == "application/x-www-form-urlencoded"
    assert verify["type"] == "hook.verify" and verify["hook_id"] == str(hook_id)
    assert podio.hooks()[0]["status"] == "inactive"
    wrong = api.post(f"/hook/{hook_id}/verify/validate", json={"code": "wrong"})
    assert wrong.status_code == 400
    assert api.post(f"/hook/{hook_id}/verify/validate",
                    json={"code": verify["code"]}).status_code == 204
    assert api.get(f"/hook/app/{TICKETS}/").json()[0]["status"] == "active"

    ticket = podio.items("tickets")[0]
    api.put(f"/item/{ticket}", json={"fields": {"jira": "SOP-77"}}, params={"hook": "false"})
    api.put(f"/item/{ticket}", json={"fields": {"respuesta": "Hecho"}}, params={"silent": 1})
    assert sandbox.webhooks.wait_idle(5)
    events = [form for _ct, form in receiver.posts[1:]]
    revision = podio.revisions(ticket)[-1]["item_revision_id"]
    assert events == [{"type": "item.update", "hook_id": str(hook_id),
                       "item_id": str(ticket), "item_revision_id": str(revision)}]

    podio.update_item_as("agente-1@saeko.test", ticket, {"respuesta": "Otra"}, hook=False)
    podio.update_item_as("agente-1@saeko.test", ticket, {"respuesta": "Desde la UI"})
    assert sandbox.webhooks.wait_idle(5)
    assert len(receiver.posts) == 3


def test_hook_list_and_delete(api: httpx.Client, sandbox: Sandbox, podio: PodioTool,
                              receiver: _Receiver) -> None:
    """Reference §9.1: the listing's fields; DELETE /hook/{id} (204), then 404 and no
    more deliveries."""
    hook_id = api.post(f"/hook/app/{TICKETS}/", json={"url": receiver.url,
                                                      "type": "item.update"}).json()["hook_id"]
    assert sandbox.webhooks.wait_idle(5)
    code = receiver.posts[0][1]["code"]
    api.post(f"/hook/{hook_id}/verify/validate", json={"code": code})
    (listed,) = api.get(f"/hook/app/{TICKETS}/").json()
    assert set(listed) == {"hook_id", "status", "type", "url", "created_on", "created_by",
                           "created_via"}
    assert (listed["hook_id"], listed["status"], listed["url"]) == (hook_id, "active",
                                                                    receiver.url)
    assert api.delete(f"/hook/{hook_id}").status_code == 204
    assert api.get(f"/hook/app/{TICKETS}/").json() == []
    assert api.delete(f"/hook/{hook_id}").status_code == 404
    podio.update_item_as("agente-1@saeko.test", podio.items("tickets")[0],
                         {"respuesta": "Después de borrar el hook"})
    assert sandbox.webhooks.wait_idle(5)
    assert len(receiver.posts) == 1  # only the verification


def test_hook_url_rules(api: httpx.Client) -> None:
    public_odd_port = api.post(f"/hook/app/{TICKETS}/", json={
        "url": "https://hooks.example.test:8443/x", "type": "item.create"})
    assert public_odd_port.status_code == 400
    bad_type = api.post(f"/hook/app/{TICKETS}/", json={"url": "http://127.0.0.1:9/x",
                                                       "type": "item.explode"})
    assert bad_type.status_code == 400


# --- scale ----------------------------------------------------------------------------

def test_large_world_seeds_every_app() -> None:
    world = build_world(clients=2000, seed=7, now=WORLD_NOW)
    host = SimpleNamespace(world=world, clock=Clock(), webhooks=WebhookDeliverer(),
                           url=lambda tool: f"http://127.0.0.1:1/{tool}")
    tool = PodioTool(host)  # type: ignore[arg-type]
    counts = {name: app["items"] for name, app in tool.snapshot()["apps"].items()}
    assert counts == {"clientes": 2000, "escuelas": len(world.schools),
                      "usuarios": len(world.users), "tickets": len(world.tickets),
                      "contratos": len(world.contracts), "facturas": len(world.invoices),
                      "seguimientos": 0}  # check-ins are created by staff at run time
    assert counts["tickets"] > 50_000
    last = world.tickets[-1]
    assert tool.values(podio_item_id("tickets", last.key))["titulo"] == last.title
