"""Payout mails are queued by the close and composed by the mailer when first sent.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COMPOSED = ("subject", "text_body", "html_body")


def upgrade() -> None:
    for column in COMPOSED:
        op.alter_column("payout_emails", column, existing_type=sa.Text(), nullable=True)


def downgrade() -> None:
    pending = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM payout_emails WHERE subject IS NULL")
    )
    if pending:
        raise RuntimeError(
            f"{pending} payout mails are not composed yet: let the mailer send them first"
        )
    for column in COMPOSED:
        op.alter_column("payout_emails", column, existing_type=sa.Text(), nullable=False)
