"""The rows beside Jira incidents: their status changes and their links to Podio tickets."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.jira.mapping import SOURCE
from store.db import utcnow
from store.models import ChangeEvent, Incident, IncidentStatusChange, Ticket

ENTITY = "incident"
TICKET_SOURCE = "podio"  # tickets are Podio items: Ticket.source_id is the Podio item id


def add_status_changes(session: Session, by_issue: dict[str, list[dict[str, Any]]]) -> None:
    """Insert the status changes not stored yet (two queries per page)."""
    if not by_issue:
        return
    ids = {row.source_id: row.id for row in session.execute(
        select(Incident.source_id, Incident.id).where(
            Incident.source == SOURCE, Incident.source_id.in_(list(by_issue))))}
    known = {(row.incident_id, row.history_id) for row in session.execute(
        select(IncidentStatusChange.incident_id, IncidentStatusChange.history_id).where(
            IncidentStatusChange.incident_id.in_(list(ids.values()))))}
    for source_id, changes in by_issue.items():
        incident_id = ids.get(source_id)
        if incident_id is None:
            continue
        for change in changes:
            if (incident_id, change["history_id"]) in known or change["changed_at"] is None:
                continue
            known.add((incident_id, change["history_id"]))
            session.add(IncidentStatusChange(incident_id=incident_id, **change))


def link_tickets(session: Session, source_ids: list[str] | None = None) -> int:
    """Point incidents at their Podio tickets once those rows exist: by the Podio item id
    (custom field / remote link), else by the ticket's ``jira`` key. Returns links made."""
    query = select(Incident).where(Incident.source == SOURCE, Incident.deleted_at.is_(None))
    if source_ids is not None:
        query = query.where(Incident.source_id.in_(source_ids))
    else:
        query = query.where(Incident.ticket_id.is_(None))
    incidents = list(session.scalars(query))
    by_item = {row.source_id: row.id for row in session.execute(
        select(Ticket.source_id, Ticket.id).where(
            Ticket.source == TICKET_SOURCE,
            Ticket.source_id.in_([i.ticket_source_id for i in incidents if i.ticket_source_id])))}
    by_key = {row.jira_key.upper(): (row.id, row.source_id) for row in session.execute(
        select(Ticket.jira_key, Ticket.id, Ticket.source_id).where(
            Ticket.jira_key.in_([i.key for i in incidents if not i.ticket_source_id])))}
    linked = 0
    for incident in incidents:
        wanted = by_item.get(incident.ticket_source_id or "")
        changes: dict[str, list[Any]] = {}
        if wanted is None and not incident.ticket_source_id and incident.key.upper() in by_key:
            wanted, item_id = by_key[incident.key.upper()]
            changes["ticket_source_id"] = [None, item_id]
            incident.ticket_source_id = item_id
        if wanted is None or wanted == incident.ticket_id:
            continue
        changes["ticket_id"] = [incident.ticket_id, wanted]
        incident.ticket_id = wanted
        session.add(ChangeEvent(entity=ENTITY, entity_id=incident.id, kind="updated",
                                changes=changes, seen_at=utcnow()))
        linked += 1
    return linked
