"""Reversing a fee or reward from the dashboard, driven by a browser-like HTTP client."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import text

from auth_client.token_flow import hidden_inputs
from tests.accounting.conftest import count, price_of
from tests.accounting.support import book_task, feed_replica
from tests.auth.support import Browsers, People


@pytest.fixture
def dashboard(accounting_url, engine) -> str:
    return accounting_url


@pytest.fixture
def browsers() -> Iterator[Browsers]:
    with Browsers() as opened:
        yield opened


@pytest.fixture
def booked(sessions, live_books, people: People):
    feed_replica(sessions, people.worker, people.accountant)
    return book_task(sessions, live_books, people.worker, "Feed the parrots")


def _text(page: httpx.Response) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text)))


def _id_of(engine, transaction_type: str):
    with engine.connect() as connection:
        return connection.scalar(text("SELECT public_id FROM transactions WHERE type = :t"),
                                 {"t": transaction_type})


def test_an_accountant_reverses_a_fee_once_however_often_the_form_is_sent(
    dashboard, engine, browsers, people, booked
):
    fee, _ = price_of(engine, booked)
    fee_id = _id_of(engine, "fee")
    browser, _ = browsers.sign_in(dashboard, people.accountant, f"/accounts/{people.worker.id}")
    account = browser.get(f"{dashboard}/accounts/{people.worker.id}")
    assert f'href="/transactions/{fee_id}/reverse"' in account.text

    confirm = browser.get(f"{dashboard}/transactions/{fee_id}/reverse")
    form = hidden_inputs(confirm.text) | {"reason": "Wrong popug"}
    forged = browser.http.post(f"{dashboard}/transactions/{fee_id}/reverse",
                               data={"reason": "Wrong popug"})
    assert forged.status_code == 403 and count(engine, "transactions", "type = 'reversal'") == 0
    done = browser.follow(browser.http.post(f"{dashboard}/transactions/{fee_id}/reverse",
                                            data=form))
    twice = browser.follow(browser.http.post(f"{dashboard}/transactions/{fee_id}/reverse",
                                             data=form))

    assert "Reversed: the reversal is booked today." in _text(done)
    assert "Reversed: the reversal is booked today." in _text(twice)  # same key: same answer
    assert count(engine, "transactions", "type = 'reversal'") == 1
    page = _text(done)
    assert f"Reverses {fee_id} : Wrong popug" in page and "Reversed by" in page
    assert f'href="/transactions/{fee_id}/reverse"' not in done.text
    again = browser.get(f"{dashboard}/transactions/{fee_id}/reverse")
    assert "It is already reversed." in _text(again)


def test_without_a_reason_nothing_is_reversed(dashboard, engine, browsers, people, booked):
    fee_id = _id_of(engine, "fee")
    browser, _ = browsers.sign_in(dashboard, people.admin, f"/accounts/{people.worker.id}")
    form = hidden_inputs(browser.get(f"{dashboard}/transactions/{fee_id}/reverse").text)
    refused = browser.http.post(f"{dashboard}/transactions/{fee_id}/reverse",
                                data=form | {"reason": "  "})
    assert refused.status_code == 422 and "A reason is required." in _text(refused)
    assert count(engine, "transactions", "type = 'reversal'") == 0


def test_a_worker_can_neither_see_nor_use_the_reversal(dashboard, engine, browsers, people,
                                                       booked):
    fee_id = _id_of(engine, "fee")
    browser, mine = browsers.sign_in(dashboard, people.worker)
    assert "/reverse" not in mine.text
    assert browser.get(f"{dashboard}/transactions/{fee_id}/reverse").status_code == 403
    posted = browser.http.post(f"{dashboard}/transactions/{fee_id}/reverse",
                               data={"reason": "Mine"})
    assert posted.status_code == 403
    assert count(engine, "transactions", "type = 'reversal'") == 0
