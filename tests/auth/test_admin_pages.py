"""The admin's account pages on the provider: list, create, edit, deactivate, delete."""

from __future__ import annotations

import uuid

import pytest

from auth_client.token_flow import hidden_inputs
from tests.auth.support import Browser, Login, RunningProvider


def signed_in_browser(provider: RunningProvider, login: Login) -> Browser:
    browser = Browser()
    page = browser.get(f"{provider.url}/login?next=/admin/accounts")
    browser.sign_in(page, login)
    return browser


@pytest.fixture
def admin_browser(provider, admin):
    browser = signed_in_browser(provider, admin)
    yield browser
    browser.close()


def submit(browser: Browser, page, action: str, **fields):
    form = {"csrf_token": hidden_inputs(page.text)["csrf_token"], **fields}
    return browser.http.post(str(page.url.join(action)), data=form)


def test_admin_creates_an_account_from_the_accounts_page(provider, admin_browser):
    page = admin_browser.get(f"{provider.url}/admin/accounts")
    assert page.status_code == 200 and "New account" in page.text
    email = f"web-{uuid.uuid4().hex[:8]}@popug.test"

    created = admin_browser.follow(submit(admin_browser, page, "/admin/accounts", email=email,
                                          full_name="Rio Ara", role="accountant",
                                          password="long enough pass"))

    assert created.status_code == 200 and "Account created." in created.text
    view = provider.queries.find_account_by_email(email)
    assert (view.full_name, view.role, view.active) == ("Rio Ara", "accountant", True)


def test_invalid_or_duplicate_account_shows_an_error_and_stores_nothing(provider,
                                                                        admin_browser, admin):
    page = admin_browser.get(f"{provider.url}/admin/accounts")
    before = provider.queries.count_accounts()

    unknown_role = submit(admin_browser, page, "/admin/accounts", email="x@popug.test",
                          full_name="X", role="emperor", password="long enough pass")
    duplicate = submit(admin_browser, page, "/admin/accounts", email=admin.email.upper(),
                       full_name="X", role="worker", password="long enough pass")

    assert unknown_role.status_code == 422 and "unknown role" in unknown_role.text
    assert duplicate.status_code == 409 and "already exists" in duplicate.text
    assert provider.queries.count_accounts() == before


def test_admin_edits_deactivates_and_deletes_an_account(provider, admin_browser, make_login):
    account_id = make_login().id
    page = admin_browser.get(f"{provider.url}/admin/accounts/{account_id}")

    saved = admin_browser.follow(submit(admin_browser, page, f"/admin/accounts/{account_id}",
                                        full_name="Gosha", role="manager", active="true"))
    assert saved.status_code == 200 and "Saved." in saved.text
    assert provider.queries.get_account(account_id).role == "manager"

    admin_browser.follow(submit(admin_browser, saved, f"/admin/accounts/{account_id}/deactivate"))
    assert provider.queries.get_account(account_id).active is False

    asked = admin_browser.get(f"{provider.url}/admin/accounts/{account_id}/delete")
    assert asked.status_code == 200 and "cannot be undone" in asked.text
    assert provider.queries.find_account_by_email(asked_email(asked)) is not None

    deleted = admin_browser.follow(submit(admin_browser, asked,
                                          f"/admin/accounts/{account_id}/delete"))
    assert str(deleted.url).endswith("/admin/accounts")
    assert "Account deleted." in deleted.text
    assert account_id not in deleted.text
    assert "Account deleted." not in admin_browser.get(deleted.url).text  # shown once


def test_a_link_cannot_make_the_accounts_page_announce_anything(provider, admin_browser):
    page = admin_browser.get(f"{provider.url}/admin/accounts?notice=deleted")

    assert page.status_code == 200
    assert "Account deleted." not in page.text and 'class="notice"' not in page.text


def asked_email(page) -> str:
    """The email a delete confirmation page names."""
    import re

    return re.search(r"<p>([^<\s]+@[^<\s]+) ·", page.text).group(1)


def test_the_account_page_asks_before_deleting(provider, admin_browser, make_login):
    account_id = make_login().id

    page = admin_browser.get(f"{provider.url}/admin/accounts/{account_id}")

    assert f'method="get" action="/admin/accounts/{account_id}/delete"' in page.text
    assert f'method="post" action="/admin/accounts/{account_id}/delete"' not in page.text
    assert provider.queries.get_account(account_id).active


def test_forms_without_csrf_token_change_nothing(provider, admin_browser, make_login):
    account_id = make_login().id

    response = admin_browser.http.post(f"{provider.url}/admin/accounts/{account_id}/delete")

    assert response.status_code == 403
    assert provider.queries.get_account(account_id).active


def test_non_admins_and_anonymous_visitors_are_kept_out(provider, make_login):
    worker = signed_in_browser(provider, make_login("worker"))
    anonymous = Browser()

    assert worker.http.get(f"{provider.url}/admin/accounts").status_code == 403
    redirect = anonymous.http.get(f"{provider.url}/admin/accounts")
    assert redirect.status_code == 303 and redirect.headers["location"].startswith("/login")
    worker.close()
    anonymous.close()


def test_sign_out_from_the_provider_asks_for_confirmation(provider, make_login):
    browser = signed_in_browser(provider, make_login())

    confirm = browser.get(f"{provider.url}/oauth/logout")
    signed_out = submit(browser, confirm, "/oauth/logout")

    assert "Sign out?" in confirm.text
    assert signed_out.status_code == 200 and "You are signed out" in signed_out.text
    assert browser.get(f"{provider.url}/").text.count('name="password"') == 1
    browser.close()
