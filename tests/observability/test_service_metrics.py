"""Business metrics: open tasks, balances below zero, payouts made, payout mails sent."""

from __future__ import annotations

import random
import time
import uuid

from fastapi.testclient import TestClient
from sqlalchemy import text

from accounting import app as accounting_app
from accounting.ledger_sql import Books
from accounting.mailer import Mailer
from accounting.service import AccountingService
from accounting.settings import AccountingSettings
from deploy.embedded import free_port
from platform_kit.db import make_session_factory
from tasks import app as tasks_app
from tests.accounting.conftest import add_account, assign, balance_of, complete
from tests.helpers import engine_of, migrated_database
from tests.observability.conftest import reading, scraped
from tests.tasks.conftest import insert_open_tasks


def gauge(client: TestClient, name: str) -> float:
    return scraped(client.get("/metrics").text)[(name, frozenset())]


def test_open_tasks_are_read_at_scrape_time_from_the_newest_tasks_app(settings, postgres_server):
    with (
        migrated_database(postgres_server.url, "tasks") as first_url,
        migrated_database(postgres_server.url, "tasks") as second_url,
        engine_of(first_url) as first,
        engine_of(second_url) as second,
    ):
        insert_open_tasks(first, 3, uuid.uuid4())
        insert_open_tasks(second, 5, uuid.uuid4())
        with second.begin() as conn:
            conn.execute(text("UPDATE tasks SET status = 'done', completed_at = now() "
                              "WHERE id IN (SELECT id FROM tasks ORDER BY id LIMIT 2)"))

        platform = settings.with_(service_database_urls={"tasks": first_url})
        with TestClient(tasks_app.create_app(platform, environ={})) as client:
            assert gauge(client, "ates_tasks_open") == 3
            insert_open_tasks(first, 1, uuid.uuid4())
            assert gauge(client, "ates_tasks_open") == 4
            other = settings.with_(service_database_urls={"tasks": second_url})
            with TestClient(tasks_app.create_app(other, environ={})) as second_client:
                assert gauge(second_client, "ates_tasks_open") == 3


def test_negative_balances_payouts_and_payout_mails(settings, postgres_server, mailbox):
    with (
        migrated_database(postgres_server.url, "accounting") as url,
        engine_of(url) as engine,
    ):
        platform = settings.with_(service_database_urls={"accounting": url},
                                  smtp_url=mailbox.smtp_url)
        books = Books.create(AccountingSettings(platform, mail_retry_seconds=0.1,
                                                mail_retry_max_seconds=0.1),
                             rng=random.Random(7))
        sessions = make_session_factory(engine)
        in_debt, earner = add_account(sessions), add_account(sessions)
        assign(sessions, books, uuid.uuid4(), in_debt)
        for task in (uuid.uuid4(), uuid.uuid4()):
            assign(sessions, books, task, earner)
            complete(sessions, books, task, earner)
        earned = balance_of(engine, earner)
        assert balance_of(engine, in_debt) < 0 < earned

        with TestClient(accounting_app.create_app(platform, environ={})) as client:
            assert gauge(client, "ates_accounting_negative_balances") == 1

        payouts, paid = reading("ates_payouts_total"), reading("ates_paid_out_total")
        AccountingService(sessions, books).close_day()
        assert reading("ates_payouts_total") - payouts == 1
        assert reading("ates_paid_out_total") - paid == earned

        sent = reading("ates_payout_emails_sent_total")
        postponed = reading("ates_payout_emails_postponed_total")
        unreachable = books.settings.platform.with_(smtp_url=f"smtp://127.0.0.1:{free_port()}")
        refused = Mailer(sessions, AccountingSettings(unreachable))
        assert refused.run_once() == 0
        assert reading("ates_payout_emails_postponed_total") - postponed == 1
        mailer = Mailer(sessions, books.settings)
        for _ in range(200):  # until the postponed mail is due again
            if mailer.run_once():
                break
            time.sleep(0.05)
        assert reading("ates_payout_emails_sent_total") - sent == 1
        assert len(mailbox.messages()) == 1
