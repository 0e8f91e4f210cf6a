"""Seeding the four databases in bulk for ``bench.scale``: users, tasks and a month of ledger.

Rows go straight into the tables the services use, with ``COPY``, in the state the events
would have left them in:

- auth: ``accounts`` (one in a hundred a manager, one in a hundred an accountant, the rest
  workers). Every seeded user has the same password, and one argon2id hash of it, computed
  once, is stored for all of them: hashing a million passwords would take hours and
  measure nothing the bench is about;
- tasks: the ``accounts`` replica (its triggers number the eligible assignees as the
  consumer's inserts would) and ``tasks``, created over the month, oldest first, half of
  them done;
- accounting: the ``accounts`` replica, ``balances`` (one per account), the ``tasks``
  replica and ``task_prices``, and the ledger: fees and rewards at the prices of their
  tasks, spread over ``days`` days (half the accounts also earned a reward today), and
  at the end of each past day a payout of every positive balance (``payouts``, their
  transactions, their mails already sent, and the ``billing_days`` closed). Every
  transaction has two entries summing to zero, ``balance_after`` runs on per account and
  each balance is the sum of its entries;
- analytics: ``tasks`` (title, prices, completion), ``daily_earnings``,
  ``account_day_nets`` and ``closed_days``, as the projection of those events.

Everything streams: rows are generated and copied a chunk of accounts (or tasks) at a
time, each chunk in its own transaction, so memory stays bounded at any size. Ids are
derived from row numbers (a bijection of the 128-bit integers, so they look random), which
lets the bench name any seeded user, task or cursor without reading it back.
"""

from __future__ import annotations

import random
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

import psycopg

from accounting.domain import COMPANY_ACCOUNT_ID
from accounting.verify import chain_hash

PASSWORD = "scale-bench-popug-password"
SERVICES = ("auth", "tasks", "accounting", "analytics")
CHUNK = 5_000
# The share of accounts that earned a reward today, so that closing today pays about as
# many accounts as a busy day would.
TODAY_EARNERS = 0.5
_MASK = 2**128 - 1
_MUL = 0x9E3779B97F4A7C15F39CC0605CEDC835  # odd: n -> n * _MUL is a bijection mod 2**128
ACCOUNT, TASK, TRANSACTION, EVENT, PAYOUT = range(1, 6)


def id_text(kind: int, number: int) -> str:
    """The id of the ``number``-th seeded row of ``kind``, random-looking and unique, as
    32 hex digits (which PostgreSQL reads as a uuid)."""
    return f"{((number * _MUL) ^ (kind << 120) ^ 0x5CA1E) & _MASK:032x}"


def derived_id(kind: int, number: int) -> uuid.UUID:
    return uuid.UUID(id_text(kind, number))


def role_of(user: int) -> str:
    return {1: "manager", 2: "accountant"}.get(user % 100, "worker")


def email_of(user: int) -> str:
    return f"scale-popug-{user}@popug.inc"


def fee_of(task: int) -> int:
    return 1000 + (task * 7919) % 1001


def reward_of(task: int) -> int:
    return 2000 + (task * 104729) % 2001


def is_done(task: int) -> bool:
    return (task * 2654435761) % 2**32 % 2 == 0


