"""account check-ins (Podio app Seguimientos); Podio change events named by rule entity

``check_ins``: the AMs' account follow-ups (check-in, quarterly review, recovery call,
training) synced from the Podio app Seguimientos, for M1's "time since the last check-in"
and M8's check-ins done vs planned. The Podio entities are now declared once in
config/podio.yaml, whose ``entity`` is the name rules use, so the change events the Podio
sync writes carry that name (``cliente`` instead of ``client``); stored events follow.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 13:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The Podio sync's former change-event names -> the rule entity names it writes now.
RENAMED = {"client": "cliente", "school": "escuela", "contact": "usuario",
           "contract": "contrato", "invoice": "factura"}


def upgrade() -> None:
    op.create_table(
        "check_ins",
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("client_source_id", sa.String(length=64), nullable=True),
        sa.Column("happened_at", sa.DateTime(), nullable=True),
        sa.Column("kind", sa.String(length=60), nullable=True),
        sa.Column("am_id", sa.Integer(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=40), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("source_revision", sa.String(length=64), nullable=True),
        sa.Column("source_updated_at", sa.DateTime(), nullable=True),
        sa.Column("raw", sa.JSON(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.Column("synced_at", sa.DateTime(), server_default=sa.text("(CURRENT_TIMESTAMP)"),
                  nullable=False),
        sa.ForeignKeyConstraint(["am_id"], ["staff.id"]),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "source_id", name="uq_check_ins_source"),
    )
    with op.batch_alter_table("check_ins", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_check_ins_client_id"), ["client_id"], unique=False)
    _rename_events(RENAMED)


def downgrade() -> None:
    _rename_events({new: old for old, new in RENAMED.items()})
    op.execute("DELETE FROM change_events WHERE entity = 'seguimiento'")
    with op.batch_alter_table("check_ins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_check_ins_client_id"))
    op.drop_table("check_ins")


def _rename_events(names: dict[str, str]) -> None:
    events = sa.table("change_events", sa.column("entity", sa.String))
    for old, new in names.items():
        op.execute(events.update().where(events.c.entity == old).values(entity=new))
