"""Retention: only delivered, old outbox rows and old inbox rows are pruned."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text, update

from deploy.cli import main
from messaging.retention import parse_age, prune_inbox, prune_outbox
from messaging.tables import inbox
from messaging.tables import outbox as outbox_table
from tests.messaging.conftest import account_event


def write_events(sessions, outbox_writer, count: int) -> list[str]:
    events = [account_event(f"{n:08d}-0000-4000-8000-000000000000") for n in range(count)]
    with sessions() as session, session.begin():
        outbox_writer.publish_many(session, events)
    return [event.id for event in events]


def age_rows(engine, table, column, ids, age: timedelta) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(table).where(table.c.event_id.in_(ids)).values({column: func.now() - age})
        )


def remaining(engine, table) -> set[str]:
    with engine.connect() as connection:
        return {str(i) for i in connection.scalars(select(table.c.event_id))}


def test_only_delivered_events_older_than_the_age_are_pruned(engine, sessions, outbox):
    old_sent, recent_sent, old_unsent = (write_events(sessions, outbox, 7) for _ in range(3))
    age_rows(engine, outbox_table, "sent_at", old_sent, timedelta(days=8))
    age_rows(engine, outbox_table, "sent_at", recent_sent, timedelta(hours=1))
    age_rows(engine, outbox_table, "created_at", old_unsent, timedelta(days=30))

    assert prune_outbox(engine, timedelta(days=7), batch=3) == 7
    assert remaining(engine, outbox_table) == set(recent_sent) | set(old_unsent)
    assert prune_outbox(engine, timedelta(days=7)) == 0


def test_inbox_records_older_than_the_age_are_pruned(engine):
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO inbox (consumer, event_id, event_type, handled_at) "
                "SELECT 'c', gen_random_uuid(), 'account.updated', now() - make_interval(days => n)"
                " + interval '1 hour'"
                " FROM generate_series(0, 9) AS n"
            )
        )
    assert prune_inbox(engine, timedelta(days=5), batch=2) == 4  # 6, 7, 8 and 9 days old
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(inbox)) == 6


@pytest.mark.parametrize(
    "text_age, expected",
    [("90s", timedelta(seconds=90)), ("15m", timedelta(minutes=15)),
     ("12h", timedelta(hours=12)), (" 7d ", timedelta(days=7))],
)
def test_ages(text_age, expected):
    assert parse_age(text_age) == expected


@pytest.mark.parametrize("bad", ["", "7", "7w", "-1d", "1.5h", "d"])
def test_bad_ages_are_refused(bad):
    with pytest.raises(ValueError, match="not an age"):
        parse_age(bad)


def test_ates_prune_deletes_what_it_reports(engine, sessions, outbox):
    old = write_events(sessions, outbox, 4)
    age_rows(engine, outbox_table, "sent_at", old, timedelta(days=2))
    url = engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(
        main,
        ["prune", "tasks", "--yes", "--outbox-older-than", "1d", "--inbox-older-than", "1d"],
        env={"ATES_TASKS_DATABASE_URL": url},
    )
    assert result.exit_code == 0, result.output
    assert result.output == "tasks: outbox 4, inbox 0 deleted\n"
    assert remaining(engine, outbox_table) == set()


def test_ates_prune_refuses_a_bad_age():
    result = CliRunner().invoke(main, ["prune", "--outbox-older-than", "soon"])
    assert result.exit_code == 2
    assert "not an age: 'soon'" in result.output


def test_inbox_pruning_goes_on_from_where_the_last_batch_stopped(engine):
    # Old and recent records interleaved: batches must neither skip an old record nor
    # read the table again from its start (a TID range scan, not a sequential one).
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO inbox (consumer, event_id, event_type, handled_at) "
            "SELECT 'c', gen_random_uuid(), 'account.updated',"
            " now() - make_interval(days => CASE WHEN n % 3 = 0 THEN 1 ELSE 30 END)"
            " FROM generate_series(1, 60) AS n"))
        plan = "\n".join(connection.execute(text(
            "EXPLAIN SELECT ctid FROM inbox WHERE ctid > CAST('(0,5)' AS tid)"
            " AND handled_at < now() - interval '7 days' ORDER BY ctid LIMIT 7")).scalars())
    assert "Tid Range Scan" in plan, plan
    assert prune_inbox(engine, timedelta(days=7), batch=7) == 40
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(inbox)) == 20
