"""Faults injected into the running platform: after each one, nothing is lost, nothing is
counted twice, and everything agrees with the model again (see ``platform.py``)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from tests.e2e.platform import (
    EndOffsets,
    Traffic,
    consumer_caught_up,
    dead_letter_count,
    everything_agrees,
    inbox_count,
    ledger_invariants,
    published_ids,
    unsent_outbox,
    wait_until,
)

TASK_TOPICS = ["tasks-stream", "tasks-lifecycle"]


def ensure_open_tasks(driver, count: int) -> None:
    missing = count - len(driver.model.open_tasks())
    first = len(driver.model.assignee) + 1000
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(driver.create_task, range(first, first + max(0, missing))))


def relay_holds_a_batch(platform) -> bool:
    (holding,) = platform.sql(platform.tasks_db, """
        SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
        AND state = 'idle in transaction' AND query ILIKE '%outbox%GROUP BY key%'""")[0]
    return holding > 0


def test_relay_killed_mid_batch(platform, api, model, driver):
    ensure_open_tasks(driver, 400)
    everything_agrees(api, model, platform)
    letters = dead_letter_count(platform)
    (last_id,) = platform.sql(platform.tasks_db, "SELECT max(id) FROM outbox")[0]
    end_offsets = EndOffsets(platform, TASK_TOPICS)
    written = end_offsets.total()
    killed = []

    def kill_the_relay_mid_batch():
        # The relay holds its claimed batch in an open transaction while it publishes:
        # kill it as soon as the first events of the batch are on the broker.
        wait_until(lambda: relay_holds_a_batch(platform), 30, 0.001, what="the relay's batch")
        wait_until(lambda: end_offsets.total() > written, 30, 0,
                   what="the first events of the batch on the broker")
        killed.append(platform.stack.kill("tasks-relay"))

    try:
        reshuffled = driver.reshuffle(then=kill_the_relay_mid_batch)
    finally:
        end_offsets.close()
    (pid,) = killed
    ids = {str(r[0]) for r in platform.sql(
        platform.tasks_db, "SELECT event_id FROM outbox WHERE id > :i", i=last_id)}
    unsent = unsent_outbox(platform, platform.tasks_db)
    assert unsent > 0, "the relay was killed before marking its batch sent"
    on_broker = published_ids(platform, TASK_TOPICS)
    published = sum(1 for i in ids if on_broker[i])

    started = time.monotonic()
    platform.stack.start_child("tasks-relay")
    wait_until(lambda: unsent_outbox(platform, platform.tasks_db) == 0, what="outbox drained")
    everything_agrees(api, model, platform)
    took = time.monotonic() - started
    on_broker = published_ids(platform, TASK_TOPICS)
    assert all(on_broker[i] >= 1 for i in ids), "every event of the batch reached the broker"
    twice = sum(1 for i in ids if on_broker[i] > 1)
    assert dead_letter_count(platform) == letters
    print(f"\nrelay: reshuffle of {reshuffled} tasks = {len(ids)} events; killed tasks relay pid "
          f"{pid} mid-batch after {published} of {len(ids)} reached the broker ({unsent} not "
          f"marked sent); after restart: {len(ids)} delivered, {twice} published twice, "
          f"0 booked twice; caught up in {took:.1f} s")


def test_consumer_killed_mid_transaction(platform, api, model, driver):
    ensure_open_tasks(driver, 1500)  # a reshuffle of many more events than one consumer batch
    everything_agrees(api, model, platform)
    inbox = inbox_count(platform, platform.accounting_db, "accounting")
    letters = dead_letter_count(platform)
    killed = []

    def kill_the_consumer_mid_burst():
        wait_until(lambda: inbox_count(platform, platform.accounting_db, "accounting") > inbox,
                   60, 0.002, what="the consumer's first batch")
        killed.append(platform.stack.kill("accounting-consumer"))
        killed.append(inbox_count(platform, platform.accounting_db, "accounting") - inbox)

    reshuffled = driver.reshuffle(then=kill_the_consumer_mid_burst)
    pid, applied = killed
    started = time.monotonic()
    platform.stack.start_child("accounting-consumer")
    everything_agrees(api, model, platform)
    total = inbox_count(platform, platform.accounting_db, "accounting") - inbox
    assert applied < total, "the consumer was killed before it had handled every event"
    assert dead_letter_count(platform) == letters
    print(f"\nconsumer: reshuffle of {reshuffled} tasks; killed accounting consumer pid {pid} "
          f"after {applied} of {total} events applied; after restart: {total} applied once, "
          f"0 twice; caught up in {time.monotonic() - started:.1f} s")


def test_whole_service_killed_under_load(platform, api, model, driver):
    letters = dead_letter_count(platform)
    names = platform.stack.processes_of("accounting")
    with Traffic(driver, 100_000) as traffic:
        time.sleep(2)
        pids = [platform.stack.kill(name) for name in names]
        time.sleep(3)
        during = traffic.ok
        for name in names:
            platform.stack.start_child(name)
        time.sleep(2)
    started = time.monotonic()
    everything_agrees(api, model, platform)
    driver.tasks_match()
    assert dead_letter_count(platform) == letters
    print(f"\nservice: killed all {len(pids)} accounting processes {pids} under load "
          f"({traffic.ok} requests ok, {during} of them before the restart, "
          f"{traffic.failed} failed); caught up in {time.monotonic() - started:.1f} s")


def test_broker_paused_for_30_seconds(platform, api, model, driver):
    letters = dead_letter_count(platform)
    # Steady traffic, paced so that the backlog stays a few hundred events.
    with Traffic(driver, 200_000, complete_every=2, pause=0.15) as traffic:
        time.sleep(1)
        platform.stack.pause_broker()
        try:
            time.sleep(30)
            waiting = unsent_outbox(platform, platform.tasks_db)
        finally:
            platform.stack.resume_broker()
        resumed = time.monotonic()
    _, _ = everything_agrees(api, model, platform)
    took = time.monotonic() - resumed
    driver.tasks_match()
    assert waiting > 0, "events were waiting in the outbox while the broker was paused"
    assert dead_letter_count(platform) == letters
    print(f"\nbroker: paused 30 s (SIGSTOP) under load ({traffic.ok} requests ok, "
          f"{traffic.failed} failed); {waiting} events waited in tasks' outbox; "
          f"caught up {took:.1f} s after resume")


def test_postgres_restarted_during_traffic(platform, api, model, driver):
    letters = dead_letter_count(platform)
    with Traffic(driver, 300_000) as traffic:
        time.sleep(2)
        before = traffic.ok
        started = time.monotonic()
        platform.stack.restart_postgres()
        down = time.monotonic() - started
        time.sleep(4)
    platform.accounting_db.dispose()
    platform.tasks_db.dispose()
    started = time.monotonic()
    everything_agrees(api, model, platform)
    driver.tasks_match()
    assert traffic.ok > before, "traffic went on after the restart"
    assert dead_letter_count(platform) == letters
    print(f"\npostgres: restarted ({down:.1f} s) during traffic: {traffic.ok} requests ok, "
          f"{traffic.failed} failed and stored nothing; caught up in "
          f"{time.monotonic() - started:.1f} s")


def test_consumer_group_reset_changes_nothing(platform, api, model, driver):
    prices, _ = everything_agrees(api, model, platform)
    balances = model.balances(prices)
    inbox = inbox_count(platform, platform.accounting_db, "accounting")
    counts = ledger_invariants(platform)
    platform.stack.kill("accounting-consumer", sig=15)
    output = platform.ates("consumers", "reset", "accounting", "--yes")
    assert "reset to the beginning" in output

    from messaging.groups import committed_offsets, consumer_group_of

    group, topics = consumer_group_of("accounting", platform.settings)
    offsets = committed_offsets(platform.settings, group, topics)
    replayed = sum(published_ids(platform, ["accounts-stream", "accounts-lifecycle",
                                            *TASK_TOPICS]).values())
    assert all(committed == 0 for committed, _ in offsets.values())
    started = time.monotonic()
    platform.stack.start_child("accounting-consumer")
    wait_until(lambda: consumer_caught_up(platform, "accounting"),
               what="the replay to reach the end of every partition")
    took = time.monotonic() - started
    everything_agrees(api, model, platform)
    assert inbox_count(platform, platform.accounting_db, "accounting") == inbox
    assert ledger_invariants(platform) == counts
    assert model.balances(prices) == balances
    print(f"\nreset: accounting group {group} moved to offset 0; {replayed} events replayed "
          f"in {took:.1f} s, 0 applied again, every balance unchanged")
