"""A payout mail lists the day's corrections with their reasons."""

from __future__ import annotations

from accounting import payout_mail
from accounting.queries import AccountingQueries
from accounting.service import AccountingService
from tests.accounting.conftest import DAY, add_account, moment
from tests.accounting.support import book_task


def test_the_payout_mail_lists_the_days_corrections_with_their_reasons(
    sessions, engine, books, clock
):
    clock.set(moment(DAY))
    account = add_account(sessions)
    book_task(sessions, books, account, "Count the owls", "UBERPOP-7")
    lines, _ = AccountingQueries(sessions).audit_log(account)
    fee = next(line for line in lines if line.type == "fee")
    AccountingService(sessions, books).reverse(fee.id, "Assigned while on leave", "someone")
    AccountingService(sessions, books).adjust(account, 250, "Bonus <for> owls", "someone")
    AccountingService(sessions, books).close_day(DAY)
    with engine.connect() as connection:
        payout_id = connection.exec_driver_sql("SELECT payout_id FROM payout_emails").scalar()
    with sessions() as session, session.begin():
        payout_mail.compose(session, payout_id)
    with engine.connect() as connection:
        text_body, html_body = connection.exec_driver_sql(
            "SELECT text_body, html_body FROM payout_emails").one()

    lines = [line.strip() for line in text_body.splitlines()]
    assert [line.split()[0] for line in lines if "UBERPOP-7" in line or "Bonus" in line] == [
        "fee", "reward", "reversal", "adjustment"]
    assert any(line.endswith("[UBERPOP-7] Count the owls: Assigned while on leave")
               for line in lines)
    assert any(line.endswith("Bonus <for> owls") for line in lines)
    assert "Bonus &lt;for&gt; owls" in html_body
