"""Driving the provider's sign-in, second factor and password pages over plain HTTP."""

from __future__ import annotations

import re
import time

import httpx
import pyotp

from auth_client.token_flow import hidden_inputs
from tests.auth.support import Browser, RunningProvider


def submit_password(browser: Browser, provider: RunningProvider, email: str,
                    password: str) -> httpx.Response:
    """Post the login form once (not following the answer)."""
    page = browser.get(f"{provider.url}/login?prompt=login")
    form = hidden_inputs(page.text) | {"email": email, "password": password}
    return browser.http.post(f"{provider.url}/login", data=form)


def submit_code(browser: Browser, provider: RunningProvider, code: str) -> httpx.Response:
    """Answer the second-factor step of a sign-in."""
    page = browser.http.get(f"{provider.url}/login/two-factor")
    form = hidden_inputs(page.text) | {"code": code}
    return browser.http.post(f"{provider.url}/login/two-factor", data=form)


def post_form(browser: Browser, page_url: str, action: str, fields: dict[str, str]
              ) -> httpx.Response:
    """Post ``fields`` to ``action`` with the CSRF token of the page at ``page_url``."""
    page = browser.http.get(page_url)
    form = {"csrf_token": hidden_inputs(page.text)["csrf_token"]} | fields
    return browser.http.post(action, data=form)


def signed_in_browser(provider: RunningProvider, email: str, password: str) -> Browser:
    browser = Browser()
    response = submit_password(browser, provider, email, password)
    assert response.status_code == 303 and response.headers["location"] == "/", response.text
    return browser


def next_code(secret: str) -> str:
    """A code of the next time step: accepted (one step of drift either side) and newer
    than the step of a code just used."""
    return pyotp.TOTP(secret).at(time.time() + 30)


def current_code(secret: str) -> str:
    return pyotp.TOTP(secret).now()


def reset_link(mail_body: str) -> str:
    match = re.search(r"(http://\S+/password/reset/\S+)", mail_body)
    assert match, mail_body
    return match.group(1)
