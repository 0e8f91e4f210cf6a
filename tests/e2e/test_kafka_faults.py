"""Broker faults on the 3-node Apache Kafka cluster (``make test-kafka``): a node killed
with ``kill -9`` under load (the one leading most of the busiest topics' partitions, then
the active controller), a rolling restart of every node during a reshuffle, and a second
accounting consumer joining the group and leaving it while a reshuffle's events flow.
After each: nothing lost, nothing booked twice, the ledger's invariants hold, and
everything agrees with the model again. Skipped on Tansu (one process, nothing to fail
over to)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

from deploy.kafka import ApacheKafka
from messaging.groups import committed_offsets, consumer_group_of
from tests.e2e.platform import (
    ALL_TOPICS,
    Traffic,
    dead_letter_count,
    everything_agrees,
    inbox_count,
    payout_mails_match,
    unsent_outbox,
    wait_until,
)

BUSIEST = ["tasks-stream", "tasks-lifecycle", "accounting-lifecycle"]

# A test run alone also starts the platform and its three JVMs (minutes on a busy machine).
pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def cluster(platform) -> ApacheKafka:
    broker = platform.stack.broker
    if not isinstance(broker, ApacheKafka) or broker.nodes < 3:
        pytest.fail("needs the 3-node Apache Kafka cluster: run it with make test-kafka")
    return broker


def busiest_leader(platform, cluster: ApacheKafka) -> tuple[int, int]:
    """The node leading most partitions of the busiest topics, and how many it leads."""
    topics = [platform.settings.topic(t) for t in BUSIEST]
    led = Counter(cluster.leaders(topics).values())
    node, count = led.most_common(1)[0]
    return node, count


def kill_under_load(platform, api, model, driver, cluster, node: int, first: int) -> dict:
    letters = dead_letter_count(platform)
    with Traffic(driver, first, complete_every=2, pause=0.05) as traffic:
        time.sleep(2)
        before = traffic.ok
        in_flight = unsent_outbox(platform, platform.tasks_db)
        pid = cluster.kill(node, signal.SIGKILL)
        killed_at = time.monotonic()
        time.sleep(5)  # traffic goes on with two nodes of three
        during = traffic.ok - before
        cluster.start_node(node)
        back = time.monotonic() - killed_at
    _, took = everything_agrees(api, model, platform)
    driver.tasks_match()
    assert dead_letter_count(platform) == letters
    return {"pid": pid, "in_flight": in_flight, "during": during, "ok": traffic.ok,
            "failed": traffic.failed, "back": back, "agreed": took}


def test_busiest_partition_leader_killed_under_load(platform, api, model, driver, cluster):
    node, led = busiest_leader(platform, cluster)
    figures = kill_under_load(platform, api, model, driver, cluster, node, 300_000)
    print(f"\nkafka: kill -9 of node {node} (pid {figures['pid']}), leader of {led} partitions "
          f"of {', '.join(BUSIEST)}, under load: {figures['in_flight']} events in tasks' "
          f"outbox at the kill, {figures['during']} requests served while it was down "
          f"({figures['ok']} ok, {figures['failed']} failed in all); node back after "
          f"{figures['back']:.1f} s; everything agreed {figures['agreed']:.1f} s later; "
          "0 lost, 0 booked twice")


def test_active_controller_killed_under_load(platform, api, model, driver, cluster):
    node = cluster.active_controller()
    assert node is not None, "no active controller found in the quorum state"
    figures = kill_under_load(platform, api, model, driver, cluster, node, 310_000)
    after = cluster.active_controller()
    print(f"\nkafka: kill -9 of node {node} (pid {figures['pid']}), the active controller, "
          f"under load: {figures['in_flight']} events in tasks' outbox at the kill, "
          f"{figures['during']} requests served while it was down ({figures['ok']} ok, "
          f"{figures['failed']} failed in all); controller now node {after}; node back "
          f"after {figures['back']:.1f} s; everything agreed {figures['agreed']:.1f} s "
          "later; 0 lost, 0 booked twice")


def test_rolling_restart_of_every_node_during_a_reshuffle(platform, api, model, driver,
                                                          cluster):
    letters = dead_letter_count(platform)
    if len(model.open_tasks()) < 200:
        first = len(model.assignee) + 320_000
        for n in range(first, first + 200 - len(model.open_tasks())):
            driver.create_task(n)
    restarts = []

    def roll() -> None:
        for node in cluster.ids:
            started = time.monotonic()
            cluster.kill(node, signal.SIGTERM)
            cluster.start_node(node)
            restarts.append(time.monotonic() - started)

    reassigned = driver.reshuffle(then=roll)
    _, took = everything_agrees(api, model, platform)
    driver.tasks_match()
    assert dead_letter_count(platform) == letters
    print(f"\nkafka: rolling restart of nodes {cluster.ids} (SIGTERM, start again, one at a "
          f"time: {', '.join(f'{t:.1f} s' for t in restarts)}) right after a reshuffle of "
          f"{reassigned} tasks; everything agreed {took:.1f} s after the last node was back; "
          f"0 lost, 0 booked twice; topics {', '.join(ALL_TOPICS)}")


# A second accounting consumer, the service's own worker, imported and connected in
# advance (so that it joins at once when told): it joins the group on the first line it
# reads and leaves it, closing its consumer, on the next one (or when its input closes).
JOINER = """
import os, sys, threading
from deploy.serve import service_module
from platform_kit.settings import Settings

