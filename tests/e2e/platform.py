"""The platform as `make up` starts it, driven from outside, plus an independent model.

``Platform`` wraps ``deploy.stack.Stack`` started with one process per web app and per
worker (``split_workers``). ``Api`` talks to the services over HTTP with tokens obtained
through the OIDC code + PKCE flow. ``Model`` records every request that succeeded and
computes, on its own, what every balance, audit log, payout mail and report must say.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx
from sqlalchemy import text

from accounting.domain import COMPANY_ACCOUNT_ID
from auth_client.token_flow import obtain_tokens
from deploy.embedded import free_ports
from deploy.serve import available_services
from deploy.stack import Stack, StackConfig
from platform_kit.db import make_engine
from platform_kit.settings import Settings

ADMIN_PASSWORD = "e2e-admin-password"
PASSWORD = "e2e popug password"
CONVERGENCE_SECONDS = 180


def wait_until(check, timeout: float = CONVERGENCE_SECONDS, interval: float = 0.5,
               what: str = "convergence"):
    """Poll ``check`` until it returns a truthy value (or raises nothing); returns it."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
            last_error = None
        except (AssertionError, httpx.HTTPError) as exc:
            last_error = exc
        time.sleep(interval)
    if last_error is not None:
        raise AssertionError(f"no {what} within {timeout}s: {last_error}") from last_error
    raise AssertionError(f"no {what} within {timeout}s")


