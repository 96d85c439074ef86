"""The webhook receiver: verify, store the delivery in the inbox, answer fast.

Nothing heavy happens in the request: workers (jobs/inbox.py) fetch the current record,
upsert it and evaluate the rules. One route per tool that sends webhooks
(``connectors.registry.with_webhooks``): ``POST /hooks/<tool>/{token}``. The path token
(WEBHOOK_TOKEN) is checked here, for every tool (a wrong one answers 404 and stores
nothing); the tool's receiver checks the rest (a signature: 401; a shape the worker could not
use: 400). Bodies above ``MAX_BODY_BYTES`` answer 413. A delivery seen before (same dedupe
key) answers 200 and is not stored twice.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors import registry
from connectors.registry import Connector, Rejected, Webhooks, is_id
from core.settings import Settings
from store.db import Database, utcnow
from store.models import WebhookInbox

log = structlog.get_logger(__name__)

# Podio deliveries are a few form fields; Jira issue payloads with changelog are tens of KB.
MAX_BODY_BYTES = 256 * 1024


class BodyTooLarge(Exception):
    pass


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and is_id(declared) and int(declared) > MAX_BODY_BYTES:
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


def build_routes(settings: Settings, db: Database, notify: Any = None) -> list[Route]:
    """The receiver's routes. ``notify()`` (optional) wakes the inbox worker."""
    token = settings.webhook_token.get_secret_value()

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

    def receiver(connector: Connector, hooks: Webhooks) -> Callable[[Request],
                                                                      Awaitable[Response]]:
        async def receive(request: Request) -> Response:
            body = await authenticated_body(request)
            if isinstance(body, Response):
                return body
            try:
                delivery = hooks.receive(settings, request.headers, body)
            except Rejected as exc:
                return JSONResponse({"error": exc.reason}, status_code=exc.status)
            stored = await run_in_threadpool(_store, db, connector.name, delivery.key,
                                            delivery.kind, delivery.payload)
            log.info(f"webhook.{connector.name}", **delivery.log, stored=stored)
            wake()
            return JSONResponse({"ok": True, "duplicate": not stored})

        return receive

    return [Route(f"/hooks/{connector.name}/{{token}}", receiver(connector, hooks),
                  methods=["POST"])
            for connector in registry.with_webhooks() if (hooks := connector.webhooks)]