consume = service_module("accounting").workers(Settings.from_env())["consumer"]
print("ready", flush=True)
os.dup2(2, 1)  # its logs go where its errors go, not into the pipe read for "ready"
sys.stdin.readline()
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
consume(stop)
"""


def accounting_group(platform) -> tuple[str, list[str]]:
    return consumer_group_of("accounting", platform.settings)


def partitions_held(platform) -> list[int]:
    """How many partitions each member of accounting's consumer group holds (once the
    group is stable; an empty list while it rebalances)."""
    group, _ = accounting_group(platform)
    admin = AdminClient({"bootstrap.servers": platform.settings.kafka_bootstrap})
    description = admin.describe_consumer_groups([group])[group].result(10)
    if description.state != ConsumerGroupState.STABLE:
        return []
    return sorted(len(m.assignment.topic_partitions) for m in description.members)


def events_in_flight(platform) -> tuple[int, int]:
    """Events still in tasks' outbox, and events on the topics accounting has not applied."""
    group, topics = accounting_group(platform)
    offsets = committed_offsets(platform.settings, group, topics)
    lag = sum(end - max(committed, 0) for committed, end in offsets.values())
    return unsent_outbox(platform, platform.tasks_db), lag


def tell(joiner: subprocess.Popen) -> None:
    joiner.stdin.write("\n")
    joiner.stdin.flush()


def both_hold_partitions(platform) -> list[int] | None:
    held = partitions_held(platform)
    return held if len(held) == 2 and min(held) > 0 else None


def join_group(platform, joiner: subprocess.Popen) -> dict:
    """Let the joiner in; returns the events in flight then and how long until both
    consumers hold partitions of a stable group."""
    in_flight = events_in_flight(platform)
    started = time.monotonic()
    tell(joiner)
    held = wait_until(lambda: both_hold_partitions(platform), 60, 0.1,
                      what="two consumers holding partitions")
    return {"in_flight": in_flight, "took": time.monotonic() - started, "held": held}


def leave_group(platform, joiner: subprocess.Popen, partitions: int) -> dict:
    """Let the joiner go; returns the events in flight then and how long until the first
    consumer alone holds every partition again."""
    in_flight = events_in_flight(platform)
    started = time.monotonic()
    tell(joiner)
    joiner.wait(60)
    wait_until(lambda: partitions_held(platform) == [partitions], 60, 0.1,
               what="one consumer holding every partition")
    return {"in_flight": in_flight, "took": time.monotonic() - started}


def start_joiner(platform) -> subprocess.Popen:
    log = open(platform.stack.log_dir / "accounting-consumer-joiner.log", "ab")
    joiner = subprocess.Popen([sys.executable, "-c", JOINER], env=platform.stack.env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                              text=True)
    log.close()
    assert joiner.stdout.readline().strip() == "ready", "the second consumer did not start"
    return joiner


def payout_mails_sent_once(platform, api, model, driver, prices) -> int:
    """Closes the day by hand when no close happened yet today (else checks the last
    close again); every payout of it has exactly one mail. Returns the number of mails."""
    if not model.closings:
        while not model.payouts_at_close(prices):
            driver.new_popug_with_a_done_task(len(model.assignee) + 330_000)
            prices, _ = everything_agrees(api, model, platform)
        platform.clear_mails()
        closing = driver.close_day(prices)
        wait_until(lambda: payout_mails_match(platform, model, closing), 60,
                   what="a mail for every payout")
        everything_agrees(api, model, platform)
        time.sleep(3)  # a duplicate would have arrived by now (retries every <= 2 s)
    return len(payout_mails_match(platform, model, model.closings[-1]))


@pytest.mark.timeout(1200)  # run alone, it creates its 1,200 tasks on a fresh platform
def test_consumer_joining_and_leaving_during_a_reshuffle(platform, api, model, driver,
                                                        cluster):
    letters = dead_letter_count(platform)
    missing = 1200 - len(model.open_tasks())  # many more events than one consumer batch
    first = len(model.assignee) + 340_000
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(driver.create_task, range(first, first + max(0, missing))))
    everything_agrees(api, model, platform)
    inbox = inbox_count(platform, platform.accounting_db, "accounting")
    partitions = len(committed_offsets(platform.settings, *accounting_group(platform)))
    assert partitions_held(platform) == [partitions]
    figures: dict = {}
    joiner = start_joiner(platform)
    try:
        # It joins while the events of one reshuffle flow, and leaves during the next one.
        reshuffled = driver.reshuffle(
            then=lambda: figures.update(join=join_group(platform, joiner)))
        driver.reshuffle(
            then=lambda: figures.update(leave=leave_group(platform, joiner, partitions)))
    finally:
        if joiner.poll() is None:
            joiner.kill()
            joiner.wait(10)
    assert joiner.returncode == 0, "the second consumer did not leave cleanly"
    joined, left = figures["join"], figures["leave"]
    assert sum(joined["in_flight"]) > 0, "it joined after every event had been applied"
    assert sum(left["in_flight"]) > 0, "it left after every event had been applied"
    prices, took = everything_agrees(api, model, platform)
    driver.tasks_match()
    assert dead_letter_count(platform) == letters
    applied = inbox_count(platform, platform.accounting_db, "accounting") - inbox
    mails = payout_mails_sent_once(platform, api, model, driver, prices)
    print(f"\nkafka: a second accounting consumer joined the group right after a reshuffle "
          f"of {reshuffled} tasks, with {joined['in_flight'][0]} events in tasks' outbox "
          f"and {joined['in_flight'][1]} on the topics not applied yet; both held "
          f"partitions ({' + '.join(map(str, joined['held']))} of {partitions}) after "
          f"{joined['took']:.1f} s; it left right after a second reshuffle, with "
          f"{left['in_flight'][0]} + {left['in_flight'][1]} events in flight, and the first "
          f"consumer held all {partitions} again {left['took']:.1f} s later; {applied} "
          f"events applied once, everything agreed {took:.1f} s after; payout mails: "
          f"{mails}, each sent once; 0 lost, 0 booked twice")
