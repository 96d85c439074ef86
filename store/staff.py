"""Staff come from config/staff.yaml (an admin file), mirrored into the staff table."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.yamlconf import load_yaml_model
from store.models import Staff


class StaffEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str
    name: str
    email: str
    role: str
    podio_user_id: int | None = None
    podio_profile_id: int | None = None
    jira_account_id: str | None = None
    region: str | None = None
    capacity: int | None = None
    active: bool = True


class StaffFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    staff: list[StaffEntry]


def sync_staff(session: Session, config_dir: Path) -> dict[int, int]:
    """Upsert config/staff.yaml into the staff table; return {podio_profile_id: staff.id}."""
    entries = load_yaml_model(config_dir / "staff.yaml", StaffFile).staff
    existing = {s.key: s for s in session.scalars(select(Staff))}
    for entry in entries:
        row = existing.get(entry.key)
        if row is None:
            row = Staff(key=entry.key)
            session.add(row)
        for name, value in entry.model_dump().items():
            setattr(row, name, value)
    listed = {e.key for e in entries}
    for key, row in existing.items():
        if key not in listed:
            row.active = False
    session.flush()
    return {s.podio_profile_id: s.id for s in session.scalars(select(Staff))
            if s.podio_profile_id is not None}
