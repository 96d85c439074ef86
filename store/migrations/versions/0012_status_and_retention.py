"""Status page and trace retention: when each stream last synced successfully, and an
index for pruning rule traces by age.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 03:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_state") as batch:
        batch.add_column(sa.Column("last_ok_at", sa.DateTime(), nullable=True))
    # Streams whose last run was fine: that run is also their last success.
    op.execute("UPDATE sync_state SET last_ok_at = last_finished_at WHERE last_status = 'ok'")
    op.create_index("ix_rule_runs_matched_started", "rule_runs", ["matched", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_rule_runs_matched_started", table_name="rule_runs")
    with op.batch_alter_table("sync_state") as batch:
        batch.drop_column("last_ok_at")
