"""Sign-in security in Chromium: reset by mail, password change, two-factor enrolment and
sign-in, roles that require it, sessions ended by their owner or by an admin — every page
rendered under its Content-Security-Policy."""

from __future__ import annotations

import pytest

from tests.auth.security_flows import current_code, next_code, reset_link
from tests.security_headers import CspViolations

NEW_PASSWORD = "a brand new password"


@pytest.fixture
def open_page(browser_context):
    """A page in a fresh browser profile, with the policy violations it reports."""
    opened = []

    def factory():
        page = browser_context().new_page()
        violations = CspViolations(page)
        opened.append(violations)
        return page

    yield factory
    assert [v.messages for v in opened if v.messages] == []


def sign_in(page, url: str, email: str, password: str) -> None:
    page.goto(f"{url}/login?prompt=login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def test_a_forgotten_password_is_reset_through_the_mailed_link(provider, make_login, mailbox,
                                                                open_page):
    login = make_login(name="Reset Popug")
    page = open_page()
    page.goto(f"{provider.url}/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.fill("#email", login.email)
    page.get_by_role("button", name="Send the link").click()
    assert f"If an account exists for {login.email}" in page.locator("[role=status]").inner_text()

    mails = mailbox.wait_for(lambda mails: any(login.email in m["to"] for m in mails))
    page.goto(reset_link(mails[-1]["text"]))
    page.fill("#new-password", NEW_PASSWORD)
    page.fill("#confirm-password", NEW_PASSWORD)
    page.get_by_role("button", name="Set the new password").click()
    assert "Password changed" in page.content()
    page.get_by_role("link", name="Sign in").click()
    page.fill("#email", login.email)
    page.fill("#password", NEW_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{provider.url}/")
    assert "Hello, Reset Popug" in page.content()


def test_the_owner_changes_their_password_on_the_security_page(provider, make_login, open_page):
    login = make_login()
    page = open_page()
    sign_in(page, provider.url, login.email, login.password)
    page.get_by_role("link", name="Security").click()
    page.fill("#current-password", login.password)
    page.fill("#new-password", NEW_PASSWORD)
    page.fill("#confirm-password", NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()

    assert "Your password is changed" in page.locator("[role=status]").inner_text()
    assert provider.accounts.authenticate(login.email, NEW_PASSWORD) is not None


def enrol(page) -> str:
    """On the enrolment page: check the QR code shows, turn on with the key's first code."""
    page.wait_for_load_state("load")  # the page's images too, on a busy machine
    qr_width = page.locator("img.qr").evaluate("img => img.complete && img.naturalWidth")
    assert qr_width > 0
    secret = page.locator("#totp-secret").inner_text()
    page.fill("#code", current_code(secret))
    page.get_by_role("button", name="Turn on").click()
    assert page.locator("#recovery-codes li").count() == 10
    return secret


def test_two_factor_is_set_up_with_the_qr_code_and_asked_at_sign_in(provider, make_login,
                                                                    open_page):
    login = make_login(name="Careful Popug")
    page = open_page()
    sign_in(page, provider.url, login.email, login.password)
    page.goto(f"{provider.url}/account/security")
    page.get_by_role("button", name="Set up two-factor sign-in").click()
    secret = enrol(page)
    page.get_by_role("link", name="I have saved them, continue").click()
    assert "Recovery codes left: 10" in page.content()

    other = open_page()
    sign_in(other, provider.url, login.email, login.password)
    assert other.url == f"{provider.url}/login/two-factor"
    other.fill("#code", next_code(secret))
    other.get_by_role("button", name="Verify").click()
    other.wait_for_url(f"{provider.url}/")
    assert "Hello, Careful Popug" in other.content()


def test_a_role_that_requires_two_factor_enrols_at_sign_in(provider, make_login, admin,
                                                         open_page):
    accountant = make_login("accountant", name="Counting Popug")
    admin_page = open_page()
    sign_in(admin_page, provider.url, admin.email, admin.password)
    admin_page.get_by_role("link", name="Roles that must use two-factor sign-in").click()
    admin_page.get_by_label("accountant").check()
    admin_page.get_by_role("button", name="Save").click()
    try:
        assert admin_page.get_by_label("accountant").is_checked()
        page = open_page()
        sign_in(page, provider.url, accountant.email, accountant.password)
        assert "Your role requires a second factor" in page.content()
        enrol(page)
        page.get_by_role("link", name="I have saved them, continue").click()
        page.wait_for_url(f"{provider.url}/")
        assert "Hello, Counting Popug" in page.content()
    finally:
        provider.app.state.security.set_required_roles([])


def test_the_owner_ends_another_browsers_session(provider, make_login, open_page):
    login = make_login()
    elsewhere, here = open_page(), open_page()
    sign_in(elsewhere, provider.url, login.email, login.password)
    sign_in(here, provider.url, login.email, login.password)
    here.goto(f"{provider.url}/account/security")
    rows = here.locator("#sessions tr[data-session]")
    assert rows.count() == 2

    rows.filter(has_not_text="(this browser)").get_by_role("button", name="End").click()

    assert "Ended." in here.locator("[role=status]").inner_text()
    assert here.locator("#sessions tr[data-session]").count() == 1
    elsewhere.goto(f"{provider.url}/account/security")
    assert elsewhere.url.startswith(f"{provider.url}/login")


def test_an_admin_sees_sign_ins_and_ends_every_session(provider, make_login, admin, open_page):
    login = make_login(name="Watched Popug")
    popug = open_page()
    sign_in(popug, provider.url, login.email, "not the password")
    sign_in(popug, provider.url, login.email, login.password)
    admin_page = open_page()
    sign_in(admin_page, provider.url, admin.email, admin.password)

    admin_page.goto(f"{provider.url}/admin/accounts/{login.id}")
    admin_page.get_by_role("link", name="Sign-ins, sessions and second factor").click()
    history = admin_page.locator("table.sign-ins tbody").inner_text()
    assert "signed in" in history and "failed: wrong password" in history
    assert "1 active session(s)" in admin_page.content()
    admin_page.get_by_role("button", name="End all sessions").click()
    assert "Every session of this account has ended" in admin_page.content()

    popug.goto(f"{provider.url}/account/security")
    assert popug.url.startswith(f"{provider.url}/login")
