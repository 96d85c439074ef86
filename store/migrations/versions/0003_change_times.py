"""the tool's time of each change, and since when a ticket has its status

``change_events.changed_at``: when the change happened by the tool's clock (the record's
update time in the revision where it was seen), so a rule writes the moment of the change
(T5/T6 closing time) whatever else was written before the rule ran. ``tickets.status_since``:
when the ticket took its current status (T4 compares it with the Jira resolution).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 12:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("change_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("changed_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_since", sa.DateTime(), nullable=True))
    # The best known value for stored tickets: their last edit in Podio.
    op.execute("UPDATE tickets SET status_since = source_updated_at")


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("status_since")
    with op.batch_alter_table("change_events", schema=None) as batch_op:
        batch_op.drop_column("changed_at")
