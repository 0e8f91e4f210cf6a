"""The tamper-evident ledger: hash-chained transactions and ``ates accounting verify``."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from click.testing import CliRunner
from sqlalchemy import text

from accounting import metrics
from accounting.service import AccountingService
from accounting.verify import CONTENTS, chain_hash, verify
from deploy.cli import main
from tests.accounting.conftest import (
    DAY,
    add_account,
    assign,
    complete,
    count,
    moment,
    new_id,
)


def _now() -> datetime:
    return datetime.now(UTC)


def _ledger_with_every_kind(sessions, books, clock):
    clock.set(moment(DAY))
    worker, other = add_account(sessions), add_account(sessions)
    for account in (worker, other):
        task = new_id()
        assign(sessions, books, task, account)
        complete(sessions, books, task, account)
    assign(sessions, books, new_id(), other)
    AccountingService(sessions, books).close_day(DAY)
    clock.set(moment(DAY, 15).replace(day=DAY.day + 1))
    assign(sessions, books, new_id(), worker)
    fee = _first(engine_of(sessions), "fee", worker)
    AccountingService(sessions, books).reverse(fee, "Wrong popug", "someone")
    AccountingService(sessions, books).adjust(other, -250, "Lost cage key", "someone")
    return worker, other


def engine_of(sessions):
    return sessions.kw["bind"]


def _first(engine, transaction_type, account):
    with engine.connect() as connection:
        return connection.scalar(text(
            "SELECT public_id FROM transactions WHERE type = :t AND account_id = :a ORDER BY id"
        ), {"t": transaction_type, "a": account})


def _behind_the_ledgers_back(engine, *statements: str, **values) -> None:
    """Statements run with the triggers off, as someone with the database's password could."""
    with engine.begin() as connection:
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        for statement in statements:
            connection.execute(text(statement), values)


def _verify_command(url: str):
    return CliRunner().invoke(
        main, ["accounting", "verify"], env={"ATES_ACCOUNTING_DATABASE_URL": url}
    )


def test_every_transaction_is_chained_to_the_one_before(sessions, engine, books, clock):
    _ledger_with_every_kind(sessions, books, clock)
    with engine.connect() as connection:
        rows = connection.execute(text(
            f"SELECT hash, {CONTENTS} FROM transactions ORDER BY id"
        )).all()
    previous = None
    for stored, contents in rows:
        assert bytes(stored) == chain_hash(previous, contents)
        previous = bytes(stored)
    assert {len(bytes(stored)) for stored, _ in rows} == {32}
    assert len(rows) == count(engine, "transactions") >= 9
    assert count(engine, "transactions", "type IN ('reversal', 'adjustment')") == 2
    assert count(engine, "transactions", "type = 'payout'") >= 1


def test_verify_says_an_untouched_ledger_holds(sessions, engine, books, clock,
                                               accounting_database_url):
    _ledger_with_every_kind(sessions, books, clock)

    result = _verify_command(accounting_database_url)

    assert result.exit_code == 0, result.output
    transactions = count(engine, "transactions")
    assert f"the ledger holds: {transactions} transaction(s)" in result.output
    assert metrics.ledger_holds(sessions) == 1


def test_verify_finds_a_transaction_edited_behind_the_ledgers_back(
    sessions, engine, books, clock, accounting_database_url
):
    _ledger_with_every_kind(sessions, books, clock)
    assert metrics.ledger_holds(sessions) == -1
    with engine.connect() as connection:
        edited, public_id, amount = connection.execute(text(
            "SELECT id, public_id, amount FROM transactions WHERE type = 'fee' ORDER BY id"
            " LIMIT 1 OFFSET 1"
        )).one()
    # a cheaper fee, with its legs and balance made to match: only the chain can tell
    cheaper = (
        "UPDATE transactions SET amount = amount + :delta, balance_after = balance_after"
        " + :delta WHERE id = :id",
        "UPDATE entries SET amount = amount + CASE WHEN account_id ="
        " '00000000-0000-0000-0000-000000000000' THEN -:delta ELSE :delta END"
        " WHERE transaction_id = :id",
    )
    _behind_the_ledgers_back(engine, *cheaper, delta=500, id=edited)
    try:
        result = _verify_command(accounting_database_url)
        assert result.exit_code == 1
        first = result.stderr.splitlines()[0]
        assert "hash chain is broken" in first and str(public_id) in first
        assert metrics.ledger_holds(sessions) == 0
        assert metrics.ledger_verified_at(sessions) > 0
    finally:
        _behind_the_ledgers_back(engine, *cheaper, delta=-500, id=edited)
    assert verify(engine, _now).holds


