"""The item store of the Podio emulator: members, items, revisions, and their GET shapes.

Not thread-safe by itself: ``PodioTool`` holds one lock around every use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.podio.errors import PodioError
from sandbox.podio.model import Actor, Item, PodioUser, RawValues, Revision, ts
from sandbox.podio.schema import APP_REVISION, AppDef, FieldDef
from sandbox.podio.values import calculation, parse_field, render_field, simplify
from sandbox.world import PODIO_APP_IDS, PODIO_NEW_ITEM_START, podio_item_id

FIRST_ITEM_REVISION_ID = 700_000_001  # global item_revision_id counter (§9.3), arbitrary base
ITEM_RIGHTS = ["view", "update", "delete", "comment", "add_task", "subscribe", "rate"]


@dataclass(frozen=True)
class View:
    """Who reads: the reader's time zone (date rendering) and local 'today' (calculations)."""

    tz: ZoneInfo
    today: date
    # Read created_on/last_edit_on filter bounds in ``tz`` instead of UTC (which one Podio
    # does is undocumented, docs/fidelidad.md; ``PodioTool.set_filter_bounds_zone``).
    local_meta_bounds: bool = False


class ItemStore:
    """Items of the six apps plus the workspace members they reference."""

    def __init__(self, apps: dict[str, AppDef], users: list[PodioUser]) -> None:
        self.apps = apps
        self.apps_by_id = {a.app_id: a for a in apps.values()}
        self.users = {u.user_id: u for u in users}
        self.by_profile = {u.profile_id: u for u in users}
        self.by_mail = {u.mail.lower(): u for u in users}
        self.items: dict[int, Item] = {}
        self.live: dict[int, dict[int, Item]] = {a.app_id: {} for a in apps.values()}
        self.by_external: dict[tuple[int, str], list[int]] = {}
        self.by_app_item: dict[tuple[int, int], int] = {}
        self.next_item_id = PODIO_NEW_ITEM_START
        self.next_app_item = {a.app_id: 1 for a in apps.values()}
        self.next_revision_id = FIRST_ITEM_REVISION_ID
        self._field_json = {f.field_id: self._field_base(f) for a in apps.values()
                            for f in a.fields}

    # --- Lookup protocol (values.py) ---------------------------------------------------

    def user_by_profile(self, profile_id: int) -> PodioUser | None:
        return self.by_profile.get(profile_id)

    def live_item(self, item_id: int) -> Item | None:
        item = self.items.get(item_id)
        return item if item is not None and item.deleted_on is None else None

    def by_app_item_id(self, app: AppDef, app_item_id: int) -> Item | None:
        """The item with this app_item_id in the app (deleted ones included)."""
        item_id = self.by_app_item.get((app.app_id, app_item_id))
        if item_id is None:
            seeded = self.items.get(podio_item_id(app.name, app_item_id))
            if seeded is not None and seeded.app is app and seeded.app_item_id == app_item_id:
                return seeded
            return None
        return self.items.get(item_id)

    # --- writes -------------------------------------------------------------------------

    def new_revision(self, number: int, when: datetime, actor: Actor,
                     values: tuple[Any, ...], kind: str) -> Revision:
        rev = Revision(number, self.next_revision_id, when, actor, values, kind)
        self.next_revision_id += 1
        return rev

    def add(self, app: AppDef, item_id: int, app_item_id: int, first: Revision,
            external_id: str | None = None, indexed: bool = True) -> Item:
        """Register an item (seeding and create). Seeded items are not indexed by
        app_item_id: theirs is derivable (``world.podio_item_id(app, app_item_id)``)."""
        item = Item(item_id, app, app_item_id, external_id, first)
        self.items[item_id] = item
        self.live[app.app_id][item_id] = item
        if indexed:
            self.by_app_item[(app.app_id, app_item_id)] = item_id
        self.next_app_item[app.app_id] = max(self.next_app_item[app.app_id], app_item_id + 1)
        if external_id:
            self.by_external.setdefault((app.app_id, external_id), []).append(item_id)
        return item

    def parse_fields(self, app: AppDef, fields: Any, tz: ZoneInfo) -> dict[int, Any]:
        """The ``fields`` of a create/update (object keyed by external_id or field_id, or the
        list-of-field-objects shape podio-rb sends) as {position: internal value}."""
        pairs: list[tuple[Any, Any]]
        if fields is None:
            return {}
        if isinstance(fields, dict):
            pairs = list(fields.items())
        elif isinstance(fields, list):
            pairs = []
            for obj in fields:
                if not isinstance(obj, dict):
                    raise PodioError(400, "'fields' as a list must hold objects like "
                                          '{"external_id": "...", "values": [...]}')
                key = obj.get("external_id") or obj.get("field_id")
                pairs.append((key, obj.get("values", obj.get("value"))))
        else:
            raise PodioError(400, "'fields' must be an object keyed by external_id or "
                                  "field_id, or a list of field objects")
        out: dict[int, Any] = {}
        for key, raw in pairs:
            fdef = app.field(key) if key is not None else None
            if fdef is None:
                raise PodioError(400, f"No field {key!r} in app '{app.label}' ({app.app_id}); "
                                      f"use one of {[f.external_id for f in app.fields]}",
                                 parameters={"field": key})
            out[fdef.pos] = parse_field(fdef, raw, self, tz)
        return out

    def create(self, app: AppDef, changes: dict[int, Any], actor: Actor, when: datetime,
               external_id: str | None) -> Item:
        values = [None] * len(app.fields)
        for pos, value in changes.items():
            values[pos] = value
        item_id = self.next_item_id
        self.next_item_id += 1
        first = self.new_revision(0, when, actor, tuple(values), "creation")
        return self.add(app, item_id, self.next_app_item[app.app_id], first, external_id)

    def update(self, item: Item, changes: dict[int, Any], actor: Actor,
               when: datetime) -> Revision | None:
        """Apply changes; a new revision, or None when nothing changed (no-op update)."""
        values = list(item.values)
        for pos, value in changes.items():
            values[pos] = value
        new = tuple(values)
        if new == item.values:
            return None
        rev = self.new_revision(item.current.revision + 1, when, actor, new, "update")
        item.revisions.append(rev)
        item.last_event_on = max(item.last_event_on, when)
        return rev

    def set_external_id(self, item: Item, external_id: str | None) -> None:
        if item.external_id:
            ids = self.by_external.get((item.app.app_id, item.external_id), [])
            if item.item_id in ids:
                ids.remove(item.item_id)
        item.external_id = external_id or None
        if external_id:
            self.by_external.setdefault((item.app.app_id, external_id), []).append(item.item_id)

    def delete(self, item: Item, when: datetime) -> int:
        """Mark deleted; returns the item_revision_id of the deletion event."""
        item.deleted_on = when
        self.live[item.app.app_id].pop(item.item_id, None)
        revision_id = self.next_revision_id
        self.next_revision_id += 1
        return revision_id

    def inject(self, item: Item, fdef: FieldDef, raw: list[Any], actor: Actor,
               when: datetime) -> Revision | None:
        return self.update(item, {fdef.pos: RawValues(raw)}, actor, when)

    # --- reads --------------------------------------------------------------------------

    def actor_ref(self, actor: Actor) -> dict[str, Any]:
        """``created_by`` of a change."""
        if actor.kind == "user":
            user = self.users.get(actor.id)
            if user is not None:
                return user.ref()
            return {"type": "user", "id": actor.id, "name": None}
        app = self.apps_by_id.get(actor.id)
        return {"type": "app", "id": actor.id, "name": app.label if app else None,
                "url": app.link if app else None, "avatar": None, "image": None}

    def revision_json(self, rev: Revision) -> dict[str, Any]:
        return {"revision": rev.revision, "item_revision_id": rev.item_revision_id,
                "app_revision": APP_REVISION, "type": rev.kind,
                "created_by": self.actor_ref(rev.actor), "created_via": rev.actor.client.via(),
                "created_on": ts(rev.created_on)}

    def fields_json(self, item: Item, view: View, values: tuple[Any, ...] | None = None
                    ) -> list[dict[str, Any]]:
        """The item's ``fields``: only those with values, in app order (§5.2)."""
        values = item.values if values is None else values
        out = []
        for fdef in item.app.fields:
            value = values[fdef.pos]
            if fdef.type == "calculation" and value is None:
                value = calculation(fdef, item.app, values, view.today)
            if value is None:
                continue
            rendered = render_field(fdef, value, self, view.tz)
            if rendered:
                out.append({**self._field_json[fdef.field_id], "values": rendered})
        return out

    def item_json(self, item: Item, view: View, comments: list[dict[str, Any]] | None = None
                  ) -> dict[str, Any]:
        """GET /item/{id} (§5.2); ``comments`` None gives the /basic shape."""
        first, current = item.revisions[0], item.current
        body: dict[str, Any] = {
            "item_id": item.item_id, "app_item_id": item.app_item_id,
            "app_item_id_formatted": str(item.app_item_id), "external_id": item.external_id,
            "title": item.title, "link": item.link, "app": item.app.mini(),
            "created_on": ts(first.created_on), "created_by": self.actor_ref(first.actor),
            "created_via": first.actor.client.via(),
            "initial_revision": self.revision_json(first),
            "current_revision": self.revision_json(current),
            "last_event_on": ts(item.last_event_on), "rights": ITEM_RIGHTS,
            "tags": [], "files": [], "ratings": {}, "subscribed": False,
            "fields": self.fields_json(item, view),
        }
        if comments is not None:
            body["comments"] = comments
        return body

    def micro_json(self, item: Item) -> dict[str, Any]:
        """``fields=items.view(micro)`` on filter."""
        return {"item_id": item.item_id, "app_item_id": item.app_item_id,
                "title": item.title, "link": item.link}

    def simple_values(self, item: Item, view: View) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for fdef in item.app.fields:
            value = item.values[fdef.pos]
            if fdef.type == "calculation" and value is None:
                value = calculation(fdef, item.app, item.values, view.today)
            if value is not None:
                out[fdef.external_id] = simplify(fdef, value, self)
        return out

    def diff(self, item: Item, rev_from: int, rev_to: int, view: View) -> list[dict[str, Any]]:
        """GET /item/{id}/revision/{from}/{to}: the fields whose values differ."""
        count = len(item.revisions)
        if not (0 <= rev_from < count and 0 <= rev_to < count):
            raise PodioError(404, f"Item {item.item_id} has revisions 0..{count - 1}")
        old, new = item.revisions[rev_from].values, item.revisions[rev_to].values
        out = []
        for fdef in item.app.fields:
            if fdef.type == "calculation":
                before = calculation(fdef, item.app, old, view.today)
                after = calculation(fdef, item.app, new, view.today)
            else:
                before, after = old[fdef.pos], new[fdef.pos]
            if before == after:
                continue
            out.append({
                "field_id": fdef.field_id, "external_id": fdef.external_id,
                "label": fdef.label, "type": fdef.item_type,
                "from": render_field(fdef, before, self, view.tz) if before is not None else [],
                "to": render_field(fdef, after, self, view.tz) if after is not None else [],
            })
        return out

    def _field_base(self, fdef: FieldDef) -> dict[str, Any]:
        config = fdef.config(PODIO_APP_IDS)
        return {"field_id": fdef.field_id, "external_id": fdef.external_id,
                "type": fdef.item_type, "label": fdef.label, "config": config}
