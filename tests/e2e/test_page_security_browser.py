"""Every page of the running platform renders under its Content-Security-Policy in Chromium:
sign-in, each dashboard, and the sign-out whose frames clear every dashboard's session."""

from __future__ import annotations

from tests.e2e.platform import ADMIN_PASSWORD
from tests.security_headers import CspViolations


def test_no_page_of_the_platform_is_refused_anything_by_its_policy(platform, browser_context):
    page = browser_context().new_page()
    violations = CspViolations(page)
    frames: list[str] = []
    page.on("framenavigated", lambda frame: frames.append(frame.url))
    dashboards = [platform.url(s) for s in ("tasks", "accounting", "analytics")]

    page.goto(f"{dashboards[0]}/")
    page.fill("#email", "admin@popug.inc")
    page.fill("#password", ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{dashboards[0]}/**")
    for url in dashboards:
        page.goto(f"{url}/")
    page.goto(f"{platform.url('auth')}/admin/accounts")
    page.goto(f"{dashboards[1]}/")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{platform.url('auth')}/oauth/logout**")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state("networkidle")

    assert "signed out" in page.content().lower()
    signed_out_frames = [url for url in frames if "/auth/frontchannel-logout" in url]
    assert sorted(url.split("/auth/")[0] for url in signed_out_frames) == sorted(dashboards)
    assert violations.messages == []
