"""Live schema migration: tasks moves its CUD events from v1 to v2 while accounting and
analytics keep running; then a consumer that does not accept v2 yet (a release rolled out
in the wrong order) dead-letters those events, and once it does, a redrive applies each
of them exactly once."""

from __future__ import annotations

import json

from messaging.dlq import read_all
from tests.e2e.platform import (
    audit_logs,
    consumer_caught_up,
    dead_letters,
    everything_agrees,
    inbox_count,
    wait_until,
)


def state_event_versions(platform, task_ids: set[str]) -> dict[tuple[str, str], set[int]]:
    """(task id, event type) -> the schema versions tasks-stream carried for it."""
    topic = platform.settings.topic("tasks-stream")
    versions: dict[tuple[str, str], set[int]] = {}
    for message in read_all(platform.settings.kafka_bootstrap, topic):
        event = json.loads(message.value())
        if event["data"]["task_id"] in task_ids:
            versions.setdefault((event["data"]["task_id"], event["type"]), set()).add(
                event["dataversion"])
    return versions


def test_tasks_switches_from_v1_to_v2_while_consumers_run(platform, api, model, driver):
    platform.tasks_event_version(1)
    old = [driver.create_task(n) for n in range(500_000, 500_006)]
    pid = platform.tasks_event_version(2)
    new = [driver.create_task(n) for n in range(500_006, 500_012)]
    for task in old[:3] + new[:3]:
        driver.complete(task["id"])
    prices, took = everything_agrees(api, model, platform)

    ids = {t["id"] for t in old + new}
    versions = state_event_versions(platform, ids)
    for task in old:
        assert versions[(task["id"], "task.created")] == {1}
    for task in new:
        assert versions[(task["id"], "task.created")] == {2}
    for task in old[:3] + new[:3]:
        assert versions[(task["id"], "task.updated")] == {2}

    shown = {line["task_id"]: line["task"] for lines in audit_logs(api, model).values()
             for line in lines if line["task_id"] in ids}
    for task in old + new:
        assert shown[task["id"]] == {"title": task["title"], "jira_id": task["jira_id"],
                                     "description": task["description"]}
        assert "[" not in task["title"] and task["jira_id"].startswith("UBERPOP-")

    best = api.call(model.admin, "GET", "analytics", "/api/analytics/most-expensive-task",
                    params={"period": "month"}).json()["task"]
    truth = api.call(model.admin, "GET", "tasks", f"/api/tasks/{best['id']}").json()
    assert (best["title"], best["jira_id"]) == (truth["title"], truth["jira_id"])
    assert best["reward"] == max(prices.reward[t] for t in model.done)
    print(f"\nmigration: tasks restarted (pid {pid}) from v1 to v2 with consumers running; "
          f"{len(old)} tasks created on v1, {len(new)} on v2, completions on v2; "
          f"all figures agreed after {took:.1f} s")


def test_unknown_version_is_dead_lettered_then_redriven_once(platform, api, model, driver):
    # Tasks already writes v2; the accounting consumer of the previous release reads
    # task.created/updated v1 only.
    platform.tasks_event_version(2)
    platform.stack.restart("accounting-consumer",
                           env={"ATES_ACCEPTED_EVENT_VERSIONS": "task.created=1;task.updated=1"})
    before = dead_letters(platform, "tasks-stream")
    seen = {(lt["event_id"], lt["consumer"]) for lt in before}
    redrivable = sum(1 for lt in before if lt["consumer"] == "accounting")
    task = driver.create_task(600_000)
    driver.complete(task["id"])

    def new_letters():
        letters = [lt for lt in dead_letters(platform, "tasks-stream")
                   if (lt["event_id"], lt["consumer"]) not in seen]
        return letters if len(letters) >= 2 else None

    letters = wait_until(new_letters, 60, what="two dead letters")
    assert len(letters) == 2, letters
    assert {(lt["type"], lt["dataversion"], lt["consumer"]) for lt in letters} == {
        ("task.created", 2, "accounting"), ("task.updated", 2, "accounting")}
    assert all("version 2" in lt["error"] for lt in letters)
    everything_agrees(api, model, platform)  # fee and reward come from business events

    def replica():
        return platform.sql(platform.accounting_db,
                            "SELECT status, version FROM tasks WHERE public_id = :t",
                            t=task["id"])[0]

    assert replica() == (None, 0)
    inbox = inbox_count(platform, platform.accounting_db, "accounting")

    # The current release, then the redrive (twice: a repeated redrive changes nothing).
    platform.stack.restart("accounting-consumer", env={})
    redriven = platform.ates("dlq", "redrive", "tasks-stream", "--yes", "--consumer", "accounting")
    assert redriven.strip() == f"redriven: {redrivable + 2}"
    wait_until(lambda: replica() == ("done", 2), 60, what="the redriven events applied")
    assert inbox_count(platform, platform.accounting_db, "accounting") == inbox + 2
    platform.ates("dlq", "redrive", "tasks-stream", "--yes", "--consumer", "accounting")
    wait_until(lambda: consumer_caught_up(platform, "accounting"), 60,
               what="the second redrive to be read")
    event_ids = [lt["event_id"] for lt in letters]
    everything_agrees(api, model, platform)
    (handled,) = platform.sql(platform.accounting_db,
                              "SELECT count(*) FROM inbox WHERE consumer = 'accounting' "
                              "AND event_id = ANY(CAST(:ids AS uuid[]))", ids=event_ids)[0]
    assert handled == 2
    assert inbox_count(platform, platform.accounting_db, "accounting") == inbox + 2
    print(f"\ndlq: accounting on v1 only dead-lettered {len(letters)} v2 events; after the "
          f"upgrade, two redrives applied each once (replica now done, version 2)")
