"""The memory-only dev broker (Tansu) killed under load and started again empty: the
relays publish again what it lost from their outboxes, the consumers read the new topics
from the beginning, and every event ends applied once."""

from __future__ import annotations

import time

from messaging.kafka import ensure_topics
from tests.e2e.platform import (
    Traffic,
    dead_letter_count,
    everything_agrees,
    inbox_count,
    ledger_invariants,
    unsent_outbox,
    wait_until,
)


def sent_events(platform, engine) -> int:
    return platform.sql(engine, "SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL "
                                "AND renderer IS NULL")[0][0]


def test_dev_broker_killed_under_load_and_started_empty(platform, api, model, driver):
    broker = platform.stack.broker
    with Traffic(driver, 300_000, pause=0.05) as traffic:
        time.sleep(2)
        before = traffic.ok
        pid = broker.process.pid
        broker.process.kill()  # kill -9: every event it held is gone
        broker.process.wait(10)
        broker.stop()
        broker.start()
        ensure_topics(platform.settings)
        time.sleep(3)
    started = time.monotonic()
    wait_until(lambda: unsent_outbox(platform, platform.tasks_db) == 0
               and unsent_outbox(platform, platform.accounting_db) == 0,
               what="the outboxes published again")
    everything_agrees(api, model, platform)
    driver.tasks_match()
    took = time.monotonic() - started
    invariants = ledger_invariants(platform)
    # the dead-letter topics were forgotten too: any letter now is a new one
    assert dead_letter_count(platform) == 0
    booked = inbox_count(platform, platform.accounting_db, "accounting")
    print(f"\nbroker forgot: killed Tansu (pid {pid}) under load after {before} requests, "
          f"started it empty; {traffic.ok} requests ok, {traffic.failed} failed; "
          f"tasks outbox {sent_events(platform, platform.tasks_db)} events and accounting "
          f"outbox {sent_events(platform, platform.accounting_db)} events on the new broker; "
          f"accounting applied {booked} events, 0 lost, 0 twice ({invariants}); "
          f"agreed again in {took:.1f} s")
