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

    platform.clear_mails()
    closing = driver.close_day(prices)
    assert closing.payouts, "someone earned money"
    prices, _ = everything_agrees(api, model, platform)
    mails = wait_until(lambda: payout_mails_match(platform, model, closing), 60,
                       what="payout mails")
    assert all(v <= 0 for v in model.balances(prices).values())
    print(f"\nscenario: {len(model.assignee)} tasks, {len(model.bookings)} fees and rewards, "
          f"{len(closing.payouts)} payouts of {sum(closing.payouts.values())} cents, "
          f"{len(mails)} mails; accounting and analytics agreed after {took:.1f} s")
    time.sleep(1)
    assert len(payout_mails_match(platform, model, closing)) == len(closing.payouts)
