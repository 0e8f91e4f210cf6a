"""Arrays bound as one literal reach PostgreSQL exactly as the Python values."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from platform_kit.db import array_literal

TRICKY = ["plain", "", "with,comma", 'a "quoted" word', "back\\slash", "{braces}", "NULL",
          " spaced ", "ünïcödé", "new\nline", None]


def test_text_values_round_trip(engine):
    with engine.connect() as connection:
        back = connection.scalar(text("SELECT CAST(:a AS text[])"), {"a": array_literal(TRICKY)})
    assert back == TRICKY


def test_ids_and_numbers_cast_to_their_types(engine):
    ids, numbers = [uuid.uuid4() for _ in range(3)], [1, 2**40, -7]
    with engine.connect() as connection:
        got_ids = connection.scalar(text("SELECT CAST(:a AS uuid[])"), {"a": array_literal(ids)})
        got_numbers = connection.scalar(
            text("SELECT CAST(:a AS bigint[])"), {"a": array_literal(numbers)}
        )
    assert [uuid.UUID(str(i)) for i in got_ids] == ids
    assert got_numbers == numbers


def test_an_empty_list_is_an_empty_array(engine):
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT CAST(:a AS int[])"), {"a": array_literal([])}) == []
