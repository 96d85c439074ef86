"""M4: a contact who asked not to be surveyed

``contacts.no_survey`` mirrors the Podio field «no-encuestar» (Sí/No) of the app Usuarios:
M4's surveys (config/rules/m4-*.yaml) never go to a contact with «Sí».

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 22:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("no_survey", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("no_survey")
