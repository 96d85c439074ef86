"""The webhook receiver: verify, store the delivery in the inbox, answer fast.

Nothing heavy happens in the request: workers (jobs/inbox.py) fetch the current record,
upsert it and evaluate the rules. Routes:

- ``POST /hooks/podio/{token}``: Podio hooks, form-encoded (``type``, ``hook_id``,
  ``item_id``, ``item_revision_id``, ``code`` for ``hook.verify``). Podio signs nothing, so
  the secret is the path token (WEBHOOK_TOKEN); a wrong token answers 404 and stores nothing.
- ``POST /hooks/jira/{token}``: Jira admin webhooks, JSON, signed ``X-Hub-Signature:
  sha256=<hmac of the raw body with JIRA_WEBHOOK_SECRET>``; a bad signature answers 401.
- Bodies above ``MAX_BODY_BYTES`` answer 413; malformed bodies 400 (shapes the worker could
  not use: see ``podio_problem`` / ``jira_problem``). A delivery seen before (same dedupe
  key) answers 200 and is not stored twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import parse_qsl

import structlog
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.settings import Settings
from store.db import Database, utcnow
from store.models import WebhookInbox

log = structlog.get_logger(__name__)

# Podio deliveries are a few form fields; Jira issue payloads with changelog are tens of KB.
MAX_BODY_BYTES = 256 * 1024
PODIO_EVENTS = {"hook.verify", "item.create", "item.update", "item.delete", "comment.create"}


class BodyTooLarge(Exception):
    pass


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and _is_id(declared) and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLarge
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise BodyTooLarge
    return body


def _store(db: Database, source: str, key: str, event_type: str, payload: dict[str, Any]) -> bool:
    """Insert the delivery; False when the same delivery was stored before."""
    try:
        with db.session() as session:
            session.add(WebhookInbox(source=source, delivery_key=key[:200], event_type=event_type,
                                     payload=payload, status="pending", received_at=utcnow()))
    except IntegrityError:
        return False
    return True


def _is_id(value: object) -> bool:
    text = str(value)
    return text.isascii() and text.isdigit()


def podio_problem(fields: Any) -> str | None:
    """Why a Podio delivery cannot be processed (None when its shape is usable)."""
    if not isinstance(fields, dict):
        return "expected the fields of a Podio delivery"
    kind = fields.get("type", "")
    if kind not in PODIO_EVENTS or not _is_id(fields.get("hook_id", "")):
        return f"unknown or incomplete Podio event {kind!r}"
    if kind != "hook.verify" and not _is_id(fields.get("item_id", "")):
        return "item_id missing or not a number"
    if fields.get("item_revision_id") not in (None, "") and not _is_id(fields["item_revision_id"]):
        return "item_revision_id is not a number"
    return None


def jira_problem(payload: Any) -> str | None:
    """Why a Jira delivery cannot be processed (None when its shape is usable): an issue
    event names its issue by a numeric id."""
    if not isinstance(payload, dict) or not isinstance(payload.get("webhookEvent"), str):
        return "not a Jira webhook (no webhookEvent)"
    event = payload["webhookEvent"]
    issue = payload.get("issue")
    if issue is not None or event.startswith(("jira:issue_", "comment_")):
        if not isinstance(issue, dict):
            return f"{event}: 'issue' must be an object, not {type(issue).__name__}"
        if not _is_id(issue.get("id", "")):
            return f"{event}: issue.id missing or not a number"
    return None


def delivery_problem(source: str, payload: Any) -> str | None:
    """Why a stored delivery cannot be processed (the inbox worker re-checks each one)."""
    if source == "podio":
        return podio_problem(payload)
    if source == "jira":
        return jira_problem(payload)
    return f"unknown source {source!r}"


def podio_delivery_key(fields: dict[str, str]) -> str:
    """Dedupe key: (type, item_id, item_revision_id) — reference §9.4; the verify by code."""
    kind = fields.get("type", "")
    if kind == "hook.verify":
        return f"podio:hook.verify:{fields.get('hook_id')}:{fields.get('code')}"
    return (f"podio:{kind}:{fields.get('item_id')}:{fields.get('item_revision_id', '')}"
            f":{fields.get('comment_id', '')}")


def build_routes(settings: Settings, db: Database, notify: Any = None) -> list[Route]:
    """The receiver's routes. ``notify()`` (optional) wakes the inbox worker."""
    token = settings.webhook_token.get_secret_value()
    jira_secret = settings.jira_webhook_secret.get_secret_value().encode()

    def wake() -> None:
        if notify is not None:
            notify()

    async def authenticated_body(request: Request) -> bytes | Response:
        """The raw body of a request whose path token is right; else the refusal."""
        if not token or not hmac.compare_digest(request.path_params["token"], token):
            return Response(status_code=404)
        try:
            return await _read_body(request)
        except BodyTooLarge:
            return JSONResponse({"error": "body too large"}, status_code=413)

    async def podio(request: Request) -> Response:
        body = await authenticated_body(request)
        if isinstance(body, Response):
            return body
        try:
            fields = dict(parse_qsl(body.decode("utf-8"), strict_parsing=True))
        except (UnicodeDecodeError, ValueError):
            return JSONResponse({"error": "expected a form-encoded Podio delivery"}, 400)
        kind = fields.get("type", "")
        problem = podio_problem(fields)
        if problem:
            return JSONResponse({"error": problem}, 400)
        stored = await run_in_threadpool(_store, db, "podio", podio_delivery_key(fields), kind,
                                        fields)
        log.info("webhook.podio", type=kind, item_id=fields.get("item_id"), stored=stored)
        wake()
        return JSONResponse({"ok": True, "duplicate": not stored})

    async def jira(request: Request) -> Response:
        body = await authenticated_body(request)
        if isinstance(body, Response):
            return body
        if jira_secret:
            expected = "sha256=" + hmac.new(jira_secret, body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(request.headers.get("x-hub-signature", ""), expected):
                return JSONResponse({"error": "bad signature"}, status_code=401)
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            return JSONResponse({"error": "expected a JSON Jira delivery"}, status_code=400)
        problem = jira_problem(payload)
        if problem:
            return JSONResponse({"error": problem}, 400)
        key = request.headers.get("x-atlassian-webhook-identifier") or hashlib.sha256(
            body).hexdigest()
        stored = await run_in_threadpool(_store, db, "jira", f"jira:{key}",
                                        str(payload["webhookEvent"]), payload)
        log.info("webhook.jira", webhook_event=payload["webhookEvent"], stored=stored)
        wake()
        return JSONResponse({"ok": True, "duplicate": not stored})

    return [Route("/hooks/podio/{token}", podio, methods=["POST"]),
            Route("/hooks/jira/{token}", jira, methods=["POST"])]
