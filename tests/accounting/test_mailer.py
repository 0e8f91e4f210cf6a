"""Payout mails through the real SMTP sink: kept while the server is down, sent once."""

from __future__ import annotations

import re
import threading
from collections import Counter

import pytest
from sqlalchemy import text

from accounting.ledger_sql import Books
from accounting.mailer import Mailer, SmtpServer
from accounting.service import AccountingService, LedgerCommands
from tests.accounting.conftest import (
    DAY,
    accounting_settings_for,
    add_account,
    charge,
    moment,
    new_id,
)


@pytest.fixture
def mail_books(books, mailbox, accounting_database_url) -> Books:
    settings = accounting_settings_for(
        books.settings.platform, accounting_database_url, mailbox.smtp_url
    )
    return Books.create(settings, rng=books.rng, clock=books.clock)


def pay_out(sessions, books, clock, accounts) -> None:
    clock.set(moment(DAY))
    with sessions() as session, session.begin():
        LedgerCommands(books).apply_task_completed(session, [charge(new_id(), a) for a in accounts])
    AccountingService(sessions, books).close_day(DAY)


def mail_rows(engine):
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT recipient, attempts, sent_at, last_error FROM payout_emails"
                 " ORDER BY payout_id")
        ).all()


def run_mailers(sessions, settings, count: int, until) -> None:
    stop = threading.Event()
    mailers = [Mailer(sessions, settings, idle_sleep=0.02) for _ in range(count)]
    threads = [threading.Thread(target=m.run, args=(stop,)) for m in mailers]
    for thread in threads:
        thread.start()
    try:
        until()
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)


def test_mails_wait_while_smtp_is_down_and_arrive_once_when_it_is_back(
    sessions, engine, mail_books, clock, mailbox
):
    accounts = [add_account(sessions) for _ in range(4)]
    pay_out(sessions, mail_books, clock, accounts)
    mailbox.pause()

    assert Mailer(sessions, mail_books.settings).run_once() == 0
    [first, *_] = mail_rows(engine)
    assert first.attempts == 1 and first.sent_at is None and "421" in first.last_error
    assert mailbox.messages() == []

    mailbox.resume()
    run_mailers(
        sessions,
        mail_books.settings,
        count=2,
        until=lambda: mailbox.wait_for(lambda mails: len(mails) >= 4, timeout=15),
    )
    assert Mailer(sessions, mail_books.settings).run_once() == 0

    mails = mailbox.messages()
    recipients = Counter(to for mail in mails for to in mail["to"])
    assert recipients == Counter(f"worker-{a.hex[:8]}@popug.inc" for a in accounts)
    assert all(row.sent_at is not None for row in mail_rows(engine))
    mail = mails[0]
    assert mail["from"] == mail_books.settings.mail_from
    assert mail["subject"].startswith(f"Your aTES payout for {DAY.isoformat()}: $")
    assert "you have been paid $" in mail["text"]
    assert "<strong>$" in mail["html"]


def test_a_mail_waits_for_the_recipient_to_be_known(sessions, engine, mail_books, clock, mailbox):
    stranger = new_id()  # paid before its account.created arrived
    pay_out(sessions, mail_books, clock, [stranger])
    assert Mailer(sessions, mail_books.settings).run_once() == 0
    assert "not known" in mail_rows(engine)[0].last_error

    add_account(sessions, stranger)
    with engine.begin() as connection:
        connection.execute(text("UPDATE payout_emails SET next_attempt_at = now()"))
    assert Mailer(sessions, mail_books.settings).run_once() == 1
    [mail] = mailbox.messages()
    assert mail["to"] == [f"worker-{stranger.hex[:8]}@popug.inc"]
    assert mail["text"].startswith(f"Hello Popug {stranger.hex[:4]},")


def test_smtp_urls():
    assert SmtpServer.from_url("smtp://127.0.0.1:1025") == SmtpServer("127.0.0.1", 1025)
    assert SmtpServer.from_url("smtps://bot:p%40ss@mail.popug.inc") == SmtpServer(
        "mail.popug.inc", 465, True, "bot", "p@ss"
    )
    with pytest.raises(ValueError):
        SmtpServer.from_url("http://mail.popug.inc")


def dollars(cents: int) -> str:
    return f"{'-' if cents < 0 else ''}${abs(cents) // 100}.{abs(cents) % 100:02d}"


def test_the_payout_mail_has_an_inline_styled_html_part_and_its_plain_text_twin(
    sessions, engine, mail_books, clock, mailbox
):
    account = add_account(sessions)
    pay_out(sessions, mail_books, clock, [account])
    assert Mailer(sessions, mail_books.settings).run_once() == 1
    [mail] = mailbox.messages()
    with engine.connect() as connection:
        amounts = connection.execute(text(
            "SELECT type, amount FROM transactions WHERE account_id = :account ORDER BY id"),
            {"account": account}).all()
    html_part, text_part = mail["html"], mail["text"]

    assert html_part is not None and text_part  # multipart/alternative: both parts
    assert "<style" not in html_part and "<link" not in html_part and "class=" not in html_part
    cells = re.findall(r"<t[dh]\b[^>]*>", html_part)
    assert cells and all('style="' in cell for cell in cells)
    assert 'role="presentation"' in html_part and '<html lang="en">' in html_part
    assert "%" not in html_part.replace("100%", "")  # no format() placeholder left
    for kind, cents in amounts:
        shown = dollars(cents if kind != "payout" else -cents)
        assert shown in text_part and shown in html_part
        if kind != "payout":
            assert any(line.split()[:2] == [kind, shown] for line in text_part.splitlines())
