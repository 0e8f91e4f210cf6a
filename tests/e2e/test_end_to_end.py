"""The whole platform, driven from outside, agrees with an independent calculation;
then the same agreement after every fault injected into it.

Each test adds requests to one shared model (see ``platform.py``) and checks every
balance, audit log, payout mail, management report and analytics figure against it,
plus the ledger's invariants in accounting's database.
"""

from __future__ import annotations

import time

from tests.e2e.platform import (
    everything_agrees,
    payout_mails_match,
    wait_until,
)


def test_scenario_agrees_with_an_independent_calculation(platform, api, model, driver):
    workers = [driver.create_account() for _ in range(4)]
    driver.create_account("manager")
    tasks = [driver.create_task(n) for n in range(1, 31)]
    assert {t["assignee_id"] for t in tasks} - set(model.emails) == set()
    driver.reshuffle()
    driver.reshuffle()
    for task in tasks[:12]:
        driver.complete(task["id"])
    prices, took = everything_agrees(api, model, platform)
    assert any(w in model.balances(prices) for w in workers)
    first = 100
    while not model.payouts_at_close(prices):
        driver.new_popug_with_a_done_task(first)
        first = len(model.assignee) + 100
        prices, _ = everything_agrees(api, model, platform)

    # The one hand close a calendar day allows happens with the SMTP server down: the
    # payouts are made, every mail waits, and arrives once when the server is back.
    platform.clear_mails()
    platform.stack.kill("mailsink")
    closing = driver.close_day(prices)
    assert closing.payouts, "someone earned money"
    prices, _ = everything_agrees(api, model, platform)
    assert all(v <= 0 for v in model.balances(prices).values())
    wait_until(lambda: pending_mails(platform, closing) == len(closing.payouts), 60,
               what="failed attempts to send every payout mail")
    platform.stack.start_child("mailsink")
    back = time.monotonic()
    mails = wait_until(lambda: payout_mails_match(platform, model, closing), 60,
                       what="payout mails after the SMTP server came back")
    took_mails = time.monotonic() - back
    time.sleep(3)  # a duplicate would have arrived by now (retries every <= 2 s)
    assert len(payout_mails_match(platform, model, closing)) == len(closing.payouts)
    (attempts,) = platform.sql(platform.accounting_db, """
        SELECT sum(e.attempts) FROM payout_emails e JOIN payouts p ON p.id = e.payout_id
        WHERE p.day = :day""", day=closing.day)[0]
    print(f"\nscenario: {len(model.assignee)} tasks, {len(model.bookings)} fees and rewards, "
          f"{len(closing.payouts)} payouts of {sum(closing.payouts.values())} cents; "
          f"accounting and analytics agreed after {took:.1f} s; SMTP down across the close: "
          f"{attempts} send attempts, {len(mails)} mails arrived {took_mails:.1f} s after "
          f"the server was back, none twice")


def pending_mails(platform, closing) -> int:
    """Payout mails of the closed day that were tried and not sent yet."""
    return platform.sql(platform.accounting_db, """
        SELECT count(*) FROM payout_emails e JOIN payouts p ON p.id = e.payout_id
        WHERE p.day = :day AND e.sent_at IS NULL AND e.attempts > 0""", day=closing.day)[0][0]
