"""Webhooks of the Podio emulator (reference §9): verify handshake and form-encoded events."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sandbox.podio.errors import PodioError
from sandbox.podio.model import Actor, ts
from sandbox.podio.store import ItemStore
from sandbox.webhooks import Delivery, WebhookDeliverer
from sandbox.world import PODIO_SPACE_ID

FIRST_HOOK_ID = 4_401  # arbitrary base for hook ids
MAX_HOOKS_PER_TYPE = 10  # documented: at most 10 hooks per event type per object (§9.1)
APP_EVENTS = frozenset({"item.create", "item.update", "item.delete", "comment.create",
                        "comment.delete", "file.change", "app.update", "app.delete",
                        "form.create", "form.update", "form.delete"})
ITEM_EVENTS = frozenset({"item.create", "item.update", "item.delete"})
SPACE_EVENTS = frozenset({"app.create", "task.create", "task.update", "task.delete",
                          "member.add", "member.remove", "status.create", "status.update",
                          "status.delete"})
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
PUBLIC_PORTS = (80, 443)  # documented: public URLs on port 80/443 only (§9.1)
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "Podio"}


@dataclass
class Hook:
    hook_id: int
    ref_type: str
    ref_id: int
    type: str
    url: str
    created_on: datetime
    actor: Actor
    status: str = "inactive"
    code: str = ""
    deleted: bool = False


class HookRegistry:
    """Hooks on apps, app fields and the space; deliveries go through the sandbox queue."""

    def __init__(self, store: ItemStore, deliverer: WebhookDeliverer) -> None:
        self.store = store
        self.deliverer = deliverer
        self.hooks: dict[int, Hook] = {}
        self.next_id = FIRST_HOOK_ID

    def field_app(self, field_id: int) -> int | None:
        """The app id of an app field (hooks on ``app_field``)."""
        for app in self.store.apps.values():
            if app.field(field_id) is not None:
                return app.app_id
        return None

    def create(self, ref_type: str, ref_id: int, body: Any, actor: Actor,
               now: datetime) -> Hook:
        if not isinstance(body, dict):
            raise PodioError(400, 'A hook needs {"url": "...", "type": "item.update"}')
        kind, url = body.get("type"), body.get("url")
        allowed = (APP_EVENTS if ref_type == "app" else ITEM_EVENTS if ref_type == "app_field"
                   else SPACE_EVENTS if ref_type == "space" else None)
        if allowed is None:
            raise PodioError(400, "Hooks go on ref_type app, app_field or space")
        self._check_ref(ref_type, ref_id)
        if kind not in allowed:
            raise PodioError(400, f"Hook type {kind!r} is not valid on {ref_type}; "
                                  f"use one of {sorted(allowed)}")
        _check_url(url)
        same = [h for h in self.hooks.values() if not h.deleted and h.ref_type == ref_type
                and h.ref_id == ref_id and h.type == kind]
        if len(same) >= MAX_HOOKS_PER_TYPE:
            raise PodioError(400, f"At most {MAX_HOOKS_PER_TYPE} hooks of type {kind} on "
                                  f"one object; delete unused ones")
        hook = Hook(self.next_id, ref_type, ref_id, str(kind), str(url), now, actor)
        self.next_id += 1
        self.hooks[hook.hook_id] = hook
        self.request_verification(hook)
        return hook

    def _check_ref(self, ref_type: str, ref_id: int) -> None:
        exists = (ref_id in self.store.apps_by_id if ref_type == "app"
                  else self.field_app(ref_id) is not None if ref_type == "app_field"
                  else ref_id == PODIO_SPACE_ID)
        if not exists:
            raise PodioError(404, f"No {ref_type} with id {ref_id}")

    def get(self, hook_id: int) -> Hook:
        hook = self.hooks.get(hook_id)
        if hook is None or hook.deleted:
            raise PodioError(404, f"No hook with id {hook_id}")
        return hook

    def on(self, ref_type: str, ref_id: int) -> list[Hook]:
        return [h for h in self.hooks.values()
                if not h.deleted and h.ref_type == ref_type and h.ref_id == ref_id]

    def request_verification(self, hook: Hook) -> None:
        """Send ``hook.verify`` with a fresh code; the hook is inactive until validated."""
        hook.code = secrets.token_hex(4)
        hook.status = "inactive"
        self._send(hook, "hook.verify", {"code": hook.code})

    def validate(self, hook: Hook, body: Any) -> None:
        code = body.get("code") if isinstance(body, dict) else None
        if not hook.code or code != hook.code:
            raise PodioError(400, "The verification code does not match the last hook.verify "
                                  "sent; request a new one with /verify/request")
        hook.status = "active"

    def emit(self, app_id: int, kind: str, params: dict[str, Any],
             changed_fields: set[int] | None = None) -> int:
        """Deliver an event to the active hooks listening for it; returns how many."""
        sent = 0
        for hook in list(self.hooks.values()):
            if hook.deleted or hook.status != "active" or hook.type != kind:
                continue
            if hook.ref_type == "app" and hook.ref_id == app_id:
                pass
            elif hook.ref_type == "app_field" and self.field_app(hook.ref_id) == app_id and \
                    (changed_fields is None or hook.ref_id in changed_fields):
                pass
            elif hook.ref_type == "space" and kind in SPACE_EVENTS:
                pass
            else:
                continue
            self._send(hook, kind, params)
            sent += 1
        return sent

    def _send(self, hook: Hook, kind: str, params: dict[str, Any]) -> None:
        # Podio moves a query string of the hook URL into the POST body (§9.1).
        parts = urlsplit(hook.url)
        fields: list[tuple[str, Any]] = parse_qsl(parts.query, keep_blank_values=True)
        fields += [("type", kind), ("hook_id", hook.hook_id)]
        fields += [(k, "" if v is None else v) for k, v in params.items()]
        target = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        meta = {"hook_id": hook.hook_id, "type": kind,
                **{k: v for k, v in params.items() if k != "code"}}
        self.deliverer.enqueue(Delivery("podio", target, urlencode(fields).encode(),
                                        dict(FORM_HEADERS), meta))

    def json(self, hook: Hook, *, with_ref: bool = False) -> dict[str, Any]:
        """A hook as ``GET /hook/{ref_type}/{ref_id}/`` lists it (reference §9.1: those
        fields only); ``with_ref`` adds the object it is on, for inspection."""
        out = {"hook_id": hook.hook_id, "status": hook.status, "type": hook.type,
               "url": hook.url, "created_on": ts(hook.created_on),
               "created_by": self.store.actor_ref(hook.actor),
               "created_via": hook.actor.client.via()}
        if with_ref:
            out["ref"] = {"type": hook.ref_type, "id": hook.ref_id}
        return out


def _check_url(url: Any) -> None:
    if not isinstance(url, str):
        raise PodioError(400, "The hook needs a 'url'")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PodioError(400, f"Hook url {url!r} must be an absolute http(s) URL")
    try:
        port = parts.port
    except ValueError:
        raise PodioError(400, f"Hook url {url!r} has an invalid port") from None
    # Deviation: Podio only calls public URLs on port 80/443. The sandbox also accepts
    # loopback URLs on any port, because tests and the demo receive hooks on 127.0.0.1.
    if parts.hostname not in LOCAL_HOSTS and port not in (None, *PUBLIC_PORTS):
        raise PodioError(400, f"Hook url {url!r} must use port 80 or 443")
