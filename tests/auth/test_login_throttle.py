"""Throttling of failed sign-ins, on the HTTP server ``ates serve`` runs.

Failures count per (account, client address), per address, and account-wide with a ceiling
high enough that locking somebody out takes many addresses. The client address is the TCP
peer unless that peer is a configured proxy.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from auth.config import LoginThrottling
from auth_client.token_flow import hidden_inputs
from tests.auth.support import RunningProvider, running_provider, served_as_deployed

WRONG = "wrong password!"
PAIR_LIMIT = LoginThrottling().per_account_and_address
BEHIND_PROXY = {"ATES_TRUSTED_PROXIES": "127.0.0.1"}


class LoginForm:
    """The provider's login form, loaded by a browser of its own and ready to submit."""

    def __init__(self, provider: RunningProvider, forwarded_for: str | None = None):
        self.http = httpx.Client(base_url=provider.url, timeout=60.0)
        self.headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        page = self.http.get("/login", headers=self.headers)
        self.csrf_token = hidden_inputs(page.text)["csrf_token"]

    def submit(self, email: str, password: str) -> int:
        form = {"csrf_token": self.csrf_token, "next": "/", "email": email,
                "password": password}
        status = self.http.post("/login", data=form, headers=self.headers).status_code
        self.http.close()
        return status


def attempt(provider: RunningProvider, email: str, password: str,
            forwarded_for: str | None = None) -> int:
    """The status of one sign-in: 303 signed in, 401 refused, 429 throttled."""
    return LoginForm(provider, forwarded_for).submit(email, password)


@pytest.fixture(scope="module")
def behind_proxy(postgres_server, kafka_broker):
    """A provider behind a proxy on 127.0.0.1: X-Forwarded-For says who the client is."""
    throttling = LoginThrottling(per_account_and_address=3, per_address=20, per_account=8)
    with running_provider(postgres_server.url, kafka_broker.bootstrap,
                          serve=served_as_deployed(BEHIND_PROXY),
                          throttling=throttling) as provider:
        yield provider


def test_forwarded_for_is_ignored_when_no_proxy_is_configured(postgres_server, kafka_broker):
    throttling = LoginThrottling(per_address=3, per_account=100)
    with running_provider(postgres_server.url, kafka_broker.bootstrap,
                          serve=served_as_deployed(), throttling=throttling) as provider:
        login = provider.create_login()
        for number in range(3):
            attempt(provider, f"guess-{number}@popug.test", WRONG, f"198.51.100.{number}")

        status = attempt(provider, login.email, login.password, "198.51.100.99")

    assert status == 429


def test_a_configured_proxy_names_the_client(behind_proxy):
    login = behind_proxy.create_login()
    for _ in range(3):
        attempt(behind_proxy, login.email, WRONG, "203.0.113.7")

    assert attempt(behind_proxy, login.email, login.password, "203.0.113.7") == 429
    assert attempt(behind_proxy, login.email, login.password, "203.0.113.8") == 303


def test_wrong_passwords_elsewhere_do_not_lock_the_owner_out(behind_proxy):
    login = behind_proxy.create_login()
    for _ in range(3):
        assert attempt(behind_proxy, login.email, WRONG, "198.51.100.1") == 401

    assert attempt(behind_proxy, login.email, WRONG, "198.51.100.1") == 429
    assert attempt(behind_proxy, login.email, login.password, "203.0.113.9") == 303


def test_failures_from_many_addresses_reach_an_account_wide_ceiling(behind_proxy):
    login = behind_proxy.create_login()
    for number in range(8):
        attempt(behind_proxy, login.email, WRONG, f"198.51.100.{number // 3 + 10}")

    assert attempt(behind_proxy, login.email, login.password, "203.0.113.10") == 429


def test_a_success_does_not_clear_the_failures_of_other_addresses(behind_proxy):
    login = behind_proxy.create_login()
    for _ in range(3):
        attempt(behind_proxy, login.email, WRONG, "198.51.100.30")

    assert attempt(behind_proxy, login.email, login.password, "203.0.113.30") == 303
    assert attempt(behind_proxy, login.email, login.password, "198.51.100.30") == 429


def test_parallel_attempts_never_pass_the_limit(postgres_server, kafka_broker):
    with running_provider(postgres_server.url, kafka_broker.bootstrap,
                          serve=served_as_deployed(),
                          throttling=LoginThrottling(per_address=1000)) as provider:
        login = provider.create_login()
        forms = [LoginForm(provider) for _ in range(24)]
        start = threading.Barrier(len(forms))

        def submit(form: LoginForm) -> int:
            start.wait()
            return form.submit(login.email, WRONG)

        with ThreadPoolExecutor(len(forms)) as pool:
            statuses = list(pool.map(submit, forms))

    assert statuses.count(401) == PAIR_LIMIT
    assert statuses.count(429) == len(forms) - PAIR_LIMIT
