"""The model migrates and round-trips on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from store.db import Database
from store.models import Base, Client, Contract, DeadLetter, SyncState


def test_migration_matches_models(db: Database) -> None:
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], ("store/models.py and the migrations differ: add one with "
                        f"`make migration REV=… MESSAGE=…`: {diff}")


def test_synced_rows_are_unique_per_source_and_keep_types(db: Database) -> None:
    with db.session() as s:
        client = Client(source="podio", source_id="1000001", name="Colegio Alameda",
                        mrr=Decimal("12000.50"), signed_on=date(2024, 8, 1), burbuja=True)
        s.add(client)
        s.flush()
        s.add(Contract(source="podio", source_id="5000001", client_id=client.id,
                       ends_on=date(2027, 1, 31), amount=Decimal("144006.00")))
    with db.session() as s:
        row = s.scalars(select(Client)).one()
        assert (row.name, row.mrr, row.signed_on, row.burbuja) == (
            "Colegio Alameda", Decimal("12000.50"), date(2024, 8, 1), True)
    try:
        with db.session() as s:
            s.add(Client(source="podio", source_id="1000001", name="dup"))
    except IntegrityError:
        pass
    else:
        raise AssertionError("a second row with the same (source, source_id) was accepted")


def test_engine_tables_hold_state(db: Database) -> None:
    with db.session() as s:
        s.add(SyncState(source="podio", stream="tickets", cursor="2026-11-18 10:00:00",
                        state={"seen": [1, 2]}))
        s.add(DeadLetter(source="podio", stream="tickets", source_id="9", reason="sin título",
                         payload={"item_id": 9}))
    with db.session() as s:
        state = s.scalars(select(SyncState)).one()
        assert state.state == {"seen": [1, 2]}
        assert s.scalars(select(DeadLetter)).one().reason == "sin título"


def test_shipped_staff_file_matches_the_demo_world() -> None:
    """config/staff.yaml describes the demo workspace the sandbox serves."""
    from core.settings import PROJECT_ROOT
    from core.yamlconf import load_yaml_model
    from sandbox.world import demo_staff
    from store.staff import StaffFile

    shipped = {e.key: e for e in load_yaml_model(PROJECT_ROOT / "config" / "staff.yaml",
                                                 StaffFile).staff}
    for person in demo_staff():
        entry = shipped[person.key]
        assert (entry.email, entry.role, entry.podio_profile_id, entry.jira_account_id) == (
            person.email, person.role, person.podio_profile_id, person.jira_account_id)
