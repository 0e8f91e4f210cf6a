import uuid
from datetime import date

import pytest

from platform_kit.cursor import (
    CursorCodec,
    InvalidCursor,
    decode_day,
    decode_id,
    decode_text,
    encode_day,
    encode_id,
    encode_text,
)


def test_an_id_cursor_round_trips_and_is_url_safe():
    some_id = uuid.UUID("fb6f9ffe-2b37-4a30-9f0e-ffffffffffff")
    token = encode_id(some_id)
    assert decode_id(token) == some_id
    assert "=" not in token and "+" not in token and "/" not in token


def test_a_composite_cursor_keeps_its_order_and_signs():
    codec = CursorCodec("qu")
    account = uuid.uuid4()
    assert codec.decode(codec.encode(-1500, account)) == (-1500, account)


@pytest.mark.parametrize("token", ["", "not base64!", "AAAA", encode_id(uuid.uuid4()) + "AA"])
def test_a_foreign_token_is_an_invalid_cursor(token):
    with pytest.raises(InvalidCursor):
        decode_id(token)


def test_a_cursor_of_another_layout_is_refused():
    with pytest.raises(InvalidCursor):
        CursorCodec("qu").decode(encode_id(uuid.uuid4()))


def test_day_cursors_round_trip_and_refuse_nonsense():
    assert decode_day(encode_day(date(2026, 2, 28))) == date(2026, 2, 28)
    with pytest.raises(InvalidCursor):
        decode_day("2026-02-30")


def test_a_codec_refuses_an_unknown_field_kind():
    with pytest.raises(ValueError):
        CursorCodec("us")


def test_text_cursors_round_trip_and_refuse_what_is_not_text():
    assert decode_text(encode_text("zoë@example.com")) == "zoë@example.com"
    for token in ("!!", "_w"):
        with pytest.raises(InvalidCursor):
            decode_text(token)
