"""M1: the health score's reasons on the client; state rules remember what they fired for

``clients.health_reasons`` mirrors the Podio field «motivos-salud» (config/salud.yaml's
reasons, written by M1 with the score and band); ``clients.decision_maker_since`` the field
«decisor-desde» (when the decision maker changed, written by M1 when it sees «decisor»
change: kept in Podio, so a new store scores the same). ``rule_timers.fired_key`` is the
«una_vez_por» value a data-condition rule fired for: with one, the rule fires again while
its condition holds when that value changes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 19:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("health_reasons", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("decision_maker_since", sa.Date(), nullable=True))
    with op.batch_alter_table("rule_timers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fired_key", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rule_timers", schema=None) as batch_op:
        batch_op.drop_column("fired_key")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("decision_maker_since")
        batch_op.drop_column("health_reasons")