def test_verify_names_a_broken_invariant(sessions, engine, books, clock):
    worker, _ = _ledger_with_every_kind(sessions, books, clock)
    _behind_the_ledgers_back(
        engine, "UPDATE balances SET balance = balance + 1 WHERE account_id = :a", a=worker
    )
    try:
        result = verify(engine, _now)
        assert [str(b) for b in result.breaks] == [
            f"a balance differs from the sum of its entries: {worker}"
        ]
    finally:
        _behind_the_ledgers_back(
            engine, "UPDATE balances SET balance = balance - 1 WHERE account_id = :a", a=worker
        )


def test_verify_finds_the_newest_transactions_removed_since_it_last_ran(
    sessions, engine, books, clock
):
    worker, _ = _ledger_with_every_kind(sessions, books, clock)
    # well above zero: removing a reward behind the ledger's back crosses no zero
    AccountingService(sessions, books).adjust(worker, 100_000, "Float", "someone")
    task = new_id()
    assign(sessions, books, task, worker)
    [reward] = complete(sessions, books, task, worker)
    assert verify(engine, _now).holds
    with engine.connect() as connection:
        newest = connection.scalar(text("SELECT max(id) FROM transactions"))
        snapshot = connection.execute(text("SELECT * FROM transactions WHERE id = :i"),
                                      {"i": newest}).mappings().one()
    removal = (
        "DELETE FROM entries WHERE transaction_id = :id",
        "DELETE FROM transactions WHERE id = :id",
        "UPDATE balances SET balance = balance - :amount WHERE account_id = :account",
        "UPDATE day_totals SET rewards_paid = rewards_paid - :amount"
        " WHERE (day, shard) IN (SELECT day, shard FROM day_totals WHERE day = :day"
        " AND rewards_paid >= :amount LIMIT 1)",
    )
    _behind_the_ledgers_back(engine, *removal, id=newest, amount=reward.amount,
                             account=worker, day=reward.day)
    try:
        result = verify(engine, _now)
        assert [b.check for b in result.breaks] == [
            "a transaction verified before is gone or changed"
        ]
        assert f"#{newest}" in result.breaks[0].where
    finally:
        columns = ", ".join(snapshot)
        values = ", ".join(f":{name}" for name in snapshot)
        _behind_the_ledgers_back(
            engine,
            f"INSERT INTO transactions ({columns}) VALUES ({values})",
            "INSERT INTO entries VALUES (:id, :account_id, :amount),"
            " (:id, '00000000-0000-0000-0000-000000000000', -:amount)",
            "UPDATE balances SET balance = balance + :amount WHERE account_id = :account_id",
            "UPDATE day_totals SET rewards_paid = rewards_paid + :amount"
            " WHERE (day, shard) IN (SELECT day, shard FROM day_totals WHERE day = :day LIMIT 1)",
            **snapshot,
        )


def test_writers_racing_each_other_keep_one_chain(sessions, engine, books):
    accounts = [add_account(sessions) for _ in range(4)]
    start = threading.Barrier(len(accounts))
    failures: list[BaseException] = []

    def book(account):
        try:
            start.wait()
            for _ in range(10):
                assign(sessions, books, new_id(), account)
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)

    threads = [threading.Thread(target=book, args=(account,)) for account in accounts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    result = verify(engine, _now)
    assert result.holds and result.transactions == 40


def test_the_contents_hashed_are_computed_inline_not_by_a_call_per_row(engine):
    with engine.connect() as connection:
        plan = "\n".join(connection.execute(text(
            f"EXPLAIN (VERBOSE) SELECT {CONTENTS} FROM transactions"
        )).scalars())
    assert "concat_ws" in plan
    assert "ledger_transaction_text" not in plan and "ledger_correction_text" not in plan