@dataclass(frozen=True)
class Plan:
    """What to seed: ``users`` users, ``tasks`` tasks and about ``transactions`` ledger
    transactions over the ``days`` days that end with ``today`` (all but today closed)."""

    users: int
    tasks: int
    transactions: int
    today: date
    zone: str = "UTC"
    days: int = 30
    seed: int = 1
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def for_users(cls, users: int, today: date, zone: str = "UTC", **changes) -> Plan:
        """A task per user and ten ledger transactions per user, as at a million users."""
        return cls(users=users, tasks=users, transactions=10 * users, today=today, zone=zone,
                   **changes)

    @property
    def first_day(self) -> date:
        return self.today - timedelta(days=self.days - 1)

    def day(self, index: int) -> date:
        return self.first_day + timedelta(days=index)

    @cached_property
    def day_texts(self) -> list[str]:
        return [self.day(index).isoformat() for index in range(self.days)]

    @cached_property
    def _spans(self) -> list[tuple[datetime, timedelta]]:
        """Each day's start (UTC) and length (today's: up to now)."""
        zone = ZoneInfo(self.zone)
        spans = []
        for index in range(self.days):
            start = datetime.combine(self.day(index), time(), zone).astimezone(UTC)
            end = (datetime.combine(self.day(index) + timedelta(days=1), time(), zone)
                   .astimezone(UTC))
            if index == self.days - 1:
                end = min(end, self.now - timedelta(seconds=1))
            spans.append((start, end - start))
        return spans

    def moment(self, index: int, fraction: float) -> datetime:
        """A moment ``fraction`` of the way through day ``index`` (today: up to now)."""
        start, length = self._spans[index]
        return start + length * fraction

    def closed_at(self, index: int) -> datetime:
        """When past day ``index`` was closed: five minutes into the next day."""
        zone = ZoneInfo(self.zone)
        return (datetime.combine(self.day(index + 1), time(0, 5), zone).astimezone(UTC))

    def local_day(self, moment: datetime) -> date:
        return moment.astimezone(ZoneInfo(self.zone)).date()

    def eligible(self, rng: random.Random) -> int:
        """A uniformly random user that can be given tasks (managers cannot)."""
        user = rng.randrange(self.users)
        while role_of(user) == "manager":
            user = (user + 1) % self.users
        return user

    def manager(self, rng: random.Random) -> int:
        return min(self.users - 1, 100 * rng.randrange(max(1, (self.users - 2) // 100 + 1)) + 1)


@dataclass
class Seeded:
    """What was seeded (the totals the bench and the tests check)."""

    users: int = 0
    tasks: int = 0
    open_tasks: int = 0
    transactions: int = 0
    payouts: int = 0
    fees: list[int] = field(default_factory=list)
    rewards: list[int] = field(default_factory=list)
    paid_accounts: list[int] = field(default_factory=list)
    paid_total: list[int] = field(default_factory=list)
    negative_changes: list[int] = field(default_factory=list)
    negative: int = 0


def dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


# -- text COPY --------------------------------------------------------------------------------


NULL = "\\N"
COMPANY = COMPANY_ACCOUNT_ID.hex


def _text(value) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


class Copier:
    """Rows buffered per table and written with one ``COPY`` per table and flush."""

    def __init__(self, conn: psycopg.Connection, table: str, columns: tuple[str, ...]):
        self.conn = conn
        self.statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        self.lines: list[str] = []

    def add(self, *values) -> None:
        self.lines.append("\t".join(map(_text, values)) + "\n")

    def flush(self) -> None:
        if not self.lines:
            return
        with self.conn.cursor() as cursor, cursor.copy(self.statement) as copy:
            copy.write("".join(self.lines))
        self.lines = []


def _connect(url: str) -> psycopg.Connection:
    conn = psycopg.connect(dsn(url))
    conn.execute("SET synchronous_commit = off")
    return conn


# -- the seeding ------------------------------------------------------------------------------


def password_hash() -> str:
    """The argon2id hash of ``PASSWORD`` with auth's own parameters, computed once."""
    from auth.config import PasswordHashing
    from auth.passwords import Passwords

    return Passwords(PasswordHashing()).hash(PASSWORD)


def seed(urls: dict[str, str], plan: Plan, progress: bool = True,
         hashed: str | None = None) -> Seeded:
    """Seed the four databases (``urls`` by service, already migrated) after ``plan``."""
    from tqdm import tqdm

    seeded = Seeded(fees=[0] * plan.days, rewards=[0] * plan.days,
                    paid_accounts=[0] * plan.days, paid_total=[0] * plan.days,
                    negative_changes=[0] * plan.days)
    hashed = hashed or password_hash()
    with ExitStack() as stack:
        conns = {s: stack.enter_context(_connect(urls[s])) for s in SERVICES}
        first_id = _next_transaction_id(conns["accounting"])
        bar = stack.enter_context(tqdm(total=plan.users + plan.tasks, unit="row",
                                       desc=f"seeding {plan.users:,} users", disable=not progress,
                                       mininterval=2.0))
        for start in range(0, plan.tasks, CHUNK):
            _seed_tasks(conns, plan, range(start, min(plan.tasks, start + CHUNK)), seeded)
            bar.update(min(CHUNK, plan.tasks - start))
        next_id = first_id
        for start in range(0, plan.users, CHUNK):
            next_id = _seed_users(conns, plan, range(start, min(plan.users, start + CHUNK)),
                                  hashed, next_id, seeded)
            bar.update(min(CHUNK, plan.users - start))
        _seed_days(conns, plan, seeded)
        conns["accounting"].execute(
            "SELECT setval(pg_get_serial_sequence('transactions', 'id'), %s)",
            (max(next_id - 1, 1),))
        for conn in conns.values():
            conn.commit()
    for service in SERVICES:
        with psycopg.connect(dsn(urls[service]), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
    return seeded


def _next_transaction_id(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT coalesce(max(id), 0) + 1 FROM transactions").fetchone()[0]


def _seed_tasks(conns: dict[str, psycopg.Connection], plan: Plan, numbers: range,
                seeded: Seeded) -> None:
    rng = random.Random(plan.seed * 7_919 + numbers.start)
    tasks = Copier(conns["tasks"], "tasks", (
        "public_id", "title", "jira_id", "description", "status", "assignee_id", "created_by",
        "created_at", "completed_at", "version"))
    replica = Copier(conns["accounting"], "tasks", (
        "public_id", "title", "jira_id", "description", "assignee_id", "status", "version",
        "updated_at"))
    prices = Copier(conns["accounting"], "task_prices", ("task_id", "fee", "reward",
                                                         "priced_at"))
    projected = Copier(conns["analytics"], "tasks", (
        "task_id", "title", "jira_id", "version", "fee", "reward", "completed_at",
        "completed_day"))
    for number in numbers:
        task_id = id_text(TASK, number)
        day = number * plan.days // max(1, plan.tasks)
        fraction = (number * plan.days / max(1, plan.tasks)) - day
        created_at = plan.moment(day, fraction * 0.9)
        done = is_done(number)
        completed_at = plan.moment(day, fraction * 0.9 + 0.05) if done else None
        status, version = ("done", 2) if done else ("open", 1)
        title, jira_id = f"Seeded task {number}", f"SCALE-{number}"
        assignee = id_text(ACCOUNT, plan.eligible(rng))
        creator = id_text(ACCOUNT, plan.manager(rng))
        tasks.add(task_id, title, jira_id, None, status, assignee, creator, created_at,
                  completed_at, version)
        replica.add(task_id, title, jira_id, None, assignee, status, version,
                    completed_at or created_at)
        prices.add(task_id, fee_of(number), reward_of(number), created_at)
        projected.add(task_id, title, jira_id, version, fee_of(number), reward_of(number),
                      completed_at, plan.local_day(completed_at) if completed_at else None)
        seeded.tasks += 1
        seeded.open_tasks += not done
    for copier in (tasks, replica, prices, projected):
        copier.flush()
    for conn in conns.values():
        conn.commit()


def _seed_users(conns: dict[str, psycopg.Connection], plan: Plan, numbers: range, hashed: str,
                next_id: int, seeded: Seeded) -> int:
    rng = random.Random(plan.seed * 104_729 + numbers.start)
    auth = Copier(conns["auth"], "accounts", (
        "public_id", "email", "full_name", "role", "active", "password_hash", "version",
        "created_at", "updated_at"))
    replica_columns = ("public_id", "email", "full_name", "role", "active", "deleted",
                       "version", "role_version", "updated_at")
    tasks_replica = Copier(conns["tasks"], "accounts", replica_columns)
    accounting_replica = Copier(conns["accounting"], "accounts", replica_columns)
    balances = Copier(conns["accounting"], "balances", ("account_id", "balance"))
    ledger = Ledger(conns["accounting"], conns["analytics"], plan, next_id, seeded)
    joined = plan.moment(0, 0.0) - timedelta(days=1)
    charges = max(1, round(plan.transactions / max(1, plan.users) * 0.75))
    for number in numbers:
        account_id = id_text(ACCOUNT, number)
        role, email = role_of(number), email_of(number)
        name = f"Popug {number}"
        auth.add(account_id, email, name, role, True, hashed, 1, joined, joined)
        for replica in (tasks_replica, accounting_replica):
            replica.add(account_id, email, name, role, True, False, 1, 1, joined)
        balance = 0
        if role != "manager":
            balance = ledger.account(account_id, number, rng, rng.randint(1, 2 * charges - 1))
        balances.add(account_id, balance)
        seeded.users += 1
    for copier in (auth, tasks_replica, accounting_replica, balances):
        copier.flush()
    ledger.flush()
    for conn in conns.values():
        conn.commit()
    return ledger.next_id


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _chained_text(public_id: str, kind: str, account_id: str, task_id: str, day: str,
                  amount: int, balance_after: int, at: str, source_event_id: str) -> str:
    """What the ledger's chain hashes of a transaction (``ledger_transaction_text``)."""
    def uuid_text(value: str) -> str:
        return "" if value == NULL else str(uuid.UUID(value))

    micros = (datetime.fromisoformat(at) - _EPOCH) // timedelta(microseconds=1)
    return "|".join((uuid_text(public_id), kind, uuid_text(account_id), uuid_text(task_id),
                     day, str(amount), str(balance_after), str(micros),
                     uuid_text(source_event_id)))


class Ledger:
    """Writes an account's month of fees, rewards and payouts, and their projection."""

    def __init__(self, accounting: psycopg.Connection, analytics: psycopg.Connection,
                 plan: Plan, next_id: int, seeded: Seeded):
        self.plan = plan
        self.next_id = next_id
        self.seeded = seeded
        self.transactions = Copier(accounting, "transactions", (
            "id", "public_id", "type", "account_id", "task_id", "day", "amount",
            "balance_after", "created_at", "source_event_id", "hash"))
        # The hash chain goes on from the newest transaction already stored.
        last = accounting.execute(
            "SELECT hash FROM transactions ORDER BY id DESC LIMIT 1").fetchone()
        self.previous_hash = bytes(last[0]) if last else None
        self.entries = Copier(accounting, "entries", ("transaction_id", "account_id", "amount"))
        self.payouts = Copier(accounting, "payouts", (
            "id", "public_id", "account_id", "day", "amount", "transaction_id", "created_at"))
        self.mails = Copier(accounting, "payout_emails", (
            "payout_id", "recipient", "attempts", "next_attempt_at", "sent_at"))
        self.nets = Copier(analytics, "account_day_nets", ("account_id", "day", "net"))
        self.closed_at = [plan.closed_at(d).isoformat() for d in range(plan.days - 1)]
        # The analytics balances, when its schema keeps them beside the nets.
        self.balances = (Copier(analytics, "account_balances", ("account_id", "balance"))
                         if _has_table(analytics, "account_balances") else None)
        self.sent_at = [(plan.closed_at(d) + timedelta(minutes=1)).isoformat()
                        for d in range(plan.days - 1)]

    def account(self, account_id: uuid.UUID, number: int, rng: random.Random,
                charges: int) -> int:
        """Books ``charges`` fees and rewards over the month; returns the final balance."""
        plan = self.plan
        moments = [(rng.randrange(plan.days), rng.random(), False) for _ in range(charges)]
        if rng.random() < TODAY_EARNERS:
            moments.append((plan.days - 1, rng.random(), True))
        moments.sort()
        balance = 0
        nets: dict[int, int] = {}
        for position, (day, fraction, earned) in enumerate(moments):
            task = rng.randrange(max(1, plan.tasks))
            if earned and not is_done(task):
                task = (task + 1) % plan.tasks
            if is_done(task) and (earned or rng.random() < 0.5):
                kind, amount = "reward", reward_of(task)
                self.seeded.rewards[day] += amount
            else:
                kind, amount = "fee", -fee_of(task)
                self.seeded.fees[day] += -amount
            balance += amount
            nets[day] = nets.get(day, 0) + amount
            self._book(kind, account_id, id_text(TASK, task), day, amount, balance,
                       plan.moment(day, fraction * 0.98).isoformat(),
                       id_text(EVENT, self.next_id))
            ends_day = position + 1 == len(moments) or moments[position + 1][0] != day
            if ends_day and day < plan.days - 1 and balance > 0:
                paid = balance
                balance = 0
                nets[day] -= paid
                closed_at = self.closed_at[day]
                transaction_id = self._book("payout", account_id, NULL, day, -paid, 0,
                                            closed_at, NULL)
                self.payouts.lines.append(
                    f"{transaction_id}\t{id_text(PAYOUT, transaction_id)}\t{account_id}\t"
                    f"{plan.day_texts[day]}\t{paid}\t{transaction_id}\t{closed_at}\n")
                self.mails.lines.append(f"{transaction_id}\t{email_of(number)}\t1\t"
                                        f"{closed_at}\t{self.sent_at[day]}\n")
                self.seeded.payouts += 1
                self.seeded.paid_accounts[day] += 1
                self.seeded.paid_total[day] += paid
        closing = 0
        for day, net in sorted(nets.items()):
            self.nets.lines.append(f"{account_id}\t{plan.day_texts[day]}\t{net}\n")
            closing += net
            # +1 on the day the closing balance drops below zero, -1 on the day it stops.
            self.seeded.negative_changes[day] += (
                (closing < 0 <= closing - net) - (closing - net < 0 <= closing))
        if nets and self.balances is not None:
            self.balances.lines.append(f"{account_id}\t{closing}\n")
            self.seeded.negative += closing < 0
        if len(self.transactions.lines) > 4 * CHUNK:
            self.flush()
        return balance

    def _book(self, kind: str, account_id: str, task_id: str, day: int, amount: int,
              balance_after: int, at: str, source_event_id: str) -> int:
        """One transaction and its two entries (ids as text, ``NULL`` for none)."""
        transaction_id = self.next_id
        self.next_id += 1
        public_id = id_text(TRANSACTION, transaction_id)
        row = (public_id, kind, account_id, task_id, self.plan.day_texts[day], amount,
               balance_after, at, source_event_id)
        self.previous_hash = chain_hash(self.previous_hash, _chained_text(*row))
        self.transactions.lines.append(
            f"{transaction_id}\t{public_id}\t{kind}\t{account_id}\t"
            f"{task_id}\t{self.plan.day_texts[day]}\t{amount}\t{balance_after}\t{at}\t"
            f"{source_event_id}\t\\\\x{self.previous_hash.hex()}\n")
        self.entries.lines.append(f"{transaction_id}\t{account_id}\t{amount}\n"
                                  f"{transaction_id}\t{COMPANY}\t{-amount}\n")
        self.seeded.transactions += 1
        return transaction_id

    def flush(self) -> None:
        # Entries after their transactions, each transaction's two legs in one COPY.
        for copier in (self.transactions, self.entries, self.payouts, self.mails, self.nets,
                       self.balances):
            if copier is not None:
                copier.flush()


def _seed_days(conns: dict[str, psycopg.Connection], plan: Plan, seeded: Seeded) -> None:
    billing = Copier(conns["accounting"], "billing_days", (
        "day", "closed_at", "accounts_paid", "total_paid"))
    closed = Copier(conns["analytics"], "closed_days", (
        "day", "closed_at", "accounts_paid", "total_paid"))
    earnings = Copier(conns["analytics"], "daily_earnings", ("day", "fees", "rewards"))
    for index in range(plan.days):
        if index < plan.days - 1:
            for copier in (billing, closed):
                copier.add(plan.day(index), plan.closed_at(index), seeded.paid_accounts[index],
                           seeded.paid_total[index])
        if seeded.fees[index] or seeded.rewards[index]:
            earnings.add(plan.day(index), seeded.fees[index], seeded.rewards[index])
    copiers = [billing, closed, earnings]
    if _has_table(conns["accounting"], "day_totals"):
        # Management's totals per day, which the booking statement keeps as it books.
        totals = Copier(conns["accounting"], "day_totals", (
            "day", "shard", "fees_charged", "rewards_paid"))
        for index in range(plan.days):
            if seeded.fees[index] or seeded.rewards[index]:
                totals.add(plan.day(index), 0, seeded.fees[index], seeded.rewards[index])
        copiers.append(totals)
    analytics = conns["analytics"]
    if _has_table(analytics, "negative_count_changes"):
        # What the analytics projector keeps beside its balances: how many are negative,
        # and by how much that number changed each day.
        changes = Copier(analytics, "negative_count_changes", ("day", "change"))
        for index in range(plan.days):
            if seeded.negative_changes[index]:
                changes.add(plan.day(index), seeded.negative_changes[index])
        analytics.execute(
            "INSERT INTO negative_balance_counts (shard, negative) VALUES (0, %s)"
            " ON CONFLICT (shard) DO UPDATE"
            " SET negative = negative_balance_counts.negative + EXCLUDED.negative",
            (seeded.negative,))
        copiers.append(changes)
    for copier in copiers:
        copier.flush()


def _has_table(conn: psycopg.Connection, table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]
