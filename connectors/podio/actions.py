"""Podio write-back primitives for the rule engine. Each is safe to repeat.

- ``update_fields``: all fields of an item in ONE ``PUT /item/{id}`` with ``hook=false`` so
  our own write does not come back as a webhook (reference §5.5, §9.4).
- ``create_task`` / ``add_comment``: carry ``external_id = marker``; before creating, and
  after an unclear failure, they look the marker up, so a lost response never makes two.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from connectors.podio.client import PodioClient
from connectors.podio.mapping import MappingError, format_podio_time, to_podio_value
from core.errors import RemoteDataError, TransientError

# Attempts of a create whose outcome was unclear (dropped connection, 5xx) before giving up.
CREATE_ATTEMPTS = 3


def update_fields(client: PodioClient, item_id: int, fields: Mapping[str, Any], *,
                  app_id: int | None = None, hook: bool = False) -> int | None:
    """Write several fields of one item in one call; returns the new revision.

    ``fields`` is keyed by Podio external_id with friendly values: a category's option text,
    a contact's profile_id, a referenced item_id, a date/datetime, a number, a string;
    None clears the field. ``app_id`` saves a GET when the caller knows the item's app.
    """
    if app_id is None:
        app_id = int(client.request("GET", f"/item/{item_id}/basic")["app"]["app_id"])
    definitions = client.app_fields(app_id)
    payload: dict[str, Any] = {}
    for external_id, value in fields.items():
        if external_id not in definitions:
            raise MappingError(f"el campo {external_id!r} no existe en la app {app_id} "
                               f"(campos: {', '.join(sorted(definitions))})")
        payload[external_id] = to_podio_value(definitions[external_id], value)
    result = client.update_item(item_id, payload, app_id=app_id, hook=hook)
    return int(result["revision"]) if result and "revision" in result else None


def _create_once(find: Callable[[], int | None], create: Callable[[], int], *,
                 check_first: bool = True) -> int:
    """Create unless the marker shows it exists; after an unclear failure, look again.

    ``check_first=False`` skips the first lookup (one Podio call) when the caller knows
    this marker was never sent — the rule engine's ledger does — but a retry after an
    unclear failure always looks first.
    """
    last_error: Exception | None = None
    for attempt in range(CREATE_ATTEMPTS):
        existing = find() if attempt or check_first else None
        if existing is not None:
            return existing
        try:
            return create()
        except TransientError as exc:
            last_error = exc
            time.sleep(min(2.0 ** attempt, 10.0) * 0.1)
    raise TransientError(f"create still failing after {CREATE_ATTEMPTS} attempts: {last_error}")


def find_task(client: PodioClient, marker: str) -> int | None:
    """The task created with this marker (its external_id), if any."""
    tasks = client.request("GET", "/task/", params={"external_id": marker, "limit": 10})
    for task in tasks or []:
        if task.get("external_id") == marker:
            return int(task["task_id"])
    return None


def create_task(client: PodioClient, *, item_id: int, text: str, description: str = "",
                responsible_user_id: int | None, due_on: datetime | date | None,
                marker: str, labels: list[str] | None = None, check_first: bool = True) -> int:
    """Create a task on an item, once per marker; returns the task id."""
    body: dict[str, Any] = {"text": text, "description": description, "private": False,
                            "external_id": marker, "labels": labels or ["saeko-sync"]}
    if responsible_user_id is not None:
        body["responsible"] = int(responsible_user_id)
    if isinstance(due_on, datetime):
        body["due_on"] = format_podio_time(due_on)
    elif isinstance(due_on, date):
        body["due_date"] = due_on.isoformat()

    def create() -> int:
        created = client.request("POST", f"/task/item/{item_id}/", json=body)
        task = created[0] if isinstance(created, list) else created
        if not task or "task_id" not in task:
            raise RemoteDataError(f"Podio created a task without task_id: {created!r}")
        return int(task["task_id"])

    return _create_once(lambda: find_task(client, marker), create, check_first=check_first)


def find_comment(client: PodioClient, item_id: int, marker: str) -> int | None:
    """The comment on the item created with this marker, if any."""
    comments = client.request("GET", f"/comment/item/{item_id}/")
    for comment in comments or []:
        if comment.get("external_id") == marker:
            return int(comment["comment_id"])
    return None


def add_comment(client: PodioClient, item_id: int, text: str, marker: str, *,
                check_first: bool = True) -> int:
    """Comment on an item once per marker (hook=false: our comment triggers nothing)."""

    def create() -> int:
        created = client.request("POST", f"/comment/item/{item_id}/",
                                 json={"value": text, "external_id": marker},
                                 params={"hook": "false"})
        return int(created["comment_id"])

    return _create_once(lambda: find_comment(client, item_id, marker), create,
                        check_first=check_first)
