"""Password change by its owner, and reset through a single-use, expiring mailed link."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import text

from auth.config import PasswordResetRules
from tests.auth.security_flows import post_form, reset_link, signed_in_browser, submit_password
from tests.auth.support import Browser, bearer, running_provider

NEW_PASSWORD = "a brand new password"


def reset_mail_for(mailbox, email: str) -> dict:
    mails = mailbox.wait_for(lambda mails: any(email in m["to"] for m in mails))
    return next(m for m in mails if email in m["to"])


def ask_for_reset(provider, email: str) -> httpx.Response:
    return httpx.post(f"{provider.url}/api/password-reset", json={"email": email})


def test_the_owner_changes_their_password_and_other_sessions_end(provider, make_login):
    login = make_login()
    tokens = provider.tokens_for(login)
    other_browser = signed_in_browser(provider, login.email, login.password)
    browser = signed_in_browser(provider, login.email, login.password)

    wrong = post_form(browser, f"{provider.url}/account/security",
                      f"{provider.url}/account/password",
                      {"current_password": "not my password", "new_password": NEW_PASSWORD,
                       "confirm_password": NEW_PASSWORD})
    assert wrong.status_code == 401 and "current password is not right" in wrong.text
    changed = post_form(browser, f"{provider.url}/account/security",
                        f"{provider.url}/account/password",
                        {"current_password": login.password, "new_password": NEW_PASSWORD,
                         "confirm_password": NEW_PASSWORD})

    assert changed.status_code == 303
    assert browser.http.get(f"{provider.url}/account/security").status_code == 200
    assert other_browser.http.get(f"{provider.url}/account/security").status_code == 303
    refresh = httpx.post(f"{provider.url}/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
        "client_id": "ates-cli"})
    assert refresh.status_code == 400
    assert submit_password(Browser(), provider, login.email, login.password).status_code == 401
    assert submit_password(Browser(), provider, login.email, NEW_PASSWORD).status_code == 303
    browser.close()
    other_browser.close()


def test_password_change_over_the_api(provider, make_login):
    login = make_login()
    token = provider.token_for(login)
    url = f"{provider.url}/api/me/password"

    wrong = httpx.post(url, json={"current_password": "nope nope nope",
                                  "new_password": NEW_PASSWORD}, headers=bearer(token))
    short = httpx.post(url, json={"current_password": login.password, "new_password": "short"},
                       headers=bearer(token))
    nul = httpx.post(url, json={"current_password": login.password,
                                "new_password": "bad\u0000password"}, headers=bearer(token))
    changed = httpx.post(url, json={"current_password": login.password,
                                    "new_password": NEW_PASSWORD}, headers=bearer(token))

    assert (wrong.status_code, short.status_code, nul.status_code) == (403, 422, 422)
    assert changed.status_code == 204
    assert provider.accounts.authenticate(login.email, NEW_PASSWORD) is not None


def test_a_reset_link_is_mailed_and_works_once(provider, make_login, mailbox):
    login = make_login()
    old_tokens = provider.tokens_for(login)

    answer = ask_for_reset(provider, login.email.upper())
    assert answer.status_code == 202
    mail = reset_mail_for(mailbox, login.email)
    assert mail["subject"] == "Reset your aTES password"
    link = reset_link(mail["text"])
    token = urlsplit(link).path.rsplit("/", 1)[1]
    assert link.startswith(provider.url)

    done = httpx.post(f"{provider.url}/api/password-reset/complete",
                      json={"token": token, "new_password": NEW_PASSWORD})
    again = httpx.post(f"{provider.url}/api/password-reset/complete",
                       json={"token": token, "new_password": "yet another password"})

    assert done.status_code == 204 and again.status_code == 410
    assert provider.accounts.authenticate(login.email, NEW_PASSWORD) is not None
    refresh = httpx.post(f"{provider.url}/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": old_tokens["refresh_token"],
        "client_id": "ates-cli"})
    assert refresh.status_code == 400  # the reset ended every session


def test_the_answer_is_the_same_whether_or_not_the_email_exists(provider, make_login, mailbox):
    login = make_login()

    unknown = ask_for_reset(provider, "nobody-here@popug.test")
    known = ask_for_reset(provider, login.email)

    assert unknown.status_code == known.status_code == 202
    assert unknown.json()["detail"].replace("nobody-here@popug.test", "X") == (
        known.json()["detail"].replace(login.email, "X"))
    reset_mail_for(mailbox, login.email)
    assert [m["to"] for m in mailbox.messages()] == [[login.email]]


def test_what_is_not_an_email_is_refused_before_anything_else(provider):
    assert ask_for_reset(provider, "not an email").status_code == 422
    assert ask_for_reset(provider, "x" * 300 + "@popug.test").status_code == 422


def test_an_expired_or_replaced_link_is_refused(provider, make_login, mailbox):
    login = make_login()
    ask_for_reset(provider, login.email)
    first = reset_link(reset_mail_for(mailbox, login.email)["text"])
    mailbox.clear()
    ask_for_reset(provider, login.email)
    second = reset_link(reset_mail_for(mailbox, login.email)["text"])
    with provider.engine.begin() as conn:  # the second link's time runs out
        conn.execute(text("UPDATE password_reset_tokens SET expires_at = now() - interval '1s' "
                          "WHERE used_at IS NULL"))

    for link in (first, second):
        page = httpx.get(link)
        assert page.status_code == 410 and "not valid any more" in page.text
        token = urlsplit(link).path.rsplit("/", 1)[1]
        assert httpx.post(f"{provider.url}/api/password-reset/complete", json={
            "token": token, "new_password": NEW_PASSWORD}).status_code == 410


@pytest.fixture(scope="module")
def strict_reset_provider(postgres_server, kafka_broker, smtp_sink):
    rules = PasswordResetRules(per_email=2, per_address=3)
    with running_provider(postgres_server.url, kafka_broker.bootstrap,
                          smtp_url=smtp_sink.smtp_url, password_reset=rules) as running:
        yield running


def test_reset_requests_are_throttled_per_email_and_per_address(strict_reset_provider):
    provider = strict_reset_provider
    known = provider.create_login()
    statuses = [ask_for_reset(provider, email).status_code for email in (
        known.email, known.email, known.email,             # a third time for one email
        "someone-else@popug.test",                         # the address's third request
        "and-another@popug.test")]                         # the address's fourth

    assert statuses == [202, 202, 429, 202, 429]
    refused = ask_for_reset(provider, "not-an-account@popug.test")
    assert refused.status_code == 429 and "Too many reset links" in refused.json()["detail"]


def test_forms_refuse_text_no_database_can_hold(provider, make_login):
    login = make_login()
    anonymous = Browser()
    forgot = post_form(anonymous, f"{provider.url}/password/forgot",
                       f"{provider.url}/password/forgot", {"email": "kesha\x00@popug.test"})
    assert forgot.status_code == 400 and "must not contain NUL" in forgot.text
    browser = signed_in_browser(provider, login.email, login.password)
    change = post_form(browser, f"{provider.url}/account/security",
                       f"{provider.url}/account/password",
                       {"current_password": login.password, "new_password": "new\x00password",
                        "confirm_password": "new\x00password"})
    assert change.status_code == 400
    assert provider.accounts.authenticate(login.email, login.password) is not None
    anonymous.close()
    browser.close()
