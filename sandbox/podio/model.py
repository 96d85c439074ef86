"""Compact in-memory records of the Podio emulator: users, API clients, items, revisions.

Items keep their field values as a tuple aligned with the app's fields (``None`` = empty)
in an internal form (see ``values.py``); GET shapes are built only when asked for, so a
60,000-ticket world fits in modest memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sandbox.podio.schema import SPACE_URL, AppDef

TIMESTAMP = "%Y-%m-%d %H:%M:%S"  # Podio object timestamps: UTC, no 'T', no zone (§0)
PODIO_UI_VIA = 1  # created_via id of changes made in Podio's own web UI


def ts(moment: datetime | None) -> str | None:
    """A naive-UTC datetime as Podio's timestamp string."""
    return moment.strftime(TIMESTAMP) if moment is not None else None


@dataclass(frozen=True)
class PodioUser:
    """A workspace member (the integration user and every staff member)."""

    user_id: int
    profile_id: int
    name: str
    mail: str
    timezone: str

    @property
    def link(self) -> str:
        return f"https://podio.com/users/{self.user_id}"

    def contact(self) -> dict[str, Any]:
        """The value of a contact field pointing at this user (§6)."""
        return {"profile_id": self.profile_id, "user_id": self.user_id, "name": self.name,
                "type": "user", "mail": [self.mail], "phone": [], "link": self.link,
                "image": None, "external_id": None, "last_seen_on": None}

    def ref(self) -> dict[str, Any]:
        """The user as ``created_by`` of an object."""
        return {"type": "user", "id": self.user_id, "user_id": self.user_id,
                "name": self.name, "url": self.link, "avatar": None, "image": None}


@dataclass(frozen=True)
class ApiClient:
    """An API key. ``via_id`` tells apart the writes made through each key."""

    client_id: str
    secret: str
    via_id: int
    name: str

    def via(self) -> dict[str, Any]:
        return {"id": self.via_id, "name": self.name, "url": None, "display": True}


PODIO_UI = ApiClient("podio", "", PODIO_UI_VIA, "Podio")


@dataclass(frozen=True)
class Actor:
    """Who made a change: a user or an app (app auth), through which API client."""

    kind: str  # "user" | "app"
    id: int
    client: ApiClient


class RawValues:
    """Malformed values stored verbatim (``inject_raw_values``) and returned as-is on GET."""

    __slots__ = ("values",)

    def __init__(self, values: list[Any]) -> None:
        self.values = values

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RawValues) and other.values == self.values

    def __hash__(self) -> int:
        return id(self)


class Revision:
    """One revision of an item: who, when, through which client, and the values after it."""

    __slots__ = ("revision", "item_revision_id", "created_on", "actor", "values", "kind")

    def __init__(self, revision: int, item_revision_id: int, created_on: datetime,
                 actor: Actor, values: tuple[Any, ...], kind: str) -> None:
        self.revision = revision
        self.item_revision_id = item_revision_id
        self.created_on = created_on
        self.actor = actor
        self.values = values
        self.kind = kind  # "creation" | "update"


class Item:
    """A Podio item: identity, metadata and its revisions (the last one is current)."""

    __slots__ = ("item_id", "app", "app_item_id", "external_id", "revisions",
                 "last_event_on", "deleted_on")

    def __init__(self, item_id: int, app: AppDef, app_item_id: int, external_id: str | None,
                 first: Revision) -> None:
        self.item_id = item_id
        self.app = app
        self.app_item_id = app_item_id
        self.external_id = external_id
        self.revisions = [first]
        self.last_event_on = first.created_on
        self.deleted_on: datetime | None = None

    @property
    def current(self) -> Revision:
        return self.revisions[-1]

    @property
    def values(self) -> tuple[Any, ...]:
        return self.revisions[-1].values

    @property
    def created_on(self) -> datetime:
        return self.revisions[0].created_on

    @property
    def last_edit_on(self) -> datetime:
        return self.revisions[-1].created_on

    @property
    def title(self) -> str | None:
        value = self.values[self.app.title_field.pos]
        return value if isinstance(value, str) else None

    @property
    def link(self) -> str:
        return f"{SPACE_URL}/apps/{self.app.url_label}/items/{self.app_item_id}"
