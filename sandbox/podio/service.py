"""The Podio emulator's state and operations, shared by the HTTP API and the test helpers
(a change made "in the Podio UI" goes through the same validation, revisions and hooks)."""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sandbox.podio.auth import OAuth, Principal, RateLimiter
from sandbox.podio.comments import Comment, CommentStore
from sandbox.podio.errors import PodioError
from sandbox.podio.hooks import HookRegistry
from sandbox.podio.model import Actor, Item, Revision
from sandbox.podio.schema import AppDef, build_apps
from sandbox.podio.seed import Seeder, directory
from sandbox.podio.store import ItemStore, View
from sandbox.podio.tasks import Task, TaskStore
from sandbox.podio.values import utc_to_local

if TYPE_CHECKING:
    from sandbox.server import Sandbox

DEFAULT_TIMEZONE = "America/Tijuana"  # every member's profile time zone (SPEC §3 default)
DELETED_STATUSES = (404, 410)  # what GET on a deleted item answers; 404 vs 410 unverified


class PodioService:
    """Everything the emulated Podio knows, behind one re-entrant lock."""

    def __init__(self, sandbox: Sandbox, *, user_timezone: str = DEFAULT_TIMEZONE,
                 deleted_status: int = 404, seed: bool = True) -> None:
        self.sandbox = sandbox
        self.clock = sandbox.clock
        self.lock = threading.RLock()
        self.tz = ZoneInfo(user_timezone)
        # The zone an app token reads unsuffixed dates in: undocumented (reference §6.1),
        # so a switch (``PodioTool.set_app_timezone``); by default the members' zone.
        self.app_tz: ZoneInfo | None = None
        # How created_on/last_edit_on filter bounds are read: "utc" or "user" (the reader's
        # zone); undocumented (docs/fidelidad.md), so a switch.
        self.filter_bounds_zone = "utc"
        self.deleted_status = deleted_status
        self.apps = build_apps()
        users = directory(sandbox.world, user_timezone)
        self.store = ItemStore(self.apps, users)
        self.tasks = TaskStore(self.store)
        self.comments = CommentStore(self.store)
        self.hooks = HookRegistry(self.store, sandbox.webhooks)
        self.app_tokens = {a.app_id: _app_token(sandbox.world.seed, a.app_id)
                           for a in self.apps.values()}
        self.oauth = OAuth(users, self.app_tokens)
        self.limiter = RateLimiter()
        if seed:
            Seeder(self.store, sandbox.world).run()

    # --- context ------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock.now()

    def view(self, principal: Principal | None = None) -> View:
        """Rendering context of a reader (members and apps share one time zone here)."""
        tz = self.tz
        if principal is not None and principal.kind == "app" and self.app_tz is not None:
            tz = self.app_tz
        if principal is not None and principal.kind == "user":
            user = self.store.users.get(principal.id)
            tz = ZoneInfo(user.timezone) if user is not None else tz
        return View(tz, utc_to_local(self.now(), tz).date(),
                    self.filter_bounds_zone == "user")

    def app_by_name(self, name: str) -> AppDef:
        try:
            return self.apps[name]
        except KeyError:
            raise KeyError(f"no Podio app {name!r}; apps are {sorted(self.apps)}") from None

    def app(self, app_id: int, principal: Principal | None) -> AppDef:
        """An app the principal may use (404 unknown, 403 for another app's token)."""
        app = self.store.apps_by_id.get(app_id)
        if app is None:
            raise PodioError(404, f"No app with id {app_id}")
        self.check_app_access(principal, app_id)
        return app

    def check_app_access(self, principal: Principal | None, app_id: int) -> None:
        if principal is not None and principal.kind == "app" and principal.id != app_id:
            raise PodioError(403, f"This token was issued for app {principal.id} and cannot "
                                  f"reach app {app_id}; authenticate that app with its own "
                                  "app token", error="forbidden")

    def item(self, item_id: int, principal: Principal | None) -> Item:
        """A live item (404, or 410 when deleted and the switch says so)."""
        item = self.store.items.get(item_id)
        if item is None:
            raise PodioError(404, f"No item with id {item_id}")
        if item.deleted_on is not None:
            status = self.deleted_status
            raise PodioError(status, f"Item {item_id} was deleted",
                             error="gone" if status == 410 else "not_found")
        self.check_app_access(principal, item.app.app_id)
        return item

    # --- item writes --------------------------------------------------------------------

    def create_item(self, actor: Actor, app: AppDef, body: Any, tz: ZoneInfo,
                    hook: bool = True) -> Item:
        if not isinstance(body, dict):
            raise PodioError(400, 'The item body must be an object like {"fields": {...}}')
        changes = self.store.parse_fields(app, body.get("fields"), tz)
        external_id = body.get("external_id")
        item = self.store.create(app, changes, actor, self.now(),
                                 str(external_id) if external_id is not None else None)
        if hook:
            filled = {f.field_id for f in app.fields if item.values[f.pos] is not None}
            self._emit_item(item, "item.create", item.current.item_revision_id, filled)
        return item

    def update_item(self, actor: Actor, item: Item, fields: Any, tz: ZoneInfo, *,
                    revision: Any = None, external_id: Any = ..., hook: bool = True
                    ) -> Revision | None:
        """Apply a field update; None when nothing changed (no revision, no hook)."""
        if revision is not None:
            if isinstance(revision, bool) or not isinstance(revision, int):
                raise PodioError(400, "'revision' must be the integer current_revision.revision")
            if revision != item.current.revision:
                raise PodioError(409, f"Item {item.item_id} is at revision "
                                      f"{item.current.revision}, not {revision}; re-read it and "
                                      "apply the change again", error="conflict",
                                 parameters={"current_revision": item.current.revision})
        changes = self.store.parse_fields(item.app, fields, tz)
        if external_id is not ...:
            self.store.set_external_id(item, str(external_id) if external_id else None)
        before = item.values
        rev = self.store.update(item, changes, actor, self.now())
        if rev is not None and hook:
            changed = {f.field_id for f in item.app.fields
                       if before[f.pos] != rev.values[f.pos]}
            self._emit_item(item, "item.update", rev.item_revision_id, changed)
        return rev

    def delete_item(self, item: Item, hook: bool = True) -> None:
        revision_id = self.store.delete(item, self.now())
        if hook:
            self._emit_item(item, "item.delete", revision_id, None)

    def _emit_item(self, item: Item, kind: str, revision_id: int,
                   changed: set[int] | None) -> None:
        self.hooks.emit(item.app.app_id, kind, {
            "item_id": item.item_id, "item_revision_id": revision_id,
            "external_id": item.external_id or ""}, changed)

    # --- comments and tasks -------------------------------------------------------------

    def add_comment(self, ref_type: str, ref_id: int, body: Any, principal: Principal,
                    hook: bool = True) -> Comment:
        item = self.item(ref_id, principal) if ref_type == "item" else None
        if ref_type == "task":
            self.task(ref_id, principal)
        now = self.now()
        comment = self.comments.add(ref_type, ref_id, body, principal.actor, now)
        if item is not None:
            item.last_event_on = max(item.last_event_on, now)  # not last_edit_on (§10.3)
            if hook:
                self.hooks.emit(item.app.app_id, "comment.create",
                                {"item_id": item.item_id, "comment_id": comment.comment_id})
        return comment

    def delete_comment(self, comment: Comment, principal: Principal, hook: bool = True) -> None:
        if comment.ref_type == "item":
            item = self.item(comment.ref_id, principal)
            if hook:
                self.hooks.emit(item.app.app_id, "comment.delete",
                                {"item_id": item.item_id, "comment_id": comment.comment_id})
        comment.deleted = True

    def task_app(self, task: Task) -> int | None:
        """The app a task belongs to: its item's (or app's), None for a task on no item."""
        if task.ref_type == "item" and task.ref_id is not None:
            item = self.store.items.get(task.ref_id)
            return item.app.app_id if item is not None else None
        if task.ref_type == "app":
            return task.ref_id
        return None

    def task_visible(self, task: Task, principal: Principal | None) -> bool:
        """An app token reaches only its own app (reference §1.3): the tasks on its items,
        and the tasks on no item that it created itself."""
        if principal is None or principal.kind != "app":
            return True
        app_id = self.task_app(task)
        if app_id is not None:
            return app_id == principal.id
        return task.actor.kind == "app" and task.actor.id == principal.id

    def task(self, task_id: int, principal: Principal | None) -> Task:
        """A task the principal may see (403 for another app's token)."""
        task = self.tasks.get(task_id)
        if not self.task_visible(task, principal):
            raise PodioError(403, f"This token was issued for app {principal.id if principal else 0} "
                                  f"and cannot reach task {task_id}; use the app token of the "
                                  "task's item", error="forbidden")
        return task

    def comment_target(self, ref_type: str, ref_id: int, principal: Principal | None) -> None:
        """Check the principal may read or write comments on that object (403/404)."""
        if ref_type == "item":
            self.item(ref_id, principal)
        elif ref_type == "task":
            self.task(ref_id, principal)

    def create_tasks(self, body: Any, ref_type: str | None, ref_id: int | None,
                     principal: Principal, hook: bool = True) -> list[Task]:
        if ref_type == "item" and ref_id is not None:
            self.item(ref_id, principal)
        elif ref_type == "app" and ref_id is not None:
            self.check_app_access(principal, int(ref_id))
        tasks = self.tasks.create(body, ref_type, ref_id, principal.actor,
                                  self.view(principal).tz, self.now())
        if hook:
            for task in tasks:
                self.hooks.emit(0, "task.create", {"task_id": task.task_id})
        return tasks

    def set_task_status(self, task: Task, completed: bool, principal: Principal,
                        hook: bool = True) -> None:
        task.status = "completed" if completed else "active"
        task.completed_on = self.now() if completed else None
        task.completed_by = principal.actor if completed else None
        if hook:
            self.hooks.emit(0, "task.update", {"task_id": task.task_id})


def _app_token(seed: int, app_id: int) -> str:
    """A stable app token per app (what the app's Developer page would show)."""
    return hashlib.sha256(f"podio-app-token:{seed}:{app_id}".encode()).hexdigest()[:32]
