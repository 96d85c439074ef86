"""Podio write-back primitives for the rule engine: each creates or finds, nothing more.

- ``update_fields``: all fields of an item in ONE ``PUT /item/{id}`` with ``hook=false`` so
  our own write does not come back as a webhook (reference §5.5, §9.4); repeating it is
  harmless.
- ``create_task`` / ``add_comment``: one POST carrying ``external_id = marker``;
  ``find_task`` / ``find_comment`` find it again by that marker. Creating once is the
  action ledger's job (rules/executor.py): after an attempt that may have reached Podio it
  looks the marker up before sending again, and never sends when the look-up fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from connectors.podio.client import PodioClient
from connectors.podio.mapping import MappingError, format_podio_time, to_podio_value
from core.errors import RemoteDataError


def update_fields(client: PodioClient, item_id: int, fields: Mapping[str, Any], *,
                  app_id: int | None = None, hook: bool = False) -> int | None:
    """Write several fields of one item in one call; returns the new revision.

    ``fields`` is keyed by Podio external_id with friendly values: a category's option text,
    a contact's profile_id, a referenced item_id, a date/datetime, a number, a string;
    None clears the field. ``app_id`` saves a GET when the caller knows the item's app.
    """
    if app_id is None:
        app_id = client.app_of_item(item_id) or int(
            client.request("GET", f"/item/{item_id}/basic")["app"]["app_id"])
    definitions = client.app_fields(app_id)
    payload: dict[str, Any] = {}
    for external_id, value in fields.items():
        if external_id not in definitions:
            raise MappingError(f"el campo {external_id!r} no existe en la app {app_id} "
                               f"(campos: {', '.join(sorted(definitions))})")
        payload[external_id] = to_podio_value(definitions[external_id], value)
    result = client.update_item(item_id, payload, app_id=app_id, hook=hook)
    return int(result["revision"]) if result and "revision" in result else None


def _task_app(client: PodioClient, item_id: int | None, app_id: int | None) -> int | None:
    """The app whose token creates and finds a task: its item's (app-token mode; an app
    token sees only its own app's tasks, reference §1.3); a task on no item uses the first
    configured app's token, both to create and to find it (None: the integration user)."""
    if app_id is not None or item_id is None:
        return app_id
    return client.app_of_item(item_id)


def find_task(client: PodioClient, marker: str, *, item_id: int | None = None,
              app_id: int | None = None) -> int | None:
    """The task created with this marker (its external_id), if any."""
    tasks = client.request("GET", "/task/", params={"external_id": marker, "limit": 10},
                           app_id=_task_app(client, item_id, app_id))
    for task in tasks or []:
        if task.get("external_id") == marker:
            return int(task["task_id"])
    return None


def create_task(client: PodioClient, *, item_id: int | None, text: str, description: str = "",
                responsible_user_id: int | None, due_on: datetime | date | None,
                marker: str, labels: list[str] | None = None,
                app_id: int | None = None) -> int:
    """Create a task on an item (or, with ``item_id`` None, a task with no reference: it
    shows in its responsible's own tasks) carrying ``marker``; returns the task id."""
    body: dict[str, Any] = {"text": text, "description": description, "private": False,
                            "external_id": marker, "labels": labels or ["saeko-sync"]}
    if responsible_user_id is not None:
        body["responsible"] = int(responsible_user_id)
    if isinstance(due_on, datetime):
        body["due_on"] = format_podio_time(due_on)
    elif isinstance(due_on, date):
        body["due_date"] = due_on.isoformat()

    path = "/task/" if item_id is None else f"/task/item/{item_id}/"
    created = client.request("POST", path, json=body,
                             app_id=_task_app(client, item_id, app_id))
    task = created[0] if isinstance(created, list) else created
    if not task or "task_id" not in task:
        raise RemoteDataError(f"Podio creó una tarea sin task_id: {created!r}")
    return int(task["task_id"])


def find_comment(client: PodioClient, item_id: int, marker: str, *,
                 app_id: int | None = None) -> int | None:
    """The comment on the item created with this marker, if any."""
    comments = client.for_item(item_id, lambda a: client.request(
        "GET", f"/comment/item/{item_id}/", app_id=a), app_id=app_id)
    for comment in comments or []:
        if comment.get("external_id") == marker:
            return int(comment["comment_id"])
    return None


def add_comment(client: PodioClient, item_id: int, text: str, marker: str, *,
                app_id: int | None = None) -> int:
    """Comment on an item carrying ``marker`` (hook=false: our comment triggers nothing),
    with the token of the item's app."""
    app_id = app_id if app_id is not None else client.app_of_item(item_id)
    created = client.request("POST", f"/comment/item/{item_id}/",
                             json={"value": text, "external_id": marker},
                             params={"hook": "false"}, app_id=app_id)
    return int(created["comment_id"])
