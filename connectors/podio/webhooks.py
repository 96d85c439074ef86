"""Podio's webhooks: the receiver's checks, the inbox's handling, and hook registration.

Podio posts form fields (``type``, ``hook_id``, ``item_id``, ``item_revision_id``, ``code``
for ``hook.verify``) and signs nothing: the secret is the receiver's path token. A delivery
is a hint: the item is re-read (``sync_item``); a ``hook.verify`` is answered with its code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from connectors.registry import Delivery, HookPlan, Rejected, is_id

if TYPE_CHECKING:
    from connectors.podio.client import PodioClient
    from core.settings import Settings
    from store.db import Database

EVENTS = {"hook.verify", "item.create", "item.update", "item.delete", "comment.create"}
HOOK_TYPES = ("item.create", "item.update", "item.delete")
ITEM_EVENTS = ("item.create", "item.update", "item.delete")


def problem(fields: Any) -> str | None:
    """Why a Podio delivery cannot be processed (None when its shape is usable)."""
    if not isinstance(fields, dict):
        return "no trae los campos de una entrega de Podio"
    kind = fields.get("type", "")
    if kind not in EVENTS or not is_id(fields.get("hook_id", "")):
        return f"evento de Podio desconocido o incompleto {kind!r}"
    if kind != "hook.verify" and not is_id(fields.get("item_id", "")):
        return "falta item_id o no es un número"
    if fields.get("item_revision_id") not in (None, "") and not is_id(fields["item_revision_id"]):
        return "item_revision_id no es un número"
    return None


def delivery_key(fields: Mapping[str, str]) -> str:
    """Dedupe key: (type, item_id, item_revision_id) — reference §9.4; the verify by code."""
    kind = fields.get("type", "")
    if kind == "hook.verify":
        return f"podio:hook.verify:{fields.get('hook_id')}:{fields.get('code')}"
    return (f"podio:{kind}:{fields.get('item_id')}:{fields.get('item_revision_id', '')}"
            f":{fields.get('comment_id', '')}")


def receive(_settings: Settings, _headers: Mapping[str, str], body: bytes) -> Delivery:
    """A form-encoded Podio delivery, checked."""
    try:
        fields = dict(parse_qsl(body.decode("utf-8"), strict_parsing=True))
    except (UnicodeDecodeError, ValueError):
        raise Rejected(400, "expected a form-encoded Podio delivery") from None
    reason = problem(fields)
    if reason:
        raise Rejected(400, reason)
    kind = fields.get("type", "")
    return Delivery(delivery_key(fields), kind, fields,
                    {"type": kind, "item_id": fields.get("item_id")})


def record_key(kind: str, payload: dict[str, Any]) -> str | None:
    """The item an item event asks to re-read (other events each run)."""
    return f"podio:{payload.get('item_id')}" if kind in ITEM_EVENTS else None


def handle(settings: Settings, db: Database, client: PodioClient, kind: str,
           payload: dict[str, Any]) -> str:
    """Answer a hook verification, or bring the delivery's item up to date."""
    from connectors.podio.sync import sync_item

    app_ids = [app_id for app_id, _token in settings.podio_apps.values() if app_id]
    hook_app = client.app_of_hook(int(payload["hook_id"]), app_ids)
    if kind == "hook.verify":
        # With app tokens only, the hook's own app's token validates it (another app's
        # token gets 403, reference §1.3).
        client.request("POST", f"/hook/{int(payload['hook_id'])}/verify/validate",
                       json={"code": payload.get("code", "")}, idempotent=True,
                       app_id=hook_app)
        return "verified"
    item_id = int(payload["item_id"])
    correlation = f"podio:{item_id}:{payload.get('item_revision_id', '')}"
    # A delete notice is checked against Podio like any other: only a gone item is
    # marked deleted (anyone holding the token could forge one for a live item).
    return sync_item(settings, db, client, item_id, deleted=kind == "item.delete",
                     correlation_id=correlation, hint=hook_app)


