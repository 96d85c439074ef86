"""Pure functions: Jira issue JSON -> ``incidents`` rows and status-history rows.

Timestamps are ``yyyy-MM-dd'T'HH:mm:ss.SSSZ`` with any offset (reference §3); they are
stored as naive UTC. Status changes are read from the changelog oldest first and compared
on status ids, whose categories (new / indeterminate / done) come from the site's status
list, so a renamed status keeps its meaning.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

SOURCE = "jira"
# The globalId saeko-sync (and the seeded demo) put on the remote link to the Podio ticket.
PODIO_GLOBAL_ID = "system=podio&item_id={item_id}"
_GLOBAL_ID_ITEM = re.compile(r"(?:^|&)item_id=(\d+)(?:&|$)")
DONE = "done"


class MappingError(ValueError):
    """An issue payload that cannot be turned into a row (dead-lettered)."""


def parse_time(value: str | None) -> datetime | None:
    """Jira timestamp -> naive UTC; None stays None."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise MappingError(f"fecha de Jira ilegible {value!r}") from exc
    if moment.tzinfo is None:
        raise MappingError(f"fecha de Jira sin zona horaria {value!r}")
    return moment.astimezone(UTC).replace(tzinfo=None)


def format_cursor(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def podio_global_id(item_id: int | str) -> str:
    return PODIO_GLOBAL_ID.format(item_id=item_id)


def ticket_from_field(value: Any) -> str | None:
    """The Podio item id from the custom field (text "4000017" or a number 4000017.0)."""
    if value is None or value == "":
        return None
    if isinstance(value, dict):  # a select-like field: {"value": "..."}
        value = value.get("value")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text if text.isdigit() else None


def ticket_from_links(links: list[dict[str, Any]]) -> str | None:
    """The Podio item id from the remote links' globalId (``...item_id=N``)."""
    for link in links:
        match = _GLOBAL_ID_ITEM.search(str(link.get("globalId") or ""))
        if match:
            return match.group(1)
    return None


def _name(value: Any) -> str | None:
    return value.get("name") if isinstance(value, dict) else None


def status_changes(histories: list[dict[str, Any]], categories: dict[str, str]
                   ) -> list[dict[str, Any]]:
    """Status items of a changelog, oldest first: history id, from/to, to-category, when, who."""
    ordered = sorted(histories, key=lambda h: (parse_time(h.get("created")) or datetime.min,
                                               int(h["id"]) if str(h.get("id", "")).isdigit()
                                               else 0))
    rows = []
    for history in ordered:
        for item in history.get("items") or []:
            if item.get("fieldId", item.get("field")) != "status":
                continue
            to_id = str(item.get("to") or "")
            rows.append({
                "history_id": str(history["id"]),
                "from_status": item.get("fromString"), "to_status": item.get("toString"),
                "to_category": categories.get(to_id),
                "changed_at": parse_time(history.get("created")),
                "author": (history.get("author") or {}).get("accountId"),
            })
    return rows


def resolved_at(current_category: str | None, changes: list[dict[str, Any]], *,
                resolution_date: datetime | None, created: datetime | None) -> datetime | None:
    """When the issue last entered a done status (None unless it is done now). Without a
    status change into done in the changelog (created directly in a done status, or a
    truncated history), Jira's ``resolutiondate`` or the creation time stands in."""
    if current_category != DONE:
        return None
    entered = [c["changed_at"] for c in changes if c["to_category"] == DONE and c["changed_at"]]
    return max(entered) if entered else (resolution_date or created)


def issue_row(raw: dict[str, Any], *, ticket_field: str, ticket_field_id: str | None,
              categories: dict[str, str], changes: list[dict[str, Any]]) -> dict[str, Any]:
    """One ``incidents`` row from an issue searched with ``issues stream`` fields."""
    fields = raw.get("fields")
    if not isinstance(fields, dict) or not raw.get("id") or not raw.get("key"):
        raise MappingError("incidencia sin id, clave o campos")
    updated = parse_time(fields.get("updated"))
    if updated is None:
        raise MappingError("incidencia sin 'updated'")
    status = fields.get("status") or {}
    category = (status.get("statusCategory") or {}).get("key")
    created = parse_time(fields.get("created"))
    ticket_value = fields.get(ticket_field)
    if ticket_value is None and ticket_field_id:
        ticket_value = fields.get(ticket_field_id)
    kept = {k: v for k, v in raw.items() if k not in ("changelog", "expand")}
    return {
        "source": SOURCE, "source_id": str(raw["id"]),
        "source_revision": fields.get("updated"), "source_updated_at": updated,
        "raw": kept,
        "key": raw["key"],
        "project": (fields.get("project") or {}).get("key"),
        "issue_type": _name(fields.get("issuetype")),
        "summary": fields.get("summary"),
        "status": status.get("name"),
        "status_category": category,
        "resolution": _name(fields.get("resolution")),
        "priority": _name(fields.get("priority")),
        "assignee": (fields.get("assignee") or {}).get("accountId"),
        "created_at": created,
        "resolved_at": resolved_at(category, changes, created=created,
                                   resolution_date=parse_time(fields.get("resolutiondate"))),
        "ticket_source_id": ticket_from_field(ticket_value),
    }


def status_categories(statuses: list[dict[str, Any]]) -> dict[str, str]:
    """Status id -> category key, from GET /status or from issues' status objects."""
    return {str(s["id"]): (s.get("statusCategory") or {}).get("key", "")
            for s in statuses if isinstance(s, dict) and "id" in s}
