"""rule event retries and store facts; leases die with their holder

The rules lease and the scheduled jobs' claims are now one lease primitive
(jobs.leases.hold: a PostgreSQL advisory lock or an OS file lock), so the ``leases`` table
and ``job_runs.claimed_until`` go.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rule_event_retries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rule_id", "event_id", name="uq_rule_event_retry"),
    )
    with op.batch_alter_table("rule_event_retries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rule_event_retries_rule_id"), ["rule_id"],
                              unique=False)
    op.create_table(
        "store_meta",
        sa.Column("key", sa.String(length=60), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    op.drop_table("leases")
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.drop_column("claimed_until")


def downgrade() -> None:
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_until", sa.DateTime(), nullable=True))
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("holder", sa.String(length=100), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.drop_table("store_meta")
    with op.batch_alter_table("rule_event_retries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rule_event_retries_rule_id"))
    op.drop_table("rule_event_retries")