# Notices one incremental read of their app can stand for (deletions need the item's own
# 404). A creation is not kept waiting — T1 answers it within a second — but read at once by
# its app's filter, which also brings the update notices of that app waiting to be gathered:
# one call for both instead of a GET now and a filter later.
BATCHED_EVENTS = ("item.update", "item.create")
BATCH_NOW = ("item.create",)


def batch_key(settings: Settings, client: PodioClient, kind: str, payload: dict[str, Any]
              ) -> str | None:
    """The app of an update or creation notice (``podio:app:<id>``) once this service's
    Podio calls in the last hour pass ``WEBHOOK_BATCH_ABOVE`` of the documented quota; else
    None: read at once (within T1's second) while the quota is not under pressure."""
    from core.settings import PODIO_DOCUMENTED_HOURLY_QUOTA

    busy = settings.webhook_batch_above * PODIO_DOCUMENTED_HOURLY_QUOTA
    if kind not in BATCHED_EVENTS or client.quota.used_last_hour < busy:
        return None
    app_ids = [app_id for app_id, _token in settings.podio_apps.values() if app_id]
    app_id = client.hook_app(int(payload["hook_id"]), app_ids)
    return None if app_id is None else f"podio:app:{app_id}"


def handle_many(settings: Settings, db: Database, client: PodioClient, key: str,
                payloads: list[dict[str, Any]]) -> str:
    """Update notices of one app gathered by the inbox: one incremental read of the app
    (its filter from the stored cursor) brings every noticed item, instead of one GET each."""
    from connectors.podio.sync import sync_app

    return sync_app(settings, db, client, int(key.rsplit(":", 1)[1]))


def is_ours(url: str) -> bool:
    """A hook URL of saeko-sync's Podio receiver (…/hooks/podio/<token>), whatever the
    PUBLIC_URL or token it was registered with: hooks of other integrations never match."""
    parts = urlsplit(url).path.rstrip("/").split("/")
    return len(parts) >= 3 and parts[-3:-1] == ["hooks", "podio"] and bool(parts[-1])


def register(settings: Settings, client: PodioClient, url: str) -> list[HookPlan]:
    """On every configured app, one item hook per event at ``url``: missing ones created,
    inactive ones asked to verify again (reference §9.4), and our own hooks at an older
    PUBLIC_URL or WEBHOOK_TOKEN — or repeated — deleted. Other hooks are left alone."""
    plans: list[HookPlan] = []
    for name, (app_id, _token) in settings.podio_apps.items():
        if not app_id:
            continue
        listed = client.request("GET", f"/hook/app/{app_id}/", app_id=app_id) or []
        kept: dict[str, dict[str, Any]] = {}
        for hook in listed:
            hook_url, kind = str(hook.get("url", "")), str(hook.get("type", ""))
            if not is_ours(hook_url):
                continue
            if hook_url == url and kind not in kept:
                kept[kind] = hook
                client.note_hook(int(hook["hook_id"]), app_id)
                continue
            client.request("DELETE", f"/hook/{int(hook['hook_id'])}", app_id=app_id,
                           idempotent=True)
            plans.append(HookPlan(name, kind, hook_url, "deleted"))
        for kind in dict.fromkeys([*HOOK_TYPES, *kept]):
            found = kept.get(kind)
            if found is not None:
                active = found.get("status") == "active"
                if not active:  # Podio delivers nothing until verified: ask again
                    client.request("POST", f"/hook/{int(found['hook_id'])}/verify/request",
                                   app_id=app_id, idempotent=True)
                plans.append(HookPlan(name, kind, url, "exists", active=active))
                continue
            created = client.request("POST", f"/hook/app/{app_id}/",
                                     json={"url": url, "type": kind}, app_id=app_id)
            if isinstance(created, dict) and created.get("hook_id") is not None:
                client.note_hook(int(created["hook_id"]), app_id)
            plans.append(HookPlan(name, kind, url, "created"))
    return plans
