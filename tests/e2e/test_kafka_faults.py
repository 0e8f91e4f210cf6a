"""Broker faults on the 3-node Apache Kafka cluster (``make test-kafka``): a node killed
with ``kill -9`` under load (the one leading most of the busiest topics' partitions, then
the active controller), and a rolling restart of every node during a reshuffle. After
each: nothing lost, nothing booked twice, the ledger's invariants hold, and everything
agrees with the model again. Skipped on Tansu (one process, nothing to fail over to)."""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest

from deploy.kafka import ApacheKafka
from tests.e2e.platform import (
    ALL_TOPICS,
    Traffic,
    dead_letter_count,
    everything_agrees,
    unsent_outbox,
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