class Platform:
    def __init__(self, var_dir: Path):
        ports = free_ports(["PG", "KAFKA", "SMTP", "MAIL",
                            *(s.upper() for s in available_services())])
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATES_")}
        env |= {f"ATES_{k}_PORT": str(v) for k, v in ports.items()}
        env |= {
            "ATES_VAR_DIR": str(var_dir),
            "ATES_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "ATES_SPLIT_WORKERS": "1",
            # Tasks starts on schema v1 of its CUD events; a test moves it to v2 live.
            "ATES_TASKS_EVENT_VERSION": "1",
            # Payout mails are retried quickly once the SMTP server is back.
            "ATES_ACCOUNTING_MAIL_RETRY_SECONDS": "0.5",
            "ATES_ACCOUNTING_MAIL_RETRY_MAX_SECONDS": "2",
        }
        if os.environ.get("ATES_TEST_BROKER", "").strip().lower() == "kafka":
            # The 3-node Apache Kafka cluster (RF 3, min.insync.replicas 2) instead of Tansu.
            env |= {"ATES_BROKER": "kafka", "ATES_KAFKA_NODES": "3"}
        self.var_dir = var_dir
        self.stack = Stack(StackConfig.from_env(env), env)

    def start(self) -> Platform:
        self.stack.start()
        self.settings = Settings.from_env(self.stack.env)
        self.accounting_db = make_engine(self.settings.database_for("accounting"))
        self.tasks_db = make_engine(self.settings.database_for("tasks"))
        self.passwords = {login["email"]: login["password"] for login in self.stack.logins}
        return self

    def stop(self) -> None:
        for engine in (getattr(self, "accounting_db", None), getattr(self, "tasks_db", None)):
            if engine is not None:
                engine.dispose()
        self.stack.stop()

    def tasks_event_version(self, version: int) -> int | None:
        """Make tasks write its CUD events in schema ``version`` (restarting its web app
        when it writes another one); returns the new pid, or None if nothing changed."""
        current = self.stack.child_env.get("tasks", {}).get(
            "ATES_TASKS_EVENT_VERSION", self.stack.env["ATES_TASKS_EVENT_VERSION"])
        if current == str(version):
            return None
        return self.stack.restart("tasks", env={"ATES_TASKS_EVENT_VERSION": str(version)})

    def url(self, service: str) -> str:
        return self.stack.config.service_url(service)

    @property
    def mail_url(self) -> str:
        return f"http://127.0.0.1:{self.stack.config.mail_port}"

    def ates(self, *args: str) -> str:
        """Run an ``ates`` command against this platform; returns its output."""
        done = subprocess.run([sys.executable, "-m", "deploy.cli", *args], env=self.stack.env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"ates {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    def sql(self, engine, query: str, **params):
        with engine.connect() as conn:
            return conn.execute(text(query), params).all()

    def mails(self) -> list[dict]:
        return httpx.get(f"{self.mail_url}/api/messages", timeout=10).json()

    def clear_mails(self) -> None:
        httpx.delete(f"{self.mail_url}/api/messages", timeout=10).raise_for_status()


def start_platform() -> tuple[Platform, Path]:
    var_dir = Path(tempfile.mkdtemp(prefix="ates-e2e-"))
    var_dir.chmod(0o755)
    platform = Platform(var_dir)
    try:
        platform.start()
    except BaseException:
        platform.stop()
        shutil.rmtree(var_dir, ignore_errors=True)
        raise
    return platform, var_dir


# -- HTTP ------------------------------------------------------------------------------


class Api:
    """JSON over HTTP with bearer tokens, one login per person (re-done when expired)."""

    def __init__(self, platform: Platform):
        self.platform = platform
        self.http = httpx.Client(timeout=60)
        self.tokens: dict[str, str] = {}
        self.lock = threading.Lock()

    def token(self, email: str, fresh: bool = False) -> str:
        with self.lock:
            if fresh or email not in self.tokens:
                password = self.platform.passwords[email]
                self.tokens[email] = obtain_tokens(self.platform.url("auth"), email,
                                                   password)["access_token"]
            return self.tokens[email]

    def call(self, as_email: str, method: str, service: str, path: str, **kwargs):
        for fresh in (False, True):
            headers = {"Authorization": f"Bearer {self.token(as_email, fresh)}"}
            response = self.http.request(method, self.platform.url(service) + path,
                                         headers=headers, **kwargs)
            if response.status_code != 401:
                return response
        return response

    def pages(self, as_email: str, service: str, path: str, **params) -> list[dict]:
        items, cursor = [], None
        while True:
            query = dict(params) | ({"cursor": cursor} if cursor else {})
            response = self.call(as_email, "GET", service, path, params=query)
            assert response.status_code == 200, response.text
            body = response.json()
            items += body["items"]
            cursor = body["next"]
            if not cursor:
                return items


# -- the independent model ---------------------------------------------------------------


@dataclass
class Closing:
    day: date
    payouts: dict[str, int]  # account id -> amount paid


@dataclass
class Model:
    """What the platform must show, from the requests that succeeded alone."""

    admin: str = "admin@popug.inc"
    emails: dict[str, str] = field(default_factory=dict)  # account id -> email
    assignee: dict[str, str] = field(default_factory=dict)  # task id -> current assignee
    done: set[str] = field(default_factory=set)
    # ("fee"|"reward", task id, account id, period) in the order the requests succeeded.
    bookings: list[tuple[str, str, str, int]] = field(default_factory=list)
    # task id -> the billing period it was completed in (its day is that period's day:
    # a completion after a hand close of today belongs to tomorrow, as in accounting)
    completed_in: dict[str, int] = field(default_factory=dict)
    closings: list[Closing] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def period(self) -> int:
        return len(self.closings)

    def assigned(self, task_id: str, account_id: str) -> None:
        with self.lock:
            self.assignee[task_id] = account_id
            self.bookings.append(("fee", task_id, account_id, self.period))

    def completed(self, task_id: str, account_id: str) -> None:
        with self.lock:
            self.done.add(task_id)
            self.completed_in[task_id] = self.period
            self.bookings.append(("reward", task_id, account_id, self.period))

    def open_tasks(self) -> list[str]:
        return [t for t in self.assignee if t not in self.done]

    # What follows needs the prices accounting fixed (read back from its audit logs).

    def balances(self, prices: Prices) -> dict[str, int]:
        """Balances now: fees debited, rewards credited, positive ones zeroed at closings."""
        balance: dict[str, int] = defaultdict(int)
        for period in range(self.period + 1):
            for kind, task, account, at in self.bookings:
                if at == period:
                    balance[account] += prices.amount(kind, task)
            if period < self.period:
                for account, amount in self.closings[period].payouts.items():
                    balance[account] -= amount
        return dict(balance)

    def payouts_at_close(self, prices: Prices) -> dict[str, int]:
        """What closing the current period must pay: every positive balance."""
        return {a: b for a, b in self.balances(prices).items() if b > 0}

    def ledger_lines(self, prices: Prices) -> dict[str, Counter]:
        """Per account, the multiset of (type, task, amount) lines its audit log must hold."""
        lines: dict[str, Counter] = defaultdict(Counter)
        for kind, task, account, _ in self.bookings:
            lines[account][(kind, task, prices.amount(kind, task))] += 1
        for closing in self.closings:
            for account, amount in closing.payouts.items():
                lines[account][("payout", None, -amount)] += 1
        return lines

    def management(self, prices: Prices) -> dict[int, tuple[int, int]]:
        """Per period: (fees charged, rewards paid)."""
        result: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for kind, task, _, period in self.bookings:
            result[period][0 if kind == "fee" else 1] += prices.amount(kind, task) * (
                -1 if kind == "fee" else 1)
        return {p: (f, r) for p, (f, r) in result.items()}


@dataclass
class Prices:
    fee: dict[str, int]
    reward: dict[str, int]

    def amount(self, kind: str, task: str) -> int:
        """Signed, as seen from the popug's account."""
        return -self.fee[task] if kind == "fee" else self.reward[task]


# -- reading the platform ------------------------------------------------------------------


def audit_logs(api: Api, model: Model) -> dict[str, list[dict]]:
    accounts = api.pages(model.admin, "accounting", "/api/accounts", limit=500)
    return {a["id"]: api.pages(model.admin, "accounting", f"/api/accounts/{a['id']}/transactions",
                               limit=500) for a in accounts}


def prices_from(logs: dict[str, list[dict]]) -> Prices:
    """Fee and reward of each task as the audit logs show them; each must be one price."""
    fees: dict[str, set[int]] = defaultdict(set)
    rewards: dict[str, set[int]] = defaultdict(set)
    for lines in logs.values():
        for line in lines:
            if line["type"] == "fee":
                fees[line["task_id"]].add(-line["amount"])
            elif line["type"] == "reward":
                rewards[line["task_id"]].add(line["amount"])
    for task, seen in fees.items():
        assert len(seen) == 1, f"task {task} charged different fees {seen}"
        assert 1000 <= min(seen) <= 2000, seen
    for task, seen in rewards.items():
        assert len(seen) == 1, f"task {task} rewarded differently {seen}"
        assert 2000 <= min(seen) <= 4000, seen
    return Prices({t: s.pop() for t, s in fees.items()}, {t: s.pop() for t, s in rewards.items()})


def accounting_agrees(api: Api, model: Model) -> Prices:
    """Raises AssertionError until every balance and audit log matches the model."""
    logs = audit_logs(api, model)
    prices = prices_from(logs)
    missing = {t for _, t, _, _ in model.bookings} - set(prices.fee)
    assert not missing, f"{len(missing)} tasks not charged yet"
    missing = {t for kind, t, _, _ in model.bookings if kind == "reward"} - set(prices.reward)
    assert not missing, f"{len(missing)} completed tasks not rewarded yet"
    expected_lines = model.ledger_lines(prices)
    for account, lines in logs.items():
        got = Counter((ln["type"], ln["task_id"], ln["amount"]) for ln in lines)
        assert got == expected_lines.get(account, Counter()), f"audit log of {account}"
        # balance_after runs through the log (newest first) without a gap.
        for newer, older in zip(lines, lines[1:], strict=False):
            assert newer["balance_after"] == older["balance_after"] + newer["amount"]
    expected = model.balances(prices)
    listed = api.pages(model.admin, "accounting", "/api/accounts", limit=500)
    got_balances = {a["id"]: a["balance"] for a in listed}
    for account in set(expected) | set(got_balances):
        assert got_balances.get(account, 0) == expected.get(account, 0), f"balance of {account}"
    for account, lines in logs.items():
        if lines:
            assert lines[0]["balance_after"] == got_balances[account]
    return prices


def ledger_invariants(platform: Platform) -> dict[str, int]:
    """Double entry checked in accounting's own database."""
    db = platform.accounting_db
    (total,) = platform.sql(db, "SELECT coalesce(sum(amount), 0) FROM entries")[0]
    assert total == 0, f"entries sum to {total}"
    unbalanced = platform.sql(db, "SELECT transaction_id FROM entries GROUP BY transaction_id "
                                  "HAVING sum(amount) <> 0 LIMIT 5")
    assert unbalanced == [], f"transactions whose entries do not sum to zero: {unbalanced}"
    # Every popug's balance (the company's account keeps no balance row).
    wrong = platform.sql(db, """
        SELECT coalesce(b.account_id, e.account_id), b.balance, e.total FROM balances b
        FULL JOIN (SELECT account_id, sum(amount) AS total FROM entries GROUP BY account_id) e
          ON e.account_id = b.account_id
        WHERE coalesce(b.balance, 0) <> coalesce(e.total, 0)
          AND coalesce(b.account_id, e.account_id) <> :company LIMIT 5""",
        company=COMPANY_ACCOUNT_ID)
    assert wrong == [], f"balances that are not the sum of their entries: {wrong}"
    dupes = platform.sql(db, "SELECT source_event_id FROM transactions WHERE source_event_id "
                             "IS NOT NULL GROUP BY source_event_id HAVING count(*) > 1 LIMIT 5")
    assert dupes == [], f"events booked twice: {dupes}"
    counts = dict(platform.sql(db, "SELECT type, count(*) FROM transactions GROUP BY type"))
    return counts


def current_day(api: Api, model: Model) -> date:
    response = api.call(model.admin, "GET", "accounting", "/api/me/account")
    assert response.status_code == 200, response.text
    return date.fromisoformat(response.json()["day"])


def period_days(api: Api, model: Model) -> dict[int, date]:
    days = {i: c.day for i, c in enumerate(model.closings)}
    days[model.period] = current_day(api, model)
    return days


def reports_agree(api: Api, model: Model, prices: Prices) -> None:
    """Management report (accounting) and analytics figures against the model."""
    days = period_days(api, model)
    expected = {days[p]: v for p, v in model.management(prices).items()}
    first, last = min(days.values()).isoformat(), max(days.values()).isoformat()
    report = api.call(model.admin, "GET", "accounting", "/api/management/days",
                      params={"from": first, "to": last})
    assert report.status_code == 200, report.text
    by_day = {date.fromisoformat(d["day"]): d for d in report.json()["items"]}
    for day, (fees, rewards) in expected.items():
        got = by_day[day]
        assert (got["fees_charged"], got["rewards_paid"], got["earned"]) == (
            fees, rewards, fees - rewards), f"management report of {day}"
    analytics = api.call(model.admin, "GET", "analytics", "/api/analytics/days",
                         params={"from": first, "to": last})
    assert analytics.status_code == 200, analytics.text
    a_by_day = {date.fromisoformat(d["date"]): d for d in analytics.json()["items"]}
    for day, (fees, rewards) in expected.items():
        got = a_by_day[day]
        assert (got["fees"], got["rewards"], got["management_earned"]) == (
            fees, rewards, fees - rewards), f"analytics of {day}"
    summary = api.call(model.admin, "GET", "analytics", "/api/analytics/summary",
                       params={"date": days[model.period].isoformat()})
    assert summary.status_code == 200, summary.text
    negative = sum(1 for b in model.balances(prices).values() if b < 0)
    assert summary.json()["negative_balances"]["count"] == negative, "negative balances"
    completed_on = {task: days[period] for task, period in model.completed_in.items()}
    for day in set(completed_on.values()):
        best = max(prices.reward[t] for t, d in completed_on.items() if d == day)
        found = api.call(model.admin, "GET", "analytics", "/api/analytics/most-expensive-task",
                         params={"period": "day", "date": day.isoformat()})
        assert found.status_code == 200, found.text
        task = found.json()["task"]
        assert task is not None and task["reward"] == best, "most expensive task of the day"
        assert prices.reward[task["id"]] == best


def everything_agrees(api: Api, model: Model, platform: Platform,
                      timeout: float = CONVERGENCE_SECONDS) -> tuple[Prices, float]:
    """Waits until accounting and analytics agree with the model; returns the time taken."""
    started = time.monotonic()
    prices = wait_until(lambda: accounting_agrees(api, model), timeout, what="accounting")
    wait_until(lambda: reports_agree(api, model, prices) or True, timeout, what="reports")
    ledger_invariants(platform)
    return prices, time.monotonic() - started


# -- driving the platform --------------------------------------------------------------------


class Driver:
    """The requests of the scenario; each success is recorded in the model."""

    def __init__(self, api: Api, model: Model, platform: Platform):
        self.api, self.model, self.platform = api, model, platform

    def load_demo_accounts(self) -> None:
        """The provider's accounts, once the tasks and accounting replicas hold them all:
        they arrive there as events, and a task made before a worker did is refused."""
        accounts = self.api.pages(self.model.admin, "auth", "/api/accounts")
        for account in accounts:
            self.model.emails[account["id"]] = account["email"]

        def replicated() -> bool:
            return all(self.platform.sql(engine, "SELECT count(*) FROM accounts WHERE version > 0")
                       [0][0] >= len(accounts)
                       for engine in (self.platform.tasks_db, self.platform.accounting_db))

        wait_until(replicated, what="the demo accounts in every replica")

    def create_account(self, role: str = "worker") -> str:
        email = f"{role}-{uuid.uuid4().hex[:8]}@popug.test"
        response = self.api.call(self.model.admin, "POST", "auth", "/api/accounts", json={
            "email": email, "full_name": f"E2E {role.title()}", "role": role,
            "password": PASSWORD})
        assert response.status_code == 201, response.text
        self.platform.passwords[email] = PASSWORD
        account_id = response.json()["id"]
        self.model.emails[account_id] = email
        return account_id

    def create_task(self, n: int, jira: bool = True) -> dict:
        body = {"title": f"Clean cage number {n}", "description": f"Cage {n}, both perches"}
        if jira:
            body["jira_id"] = f"UBERPOP-{n}"
        response = self.api.call(self.model.admin, "POST", "tasks", "/api/tasks", json=body)
        assert response.status_code == 201, response.text
        task = response.json()
        self.model.assigned(task["id"], task["assignee_id"])
        return task

    def try_create_task(self, n: int) -> bool:
        """For traffic during faults: a failed request is fine, it must store nothing."""
        try:
            self.create_task(n)
            return True
        except (AssertionError, httpx.HTTPError):
            return False

    def complete(self, task_id: str) -> dict:
        account = self.model.assignee[task_id]
        response = self.api.call(self.model.emails[account], "POST", "tasks",
                                 f"/api/tasks/{task_id}/complete")
        assert response.status_code == 200, response.text
        task = response.json()
        self.model.completed(task_id, account)
        return task

    def try_complete(self, task_id: str) -> bool:
        try:
            self.complete(task_id)
            return True
        except (AssertionError, httpx.HTTPError):
            return False

    def new_popug_with_a_done_task(self, first_number: int) -> str:
        """A new popug who completes a task of theirs at once (a reward above its fee):
        they are owed money at the next close. Tasks are created until one is theirs."""
        popug = self.create_account()
        for n in range(first_number, first_number + 300):
            task = self.create_task(n)
            if task["assignee_id"] == popug:
                self.complete(task["id"])
                return popug
        raise AssertionError("no task was assigned to the new popug")

    def reshuffle(self, then=None) -> int:
        """Reshuffle, call ``then()`` at once (to inject a fault), then read the new
        assignees back from the task list."""
        response = self.api.call(self.model.admin, "POST", "tasks", "/api/tasks/reshuffle")
        assert response.status_code == 200, response.text
        if then is not None:
            then()
        reassigned = response.json()["reassigned"]
        open_tasks = self.api.pages(self.model.admin, "tasks", "/api/tasks", status="open",
                                    limit=200)
        assert len(open_tasks) == reassigned == len(self.model.open_tasks())
        for task in open_tasks:
            self.model.assigned(task["id"], task["assignee_id"])
        return reassigned

    def close_day(self, prices: Prices) -> Closing:
        """Close the current day by hand (the model must already agree with accounting)."""
        expected = self.model.payouts_at_close(prices)
        response = self.api.call(self.model.admin, "POST", "accounting",
                                 "/api/billing/close-day")
        assert response.status_code == 200, response.text
        (closed,) = response.json()["closed"]
        assert closed["accounts_paid"] == len(expected)
        assert closed["total_paid"] == sum(expected.values())
        closing = Closing(date.fromisoformat(closed["day"]), expected)
        with self.model.lock:
            self.model.closings.append(closing)
        return closing

    def tasks_match(self) -> None:
        """The tasks service holds exactly the tasks the model knows (no phantom writes)."""
        listed = self.api.pages(self.model.admin, "tasks", "/api/tasks", limit=200)
        assert {t["id"]: t["assignee_id"] for t in listed} == self.model.assignee
        assert {t["id"] for t in listed if t["status"] == "done"} == self.model.done


MONEY = re.compile(r"-?\$(\d+)\.(\d{2})")


def mail_amount(mail: dict) -> int:
    match = MONEY.search(mail["subject"])
    assert match, mail["subject"]
    return int(match.group(1)) * 100 + int(match.group(2))


def payout_mails_match(platform: Platform, model: Model, closing: Closing) -> list[dict]:
    """The sink holds exactly one mail per payout of ``closing``, with its amount."""
    mails = [m for m in platform.mails() if closing.day.isoformat() in m["subject"]]
    got = Counter((tuple(m["to"]) if isinstance(m["to"], list) else (m["to"],), mail_amount(m))
                  for m in mails)
    expected = Counter(((model.emails[a],), amount) for a, amount in closing.payouts.items())
    assert got == expected, f"mails {got} != expected {expected}"
    return mails


def unsent_outbox(platform: Platform, engine) -> int:
    return platform.sql(engine, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")[0][0]


def inbox_count(platform: Platform, engine, consumer: str) -> int:
    return platform.sql(engine, "SELECT count(*) FROM inbox WHERE consumer = :c", c=consumer)[0][0]


class Traffic:
    """Task creations and completions from a background thread until stopped."""

    def __init__(self, driver: Driver, first_number: int, complete_every: int = 3,
                 pause: float = 0.02):
        self.driver = driver
        self.number = first_number
        self.complete_every = complete_every
        self.pause = pause  # between two successful requests
        self.ok = self.failed = 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        self.thread.join(120)

    def _run(self) -> None:
        while not self.stop_event.is_set():
            self.number += 1
            created = self.driver.try_create_task(self.number)
            if created and self.number % self.complete_every == 0:
                task = list(self.driver.model.assignee)[-1]
                created = self.driver.try_complete(task)
            self.ok += created
            self.failed += not created
            self.stop_event.wait(self.pause if created else 0.2)


# -- the broker, seen from outside -----------------------------------------------------------


class EndOffsets:
    """The sum of the end offsets of some topics' partitions (messages ever written to
    them), read again on every call through one connection, to watch writes as they land."""

    def __init__(self, platform: Platform, logical_topics: list[str]):
        from confluent_kafka import Consumer, TopicPartition

        self.consumer = Consumer({"bootstrap.servers": platform.settings.kafka_bootstrap,
                                  "group.id": f"e2e-watch-{uuid.uuid4().hex[:8]}"})
        self.partitions = []
        for logical in logical_topics:
            topic = platform.settings.topic(logical)
            for partition in self.consumer.list_topics(topic, timeout=10).topics[
                    topic].partitions:
                self.partitions.append(TopicPartition(topic, partition))

    def total(self) -> int:
        return sum(self.consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1]
                   for tp in self.partitions)

    def close(self) -> None:
        self.consumer.close()


def published_ids(platform: Platform, logical_topics: list[str]) -> Counter:
    """How many times each event id is on the topics (read from the broker)."""
    import json

    from messaging.dlq import read_all

    seen: Counter = Counter()
    for logical in logical_topics:
        for message in read_all(platform.settings.kafka_bootstrap,
                                platform.settings.topic(logical)):
            seen[json.loads(message.value())["id"]] += 1
    return seen


def consumer_caught_up(platform: Platform, service: str) -> bool:
    """Whether ``service``'s consumer group has committed up to the end of every partition
    it reads (so every message on them so far has been handled)."""
    from messaging.groups import committed_offsets, consumer_group_of

    group, topics = consumer_group_of(service, platform.settings)
    offsets = committed_offsets(platform.settings, group, topics)
    # A partition the group never committed on (negative offset) must be empty. (Tansu may
    # report an end offset a little short of the last record's.)
    behind = {tp: (committed, end) for tp, (committed, end) in offsets.items()
              if committed < end and not (committed < 0 and end == 0)}
    assert not behind, f"{group} behind on (committed, end): {behind}"
    return True


def dead_letters(platform: Platform, logical_topic: str) -> list[dict]:
    import json

    return [json.loads(line) for line in platform.ates("dlq", "list", logical_topic).splitlines()
            if line.strip()]


ALL_TOPICS = ["accounts-stream", "accounts-lifecycle", "tasks-stream", "tasks-lifecycle",
              "accounting-lifecycle"]


def dead_letter_count(platform: Platform) -> int:
    """Dead letters on every topic's ``.dlq``, read as ``ates dlq list`` reads them."""
    from messaging.dlq import read_dead_letters

    settings = platform.settings
    return sum(len(read_dead_letters(settings, settings.dlq_topic(t))) for t in ALL_TOPICS)
