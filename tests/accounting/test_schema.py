"""The migrations create exactly what the models describe, and keep what is stored."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from accounting.models import Base
from messaging.tables import messaging_metadata
from platform_kit.migrations import upgrade


def test_migrations_match_the_models(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, [Base.metadata, messaging_metadata])
    assert differences == []


def test_payouts_made_before_payouts_took_their_transactions_ids_keep_their_mails(
    make_database,
):
    engine = make_database("accounting_migrations")
    url = engine.url.render_as_string(hide_password=False)
    upgrade("accounting.migrations", url, "0004")
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO payouts (public_id, account_id, day, amount, transaction_id, created_at)"
            " VALUES (gen_random_uuid(), gen_random_uuid(), '2026-11-21', 500, 77, now())"
        ))
        connection.execute(text(
            "INSERT INTO payout_emails (payout_id) SELECT id FROM payouts"
        ))

    upgrade("accounting.migrations", url)
    with engine.begin() as connection:
        [(payout, transaction)] = connection.execute(
            text("SELECT id, transaction_id FROM payouts")).all()
        assert payout != transaction
        assert connection.scalar(text("SELECT payout_id FROM payout_emails")) == payout
        with pytest.raises(IntegrityError, match="payout_is_its_transaction"):
            connection.execute(text(
                "INSERT INTO payouts (id, public_id, account_id, day, amount, transaction_id,"
                " created_at) VALUES (90, gen_random_uuid(), gen_random_uuid(), '2026-11-22',"
                " 500, 91, now())"
            ))
