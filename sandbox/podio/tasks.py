"""Tasks of the Podio emulator (reference §7)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.podio.errors import PodioError
from sandbox.podio.model import Actor, PodioUser, ts
from sandbox.podio.store import ItemStore
from sandbox.podio.values import local_to_utc, parse_timestamp, utc_to_local
from sandbox.world import PODIO_SPACE_ID

FIRST_TASK_ID = 60_000_001  # arbitrary base for task ids
MAX_TASK_LIST_LIMIT = 100  # page size cap of GET /task/ [unverified]
REF_TYPES = ("item", "app", "space")
_LABEL_COLOR = "E9E9E9"


@dataclass
class Task:
    task_id: int
    text: str
    description: str
    private: bool
    due: datetime | date | None  # naive-UTC instant, or an all-day date
    responsible: PodioUser
    ref_type: str | None
    ref_id: int | None
    labels: list[str]
    external_id: str | None
    created_on: datetime
    actor: Actor
    status: str = "active"
    completed_on: datetime | None = None
    completed_by: Actor | None = None
    deleted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class TaskStore:
    """Tasks, their references and labels."""

    def __init__(self, store: ItemStore) -> None:
        self.store = store
        self.tasks: dict[int, Task] = {}
        self.next_id = FIRST_TASK_ID
        self.label_ids: dict[str, int] = {}

    def create(self, body: Any, ref_type: str | None, ref_id: int | None, actor: Actor,
               tz: ZoneInfo, now: datetime) -> list[Task]:
        """POST /task/ and /task/{ref_type}/{ref_id}/: one task per responsible."""
        if not isinstance(body, dict):
            raise PodioError(400, "The task body must be a JSON object with at least 'text'")
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise PodioError(400, "'text' is required for a task")
        ref_type = ref_type or body.get("ref_type")
        ref_id = ref_id if ref_id is not None else body.get("ref_id")
        if ref_type is not None:
            ref_id = self.check_ref(str(ref_type), ref_id)
        people = self._responsibles(body.get("responsible"), actor)
        due = self.parse_due(body, tz)
        labels = self._labels(body.get("labels"))
        external_id = body.get("external_id")
        created = []
        for person in people:
            task = Task(self.next_id, text.strip(), str(body.get("description") or ""),
                        bool(body.get("private", False)), due, person,
                        str(ref_type) if ref_type is not None else None, ref_id, labels,
                        str(external_id) if external_id is not None else None, now, actor)
            self.next_id += 1
            self.tasks[task.task_id] = task
            created.append(task)
        return created

    def check_ref(self, ref_type: str, ref_id: Any) -> int:
        if ref_type not in REF_TYPES:
            raise PodioError(400, f"ref_type must be one of {list(REF_TYPES)}")
        try:
            ident = int(ref_id)
        except (TypeError, ValueError):
            raise PodioError(400, "ref_id must be an integer") from None
        exists = (self.store.live_item(ident) is not None if ref_type == "item"
                  else ident in self.store.apps_by_id if ref_type == "app"
                  else ident == PODIO_SPACE_ID)
        if not exists:
            raise PodioError(404, f"No {ref_type} with id {ident}")
        return ident

    def _responsibles(self, raw: Any, actor: Actor) -> list[PodioUser]:
        if raw is None:
            user = self.store.users.get(actor.id) if actor.kind == "user" else None
            if user is None:
                raise PodioError(400, "'responsible' is required when an app creates a task")
            return [user]
        entries = raw if isinstance(raw, list) else [raw]
        people: list[PodioUser] = []
        for entry in entries:
            user = self._responsible(entry)
            if user not in people:
                people.append(user)
        if not people:
            raise PodioError(400, "'responsible' is an empty list")
        return people

    def _responsible(self, entry: Any) -> PodioUser:
        user: PodioUser | None
        if isinstance(entry, bool):
            user = None
        elif isinstance(entry, int):
            user = self.store.users.get(entry)
        elif isinstance(entry, dict) and entry.get("type") == "user":
            user = self.store.users.get(as_int(entry.get("id")))
        elif isinstance(entry, dict) and entry.get("type") == "profile":
            user = self.store.by_profile.get(as_int(entry.get("id")))
        elif isinstance(entry, dict) and entry.get("type") == "mail":
            user = self.store.by_mail.get(str(entry.get("id", "")).lower())
            if user is None:
                raise PodioError(400, f"No workspace member has the e-mail {entry.get('id')!r} "
                                      "(the sandbox sends no invitations)")
        elif isinstance(entry, dict) and entry.get("type") in ("space", "external"):
            raise PodioError(400, f"responsible type {entry['type']!r} is not supported by "
                                  "the sandbox; use user, profile or mail")
        else:
            raise PodioError(400, "'responsible' takes a user_id, {\"type\": \"user|profile|"
                                  "mail\", \"id\": ...} or a list of them")
        if user is None:
            raise PodioError(400, f"Unknown responsible {entry!r}")
        return user

    def parse_due(self, body: dict[str, Any], tz: ZoneInfo) -> datetime | date | None:
        try:
            if body.get("due_on"):
                due_on = parse_timestamp(str(body["due_on"]))
                return due_on
            if body.get("due_date"):
                day = date.fromisoformat(str(body["due_date"]))
                clock = body.get("due_time")
                if not clock:
                    return day
                moment = datetime.combine(day, time.fromisoformat(str(clock)))
                return local_to_utc(moment, tz)
        except ValueError:
            raise PodioError(400, "Invalid due date: due_date 'YYYY-MM-DD' with due_time "
                                  "'HH:MM:SS' (your time zone), or due_on 'YYYY-MM-DD "
                                  "HH:MM:SS' (UTC)") from None
        return None

    def _labels(self, raw: Any) -> list[str]:
        labels = []
        for entry in raw or []:
            text = entry.get("text") if isinstance(entry, dict) else entry
            if not isinstance(text, str) or not text:
                raise PodioError(400, "'labels' is a list of label texts")
            self.label_ids.setdefault(text, len(self.label_ids) + 1)
            labels.append(text)
        return labels

    def get(self, task_id: int) -> Task:
        task = self.tasks.get(task_id)
        if task is None or task.deleted:
            raise PodioError(404, f"No task with id {task_id}")
        return task

    def query(self, params: dict[str, str],
              app_of: Callable[[Task], int | None] | None = None) -> list[Task]:
        """GET /task/ filters: reference, app (``app_of`` says a task's app), completed,
        external_id, responsible; ``sort_by`` created_on | completed_on (default: rank,
        here creation order) with ``sort_desc``; limit, offset."""
        tasks = [t for t in self.tasks.values() if not t.deleted]
        if params.get("app") and app_of is not None:
            apps = {as_int(v) for v in params["app"].replace(";", ",").split(",")}
            tasks = [t for t in tasks if app_of(t) in apps]
        if params.get("reference"):
            refs = set()
            for part in params["reference"].split(";"):
                kind, _, ident = part.partition(":")
                refs.add((kind, as_int(ident)))
            tasks = [t for t in tasks if (t.ref_type, t.ref_id) in refs]
        if params.get("completed") not in (None, ""):
            done = params["completed"].lower() in ("1", "true")
            tasks = [t for t in tasks if (t.status == "completed") == done]
        if params.get("external_id"):
            tasks = [t for t in tasks if t.external_id == params["external_id"]]
        if params.get("responsible"):
            wanted = {as_int(v) for v in params["responsible"].replace(";", ",").split(",")}
            tasks = [t for t in tasks if t.responsible.user_id in wanted]
        sort_by = params.get("sort_by") or "rank"
        if sort_by not in ("rank", "created_on", "completed_on"):
            raise PodioError(400, f"Invalid sort_by {sort_by!r}: rank, created_on or "
                                  "completed_on")
        if sort_by != "rank":
            never = datetime.min  # a task not completed sorts first (ascending)
            tasks.sort(key=lambda t: (getattr(t, sort_by) or never, t.task_id),
                       reverse=(params.get("sort_desc") or "").lower() in ("1", "true"))
        limit, offset = as_int(params.get("limit") or 100), as_int(params.get("offset") or 0)
        if limit < 1 or limit > MAX_TASK_LIST_LIMIT or offset < 0:
            raise PodioError(400, f"limit must be 1..{MAX_TASK_LIST_LIMIT}, offset >= 0")
        return tasks[offset:offset + limit]

    def json(self, task: Task, tz: ZoneInfo) -> dict[str, Any]:
        """The task object (§7)."""
        due_date = due_time = due_on = None
        if isinstance(task.due, datetime):
            local = utc_to_local(task.due, tz)
            due_date, due_time, due_on = (local.date().isoformat(), local.strftime("%H:%M:%S"),
                                          ts(task.due))
        elif isinstance(task.due, date):
            due_date = task.due.isoformat()  # all-day: no time, no UTC instant [unverified]
        return {
            "task_id": task.task_id, "status": task.status, "text": task.text,
            "description": task.description, "private": task.private,
            "due_date": due_date, "due_time": due_time, "due_on": due_on,
            "responsible": task.responsible.contact(),
            "created_on": ts(task.created_on), "created_by": self.store.actor_ref(task.actor),
            "created_via": task.actor.client.via(), "completed_on": ts(task.completed_on),
            "completed_by": self.store.actor_ref(task.completed_by) if task.completed_by
            else None,
            "ref_type": task.ref_type, "ref_id": task.ref_id, "ref": self._ref(task),
            "link": f"https://podio.com/tasks/{task.task_id}",
            "labels": [{"label_id": self.label_ids[t], "text": t, "color": _LABEL_COLOR}
                       for t in task.labels],
            "external_id": task.external_id, "space_id": PODIO_SPACE_ID,
        }

    def _ref(self, task: Task) -> dict[str, Any] | None:
        if task.ref_type is None:
            return None
        ref: dict[str, Any] = {"type": task.ref_type, "id": task.ref_id}
        if task.ref_type == "item" and task.ref_id is not None:
            item = self.store.items.get(task.ref_id)
            if item is not None:
                ref["data"] = {"item_id": item.item_id, "title": item.title, "link": item.link,
                               "app": item.app.mini()}
        return ref


def as_int(value: Any) -> int:
    """An integer query or body value, or a 400."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PodioError(400, f"Expected an integer, got {value!r}") from None
