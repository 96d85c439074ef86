"""Time an incident spent in Jira, from the model (automation T2 converts it to business
hours): from the issue's creation (the ticket was escalated) until it last entered a
done-category status."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.jira.mapping import DONE
from store.models import Incident, IncidentStatusChange

SECONDS_PER_HOUR = 3600


def incident_hours(session: Session, incident_id: int) -> float | None:
    """Calendar hours from escalation to resolution; None while the incident is not done
    (or is unknown). A reopened and re-resolved issue counts until its last resolution."""
    incident = session.get(Incident, incident_id)
    if incident is None or incident.created_at is None or incident.status_category != DONE:
        return None
    entered_done = session.scalar(
        select(IncidentStatusChange.changed_at)
        .where(IncidentStatusChange.incident_id == incident_id,
               IncidentStatusChange.to_category == DONE)
        .order_by(IncidentStatusChange.changed_at.desc()).limit(1))
    end = entered_done or incident.resolved_at
    if end is None:
        return None
    return max(0.0, (end - incident.created_at).total_seconds() / SECONDS_PER_HOUR)
