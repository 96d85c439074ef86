"""Seed the emulated Jira from the demo world: one issue per escalated ticket, with the
ticket's Podio item id in the "Ticket Podio" custom field, a remote link to the Podio item,
and a changelog that replays the escalation's history (resolution set on entering done)."""

from __future__ import annotations

from sandbox.jira.site import (
    DEFAULT_PRIORITY,
    DEFAULT_RESOLUTION,
    TICKET_FIELD_ID,
    TICKET_PRIORITY_TO_JIRA,
    Site,
)
from sandbox.jira.store import History, Issue, JiraStore, RemoteLink, resolution_item, status_item
from sandbox.world import World, podio_item_id, slug

# Podio's web address of an item uses the app's url label and the app_item_id (reference
# podio-api.md, item "link"); the demo org/space labels are "saeko" / "postventa".
PODIO_ITEM_URL = "https://podio.com/saeko/postventa/apps/tickets/items/{app_item_id}"
# globalId of the link back to the Podio ticket: carries the Podio item id, so the connector
# can resolve the ticket even when the custom field is empty.
PODIO_GLOBAL_ID = "system=podio&item_id={item_id}"
PODIO_APPLICATION = {"type": "com.podio", "name": "Podio"}


def seed_issues(store: JiraStore, site: Site, world: World) -> None:
    """Create the issues of every escalated ticket, in the world's order."""
    staff = {member.key: member for member in world.staff}
    for ticket in world.tickets:
        escalation = ticket.escalation
        if escalation is None:
            continue
        project = site.projects[escalation.project]
        agent = staff[ticket.responsible].jira_account_id
        item_id = podio_item_id("tickets", ticket.key)
        issue_id, _key = store.new_ids(project)
        issue = Issue(
            id=issue_id, key=escalation.key, project=project, issue_type=escalation.issue_type,
            summary=ticket.title,
            description=f"{ticket.description}\n\nMódulo: {ticket.module}. "
                        f"Ticket de Podio: {PODIO_ITEM_URL.format(app_item_id=ticket.key)}",
            priority=TICKET_PRIORITY_TO_JIRA.get(ticket.priority, DEFAULT_PRIORITY),
            status=project.initial, resolution=None, resolution_date=None,
            labels=[slug(ticket.module)], assignee=agent if project.key == "SOP" else None,
            reporter=agent, created=escalation.created_at, updated=escalation.created_at,
            status_changed=escalation.created_at,
            custom={TICKET_FIELD_ID: str(item_id)})
        issue.remote_links.append(RemoteLink(
            store.child_id(), PODIO_GLOBAL_ID.format(item_id=item_id), dict(PODIO_APPLICATION),
            "ticket de Podio",
            {"url": PODIO_ITEM_URL.format(app_item_id=ticket.key),
             "title": f"Ticket #{ticket.key}: {ticket.title}"}))
        for at, _from, to in escalation.history:
            target = project.status_named(to)
            assert target is not None, f"{to!r} is not a status of {project.key}"
            items = [status_item(issue.status, target)]
            if target.category == "done":
                resolution = escalation.resolution or DEFAULT_RESOLUTION
                items.append(resolution_item(None, resolution))
                issue.resolution, issue.resolution_date = resolution, at
            if target.category != issue.status.category:
                issue.status_changed = at
            issue.status = target
            issue.updated = at
            issue.histories.append(History(store.child_id(), agent, at, items))
        store.add(issue)
