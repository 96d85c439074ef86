"""Apps and items over HTTP (reference §4, §5)."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from sandbox.podio.errors import PodioError
from sandbox.podio.filtering import count_query, run_filter
from sandbox.podio.http import Call, Reply, api_route
from sandbox.podio.model import Item
from sandbox.podio.service import PodioService
from sandbox.world import PODIO_APP_IDS, PODIO_SPACE_ID


class ItemApi:
    """Handlers for /app/... and /item/..."""

    def __init__(self, service: PodioService) -> None:
        self.s = service

    def routes(self) -> list[Route]:
        s, r = self.s, api_route
        return [
            r(s, "GET", "/app/", self.all_apps),
            r(s, "GET", "/app/space/{space_id:int}/", self.space_apps),
            r(s, "GET", "/app/{app_id:int}", self.get_app),
            r(s, "GET", "/app/{app_id:int}/field/{field}", self.get_field),
            r(s, "GET", "/app/{app_id:int}/item/{app_item_id:int}", self.by_app_item_id),
            r(s, "POST", "/item/app/{app_id:int}/filter/", self.filter),
            r(s, "GET", "/item/app/{app_id:int}/count", self.count),
            r(s, "GET", "/item/app/{app_id:int}/external_id/{external_id}", self.by_external),
            r(s, "POST", "/item/app/{app_id:int}/", self.create),
            r(s, "GET", "/item/{item_id:int}", self.get_item),
            r(s, "GET", "/item/{item_id:int}/basic", self.get_basic),
            r(s, "PUT", "/item/{item_id:int}", self.update),
            r(s, "DELETE", "/item/{item_id:int}", self.delete),
            r(s, "GET", "/item/{item_id:int}/value", self.get_values),
            r(s, "PUT", "/item/{item_id:int}/value", self.put_values),
            r(s, "PUT", "/item/{item_id:int}/value/{field}", self.put_value),
            r(s, "GET", "/item/{item_id:int}/revision/", self.revisions),
            r(s, "GET", "/item/{item_id:int}/revision/{rev_from:int}/{rev_to:int}", self.diff),
        ]

    # --- apps ---------------------------------------------------------------------------

    def _visible_apps(self, call: Call) -> list[Any]:
        apps = list(self.s.apps.values())
        if call.principal.kind == "app":
            apps = [a for a in apps if a.app_id == call.principal.id]
        return [a.json(PODIO_APP_IDS) for a in apps]

    def all_apps(self, call: Call) -> Reply:
        return 200, self._visible_apps(call)

    def space_apps(self, call: Call) -> Reply:
        if call.arg("space_id") != PODIO_SPACE_ID:
            raise PodioError(404, f"No space with id {call.arg('space_id')}")
        return 200, self._visible_apps(call)

    def get_app(self, call: Call) -> Reply:
        return 200, self.s.app(call.arg("app_id"), call.principal).json(PODIO_APP_IDS)

    def get_field(self, call: Call) -> Reply:
        app = self.s.app(call.arg("app_id"), call.principal)
        fdef = app.field(call.arg("field"))
        if fdef is None:
            raise PodioError(404, f"No field {call.arg('field')!r} in app {app.app_id}")
        return 200, fdef.json(PODIO_APP_IDS)

    # --- reads --------------------------------------------------------------------------

    def _item_json(self, call: Call, item: Item, full: bool = True) -> dict[str, Any]:
        comments = None
        if full:
            comments = [self.s.comments.json(c)
                        for c in self.s.comments.on("item", item.item_id)]
        return self.s.store.item_json(item, self.s.view(call.principal), comments)

    def get_item(self, call: Call) -> Reply:
        return 200, self._item_json(call, self.s.item(call.arg("item_id"), call.principal))

    def get_basic(self, call: Call) -> Reply:
        item = self.s.item(call.arg("item_id"), call.principal)
        return 200, self._item_json(call, item, full=False)

    def by_app_item_id(self, call: Call) -> Reply:
        app = self.s.app(call.arg("app_id"), call.principal)
        item = self.s.store.by_app_item_id(app, call.arg("app_item_id"))
        if item is None:
            raise PodioError(404, f"No item {call.arg('app_item_id')} in app {app.app_id}")
        return 200, self._item_json(call, self.s.item(item.item_id, call.principal))

    def by_external(self, call: Call) -> Reply:
        app = self.s.app(call.arg("app_id"), call.principal)
        ids = self.s.store.by_external.get((app.app_id, call.arg("external_id")), [])
        live = [i for i in ids if self.s.store.live_item(i) is not None]
        if not live:
            raise PodioError(404, f"No item with external_id {call.arg('external_id')!r} "
                                  f"in app {app.app_id}")
        return 200, self._item_json(call, self.s.item(min(live), call.principal))

    def filter(self, call: Call) -> Reply:
        app = self.s.app(call.arg("app_id"), call.principal)
        body = call.json()
        if not isinstance(body, dict):
            raise PodioError(400, "The filter body must be a JSON object")
        view = self.s.view(call.principal)
        live = list(self.s.store.live[app.app_id].values())
        total, filtered, page = run_filter(app, live, body, view, call.now)
        micro = "items.view(micro)" in (call.query("fields") or "")
        store = self.s.store
        items = [store.micro_json(i) if micro else store.item_json(i, view) for i in page]
        return 200, {"total": total, "filtered": filtered, "items": items}

    def count(self, call: Call) -> Reply:
        app = self.s.app(call.arg("app_id"), call.principal)
        params = dict(call.request.query_params)
        params.pop("oauth_token", None)
        body = {"filters": count_query(app, params), "limit": 1}
        live = list(self.s.store.live[app.app_id].values())
        _total, filtered, _page = run_filter(app, live, body, self.s.view(call.principal),
                                             call.now)
        return 200, {"count": filtered}

    def get_values(self, call: Call) -> Reply:
        item = self.s.item(call.arg("item_id"), call.principal)
        return 200, self.s.store.fields_json(item, self.s.view(call.principal))

    def revisions(self, call: Call) -> Reply:
        item = self.s.item(call.arg("item_id"), call.principal)
        return 200, [self.s.store.revision_json(r) for r in item.revisions]

    def diff(self, call: Call) -> Reply:
        item = self.s.item(call.arg("item_id"), call.principal)
        return 200, self.s.store.diff(item, call.arg("rev_from"), call.arg("rev_to"),
                                      self.s.view(call.principal))

    # --- writes -------------------------------------------------------------------------

    def create(self, call: Call) -> Reply:
        app = self.s.app(call.arg("app_id"), call.principal)
        call.flag("silent", False)
        item = self.s.create_item(call.principal.actor, app, call.json(),
                                  self.s.view(call.principal).tz, hook=call.flag("hook", True))
        return 200, {"item_id": item.item_id, "app_item_id": item.app_item_id,
                     "title": item.title, "link": item.link,
                     "revision": item.current.revision}

    def _write(self, call: Call, fields: Any, **options: Any) -> Reply:
        item = self.s.item(call.arg("item_id"), call.principal)
        call.flag("silent", False)
        self.s.update_item(call.principal.actor, item, fields, self.s.view(call.principal).tz,
                           hook=call.flag("hook", True), **options)
        # A no-op update keeps the current revision (whether Podio answers 204 is unverified).
        return 200, {"revision": item.current.revision, "title": item.title}

    def update(self, call: Call) -> Reply:
        body = call.json()
        if not isinstance(body, dict):
            raise PodioError(400, 'The update body must be an object like {"fields": {...}}')
        options: dict[str, Any] = {"revision": body.get("revision")}
        if "external_id" in body:
            options["external_id"] = body["external_id"]
        return self._write(call, body.get("fields"), **options)

    def put_values(self, call: Call) -> Reply:
        return self._write(call, call.json())

    def put_value(self, call: Call) -> Reply:
        raw = call.json() if call.raw.strip() else None
        return self._write(call, {call.arg("field"): raw})

    def delete(self, call: Call) -> Reply:
        item = self.s.item(call.arg("item_id"), call.principal)
        call.flag("silent", False)
        self.s.delete_item(item, hook=call.flag("hook", True))
        return 204, None
