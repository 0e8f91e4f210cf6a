"""The sign-in burst of ``bench.signin``: real sign-ins, each person from an address of its
own, and the figures it reports."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from auth.models import Account, SignInRecord
from bench.signin import HashCost, burst, cpu_report, percentile, report
from tests.auth.support import running_provider


@pytest.fixture(scope="module")
def provider(postgres_server, kafka_broker):
    with running_provider(postgres_server.url, kafka_broker.bootstrap) as running:
        yield running


def test_everyone_signs_in_through_to_a_token_each_from_an_address_of_its_own(provider):
    logins = [provider.create_login() for _ in range(4)]
    # A thread of its own: the browser tests leave an event loop running in this one.
    with ThreadPoolExecutor(1) as thread:
        seconds = thread.submit(asyncio.run, burst(provider.url, [
            (login.email, login.password) for login in logins])).result()
    assert len(seconds) == 4 and all(s > 0 for s in seconds)
    with provider.engine.connect() as connection:
        addresses = connection.execute(
            select(Account.email, SignInRecord.address, SignInRecord.outcome)
            .join(Account, Account.id == SignInRecord.account_id)
            .where(Account.email.in_([login.email for login in logins]))).all()
    assert sorted(addresses) == sorted(
        (login.email, f"127.0.0.{2 + n}", "signed_in") for n, login in enumerate(logins))


def test_percentiles_are_nearest_rank():
    seconds = [float(n) for n in range(20, 0, -1)]
    assert percentile(seconds, 0.50) == 10.0
    assert percentile(seconds, 0.95) == 19.0
    assert percentile([3.0], 0.95) == 3.0


def test_the_baseline_is_the_bursts_hashing_spread_over_the_cores():
    p50, p95 = report([[0.5, 1.0, 1.5, 2.0]], HashCost(wall=0.04, cpu=0.04), users=50, cores=2)
    assert p50.baseline == pytest.approx(1.0) and p95.baseline == pytest.approx(1.0)
    assert (p50.value, p95.value) == (1.0, 2.0)
    assert p50.ratio == pytest.approx(1.0)


def test_the_cpu_per_sign_in_is_set_beside_one_hash_whole_and_outside_the_hash():
    whole, outside = cpu_report(0.120, HashCost(wall=0.05, cpu=0.040))

    assert (whole.value, whole.baseline) == (pytest.approx(120.0), pytest.approx(40.0))
    assert (outside.value, outside.baseline) == (pytest.approx(80.0), pytest.approx(40.0))
    assert whole.ratio == pytest.approx(3.0) and outside.ratio == pytest.approx(2.0)
