"""Sign-in security: sign-in records, password reset links, two-factor, session details.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ROLES = "role IN ('admin', 'manager', 'accountant', 'worker')"


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False)


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                     nullable=False)


def _account_id() -> sa.Column:
    return sa.Column("account_id", sa.BigInteger(), sa.ForeignKey("accounts.id"), nullable=False)


def upgrade() -> None:
    op.add_column("accounts", sa.Column("totp_secret", sa.Text(), nullable=True))
    op.add_column("accounts", sa.Column("totp_pending_secret", sa.Text(), nullable=True))
    op.add_column("accounts", sa.Column("totp_enabled_at", sa.DateTime(timezone=True),
                                        nullable=True))
    op.add_column("accounts", sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
    op.add_column("sso_sessions", sa.Column("address", sa.Text(), nullable=True))
    op.add_column("sso_sessions", sa.Column("user_agent", sa.Text(), nullable=True))
    op.create_table(
        "sign_in_records",
        _id(), _account_id(),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("second_factor", sa.Text(), nullable=True),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("user_agent", sa.Text(), nullable=True),
        _created_at(),
        sa.CheckConstraint("outcome IN ('signed_in', 'failed')", name="sign_in_records_outcome"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("sign_in_records_account", "sign_in_records", ["account_id", "id"])
    op.create_table(
        "password_reset_tokens",
        _id(),
        sa.Column("token_hash", sa.Text(), nullable=False),
        _account_id(), _created_at(),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index(op.f("ix_password_reset_tokens_account_id"), "password_reset_tokens",
                    ["account_id"])
    op.create_table(
        "password_reset_requests",
        _id(),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("password_reset_requests_email", "password_reset_requests",
                    ["email", "created_at"])
    op.create_index("password_reset_requests_address", "password_reset_requests",
                    ["address", "created_at"])
    op.create_table(
        "recovery_codes",
        _id(), _account_id(),
        sa.Column("code_hash", sa.Text(), nullable=False),
        _created_at(),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_recovery_codes_account_id"), "recovery_codes", ["account_id"])
    op.create_table(
        "two_factor_roles",
        sa.Column("role", sa.Text(), nullable=False),
        _created_at(),
        sa.CheckConstraint(ROLES, name="two_factor_roles_role_known"),
        sa.PrimaryKeyConstraint("role"),
    )


def downgrade() -> None:
    op.drop_table("two_factor_roles")
    op.drop_table("recovery_codes")
    op.drop_table("password_reset_requests")
    op.drop_table("password_reset_tokens")
    op.drop_table("sign_in_records")
    op.drop_column("sso_sessions", "user_agent")
    op.drop_column("sso_sessions", "address")
    for column in ("totp_last_step", "totp_enabled_at", "totp_pending_secret", "totp_secret"):
        op.drop_column("accounts", column)
