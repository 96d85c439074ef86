"""``PodioTool``: the emulated Podio API served under ``/podio`` (docs/sandbox.md, "Podio").

Python helpers (``item``, ``values``, ``create_item_as`` …) let tests act as a staff member
in Podio's UI and read what the integration wrote; they take the same lock as the API.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from sandbox.podio.api_items import ItemApi
from sandbox.podio.api_social import SocialApi
from sandbox.podio.auth import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_PASSWORD,
    GENERAL_HOURLY_LIMIT,
    RATE_LIMITED_HOURLY_LIMIT,
    Principal,
    RateLimiter,
)
from sandbox.podio.errors import ERROR_CODES, fault_body
from sandbox.podio.http import not_found_route
from sandbox.podio.model import PODIO_UI, Actor, PodioUser
from sandbox.podio.schema import AppDef, Option
from sandbox.podio.seed import ADMIN_EMAIL
from sandbox.podio.service import DELETED_STATUSES, PodioService

if TYPE_CHECKING:
    from sandbox.server import Sandbox


class PodioTool:
    """The emulated Podio: HTTP routes plus helpers for tests and the demo."""

    name = "podio"

    def __init__(self, sandbox: Sandbox, *, general_quota: int = GENERAL_HOURLY_LIMIT,
                 rate_limited_quota: int = RATE_LIMITED_HOURLY_LIMIT,
                 rate_limited_operations: Iterable[str] = (),
                 filter_rate_limited: bool = False, deleted_status: int = 404,
                 user_timezone: str = "America/Tijuana") -> None:
        if deleted_status not in DELETED_STATUSES:
            raise ValueError(f"deleted_status must be one of {DELETED_STATUSES}")
        self.sandbox = sandbox
        self.service = PodioService(sandbox, user_timezone=user_timezone,
                                    deleted_status=deleted_status)
        self.service.limiter = RateLimiter(general_quota, rate_limited_quota,
                                           rate_limited_operations, filter_rate_limited)
        self.lock = self.service.lock

    # --- Tool protocol ------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [*SocialApi(self.service).routes(), *ItemApi(self.service).routes(),
                not_found_route()]

    def error_body(self, status: int, path: str, retry_after: float | None
                   ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        return fault_body(status, self.sandbox.url("podio") + path, retry_after)

    def env(self) -> dict[str, str]:
        values = {
            "PODIO_API_URL": self.sandbox.url("podio"),
            "PODIO_CLIENT_ID": DEMO_CLIENT_ID,
            "PODIO_CLIENT_SECRET": DEMO_CLIENT_SECRET,
            "PODIO_USERNAME": ADMIN_EMAIL,
            "PODIO_PASSWORD": DEMO_PASSWORD,
        }
        for app in self.service.apps.values():
            values[f"PODIO_APP_{app.name.upper()}_ID"] = str(app.app_id)
            values[f"PODIO_APP_{app.name.upper()}_TOKEN"] = self.service.app_tokens[app.app_id]
        return values

    def snapshot(self) -> dict[str, Any]:
        """JSON-able summary for GET /_sandbox/state/podio."""
        s = self.service
        with self.lock:
            return {
                "apps": {a.name: {"app_id": a.app_id, "items": len(s.store.live[a.app_id])}
                         for a in s.apps.values()},
                "deleted_items": sum(1 for i in s.store.items.values() if i.deleted_on),
                "tasks": [s.tasks.json(t, s.tz) for t in s.tasks.tasks.values()
                          if not t.deleted],
                "comments": [s.comments.json(c) for c in s.comments.comments.values()
                             if not c.deleted],
                "hooks": [s.hooks.json(h, with_ref=True) for h in s.hooks.hooks.values()
                          if not h.deleted],
                "quota": s.limiter.usage(s.now()),
            }

    def inspection_routes(self) -> list[BaseRoute]:
        return [
            Route("/quota", self._quota_route, methods=["GET", "POST"]),
            Route("/expire-tokens", self._expire_route, methods=["POST"]),
            Route("/switches", self._switches_route, methods=["GET", "POST"]),
            Route("/items/{item_id:int}", self._item_route, methods=["GET"]),
            Route("/items/{item_id:int}/revisions", self._revisions_route, methods=["GET"]),
        ]

    # --- helpers for tests (names fixed by the lead's tests) ----------------------------

    def app_id(self, name: str) -> int:
        return self.service.app_by_name(name).app_id

    def item(self, item_id: int) -> dict[str, Any]:
        """Full GET /item/{id} shape, as the integration user sees it."""
        s = self.service
        with self.lock:
            item = s.item(item_id, None)
            comments = [s.comments.json(c) for c in s.comments.on("item", item_id)]
            return s.store.item_json(item, s.view(), comments)

    def values(self, item_id: int) -> dict[str, Any]:
        """{external_id: simplified value} of a live item (see docs/sandbox.md)."""
        with self.lock:
            return self.service.store.simple_values(self.service.item(item_id, None),
                                                    self.service.view())

    def items(self, app_name: str) -> list[int]:
        """Live item ids of an app, ascending."""
        with self.lock:
            return sorted(self.service.store.live[self.app_id(app_name)])

    def _member(self, email: str) -> PodioUser:
        user = self.service.store.by_mail.get(email.lower())
        if user is None:
            raise KeyError(f"no Podio member {email!r}")
        return user

    def _ui_actor(self, email: str) -> Actor:
        return Actor("user", self._member(email).user_id, PODIO_UI)

    def _ui_fields(self, app: AppDef, fields: Any) -> Any:
        """In the UI a person picks category options by their text: accept texts here
        (the API itself only takes option ids, reference §6)."""
        if not isinstance(fields, dict):
            return fields
        out = {}
        for key, value in fields.items():
            fdef = app.field(key)
            if fdef is not None and fdef.type == "category":
                texts = value if isinstance(value, list) else [value]
                if texts and all(isinstance(t, str) and not t.isdigit() for t in texts):
                    try:
                        value = [fdef.option_id(t) for t in texts]
                    except KeyError as exc:
                        raise ValueError(str(exc)) from None
            out[key] = value
        return out

    def create_item_as(self, email: str, app_name: str, fields: Any, hook: bool = True,
                       external_id: str | None = None) -> int:
        """Create an item as a member in Podio's UI (same validation, revisions, hooks).
        Category values may be option texts, as a person picks them."""
        s = self.service
        with self.lock:
            app = s.app_by_name(app_name)
            body = {"fields": self._ui_fields(app, fields), "external_id": external_id}
            item = s.create_item(self._ui_actor(email), app, body, s.tz, hook=hook)
            return item.item_id

    def update_item_as(self, email: str, item_id: int, fields: Any, hook: bool = True) -> int:
        """Update an item as a member in Podio's UI; returns the current revision.
        Category values may be option texts, as a person picks them."""
        s = self.service
        with self.lock:
            item = s.item(item_id, None)
            s.update_item(self._ui_actor(email), item, self._ui_fields(item.app, fields), s.tz,
                          hook=hook)
            return item.current.revision

    def delete_item_as(self, email: str, item_id: int, hook: bool = True) -> None:
        self._member(email)
        with self.lock:
            self.service.delete_item(self.service.item(item_id, None), hook=hook)

    def add_comment_as(self, email: str, item_id: int, text: str, hook: bool = True) -> int:
        """A member comments on an item in Podio's UI; returns the comment_id."""
        principal = Principal("user", self._member(email).user_id, PODIO_UI)
        with self.lock:
            return self.service.add_comment("item", item_id, {"value": text}, principal,
                                            hook=hook).comment_id

    def tasks(self, ref_item_id: int | None = None) -> list[dict[str, Any]]:
        """Live tasks (task objects), optionally only those on one item."""
        s = self.service
        with self.lock:
            return [s.tasks.json(t, s.tz) for t in s.tasks.tasks.values()
                    if not t.deleted and (ref_item_id is None or
                                          (t.ref_type == "item" and t.ref_id == ref_item_id))]

    def comments(self, item_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return [self.service.comments.json(c)
                    for c in self.service.comments.on("item", item_id)]

    def hooks(self) -> list[dict[str, Any]]:
        with self.lock:
            return [self.service.hooks.json(h, with_ref=True)
                    for h in self.service.hooks.hooks.values()
                    if not h.deleted]

    def revisions(self, item_id: int) -> list[dict[str, Any]]:
        with self.lock:
            item = self.service.item(item_id, None)
            return [self.service.store.revision_json(r) for r in item.revisions]

    def expire_tokens(self) -> int:
        """Expire every access token now (refresh tokens keep working)."""
        with self.lock:
            return self.service.oauth.expire_all(self.service.now())

    def set_quota(self, general: int, rate_limited: int | None = None,
                  filter_rate_limited: bool | None = None, reset: bool = True) -> None:
        """Change the hourly limits (and optionally whether filter is 'rate limited')."""
        with self.lock:
            limiter = self.service.limiter
            limiter.general = general
            if rate_limited is not None:
                limiter.rate_limited = rate_limited
            if filter_rate_limited is not None:
                limiter.filter_rate_limited = filter_rate_limited
            if reset:
                limiter.reset()

    def set_deleted_status(self, status: int) -> None:
        """404 (default) or 410 for GETs of deleted items."""
        if status not in DELETED_STATUSES:
            raise ValueError(f"deleted_status must be one of {DELETED_STATUSES}")
        with self.lock:
            self.service.deleted_status = status

    def inject_raw_values(self, item_id: int, external_id: str, raw_values: list[Any],
                          hook: bool = False) -> None:
        """Store malformed values verbatim (GET returns them as given), as a new revision
        by the integration user, to exercise a connector's dead-letter path."""
        s = self.service
        with self.lock:
            item = s.item(item_id, None)
            fdef = item.app.field(external_id)
            if fdef is None:
                raise KeyError(f"no field {external_id!r} in {item.app.name}")
            actor = self._ui_actor(ADMIN_EMAIL)
            rev = s.store.inject(item, fdef, list(raw_values), actor, s.now())
            if rev is not None and hook:
                s.hooks.emit(item.app.app_id, "item.update", {
                    "item_id": item_id, "item_revision_id": rev.item_revision_id,
                    "external_id": item.external_id or ""}, {fdef.field_id})

    @staticmethod
    def set_error_code(status: int, code: str) -> str:
        """The machine ``error`` this sandbox answers ``status`` with (e.g. 400's
        "invalid_value", undocumented: docs/fidelidad.md); returns the previous one, to put
        back. Process-wide, like the error table it changes."""
        previous = ERROR_CODES.get(status, "error")
        ERROR_CODES[status] = code
        return previous

    def set_filter_bounds_zone(self, zone: str) -> None:
        """How created_on/last_edit_on filter bounds are read: "utc" (default) or "user"
        (the reader's profile zone); Podio does not document which (docs/fidelidad.md)."""
        if zone not in ("utc", "user"):
            raise ValueError("zone is 'utc' or 'user'")
        with self.lock:
            self.service.filter_bounds_zone = zone

    def set_app_timezone(self, zone: str | None) -> None:
        """The zone app tokens read unsuffixed date keys in (None: the members' zone); the
        real one is undocumented (reference §6.1), so both sides are testable."""
        with self.lock:
            self.service.app_tz = ZoneInfo(zone) if zone else None

    def add_option(self, app_name: str, external_id: str, text: str) -> int:
        """An admin adds an option to a category field in Podio's app editor; returns its
        id (config/podio.yaml does not know it yet)."""
        with self.lock:
            fdef = self.service.app_by_name(app_name).field(external_id)
            if fdef is None or fdef.type != "category":
                raise KeyError(f"no category field {external_id!r} in {app_name}")
            option = Option(max((o.id for o in fdef.options), default=0) + 1, text, "DCEBD8")
            fdef.options = (*fdef.options, option)
            return option.id

    def api_client(self, client_id: str, secret: str, name: str | None = None) -> int:
        """Register another API key; returns its created_via id."""
        with self.lock:
            return self.service.oauth.add_client(client_id, secret, name).via_id

    # --- inspection routes --------------------------------------------------------------

    async def _quota_route(self, request: Request) -> JSONResponse:
        if request.method == "POST":
            body = await request.json()
            limiter = self.service.limiter
            try:
                self.set_quota(int(body.get("general", limiter.general)),
                               body.get("rate_limited"), body.get("filter_rate_limited"),
                               bool(body.get("reset", True)))
                if "rate_limited_operations" in body:
                    with self.lock:
                        limiter.operations = set(body["rate_limited_operations"])
            except (TypeError, ValueError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        with self.lock:
            return JSONResponse(self.service.limiter.usage(self.service.now()))

    async def _expire_route(self, _request: Request) -> JSONResponse:
        return JSONResponse({"expired": self.expire_tokens()})

    async def _switches_route(self, request: Request) -> JSONResponse:
        if request.method == "POST":
            body = await request.json()
            try:
                if "deleted_status" in body:
                    self.set_deleted_status(int(body["deleted_status"]))
            except (TypeError, ValueError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"deleted_status": self.service.deleted_status})

    async def _item_route(self, request: Request) -> JSONResponse:
        try:
            return JSONResponse(self.values(request.path_params["item_id"]))
        except Exception as exc:  # noqa: BLE001 - inspection answers any failure as 404
            return JSONResponse({"error": str(exc)}, status_code=404)

    async def _revisions_route(self, request: Request) -> JSONResponse:
        try:
            return JSONResponse(self.revisions(request.path_params["item_id"]))
        except Exception as exc:  # noqa: BLE001
            return JSONResponse({"error": str(exc)}, status_code=404)
