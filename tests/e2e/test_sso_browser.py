"""Single sign-on across the three dashboards of the running platform, in Chromium."""

from __future__ import annotations

from tests.e2e.platform import ADMIN_PASSWORD


def is_login_page(page) -> bool:
    return page.locator("#password").count() == 1


def test_one_login_and_one_logout_for_every_dashboard(platform, browser_context):
    page = browser_context().new_page()
    dashboards = [platform.url(s) for s in ("tasks", "accounting", "analytics")]

    page.goto(f"{dashboards[0]}/")
    assert page.url.startswith(platform.url("auth")) and is_login_page(page)
    page.fill("#email", "admin@popug.inc")
    page.fill("#password", ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{dashboards[0]}/**")
    assert not is_login_page(page)
    assert "Ada Admin" in page.content()

    for url in dashboards[1:] + dashboards[:1]:
        page.goto(f"{url}/")
        assert page.url.startswith(url), f"{url} sent the browser to {page.url}"
        assert not is_login_page(page)
        assert "Ada Admin" in page.content(), url

    page.goto(f"{dashboards[2]}/auth/logout")  # a link followed from anywhere
    assert page.url.startswith(platform.url("auth")) and "Sign out?" in page.content()
    page.goto(f"{dashboards[0]}/")
    assert page.url.startswith(dashboards[0]) and not is_login_page(page)

    page.goto(f"{dashboards[1]}/")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{platform.url('auth')}/oauth/logout**")
    assert "Sign out?" in page.content()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state("networkidle")
    assert "signed out" in page.content().lower()

    for url in dashboards:
        page.goto(f"{url}/")
        assert page.url.startswith(platform.url("auth")), f"{url} still signed in"
        assert is_login_page(page)
