"""KPIs: Podio tasks in the model (task completion, at-risk alerts handled in time)

Revision ID: 0011
Revises: 0006
Create Date: 2026-12-06 22:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("source_revision", sa.String(length=64), nullable=True),
        sa.Column("source_updated_at", sa.DateTime(), nullable=True),
        sa.Column("raw", sa.JSON(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.Column("synced_at", sa.DateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("responsible_id", sa.Integer(), sa.ForeignKey("staff.id"), nullable=True),
        sa.Column("ref_type", sa.String(length=20), nullable=True),
        sa.Column("ref_id", sa.String(length=64), nullable=True),
        sa.Column("client_id", sa.Integer(), sa.ForeignKey("clients.id"), nullable=True),
        sa.Column("external_id", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("source", "source_id", name="uq_tasks_source"),
    )
    op.create_index("ix_tasks_due_on", "tasks", ["due_on"])
    op.create_index("ix_tasks_external_id", "tasks", ["external_id"])


def downgrade() -> None:
    op.drop_index("ix_tasks_external_id", table_name="tasks")
    op.drop_index("ix_tasks_due_on", table_name="tasks")
    op.drop_table("tasks")
