"""The analytics dashboard under its strict Content-Security-Policy: the security headers on
every answer, and a page that a browser renders without refusing any of its styles."""

from __future__ import annotations

import httpx

from tests.analytics import test_dashboard as served
from tests.auth.support import bearer
from tests.security_headers import CspViolations, assert_secured

# The served app and its people, as the dashboard's own tests have them.
dashboard_port, provider, logins, tokens = (served.dashboard_port, served.provider,
                                            served.logins, served.tokens)
dashboard, activity = served.dashboard, served.activity

ACCENT = "rgb(31, 122, 90)"  # the accent of every aTES page (dashboard_kit/shared_static)


def test_every_answer_carries_the_security_headers(dashboard, tokens, provider):
    summary = httpx.get(f"{dashboard}/api/analytics/summary", headers=bearer(tokens["admin"]))

    for response in (httpx.get(f"{dashboard}/"), summary, httpx.get(f"{dashboard}/healthz")):
        assert_secured(response)
    assert_secured(httpx.get(f"{dashboard}/auth/frontchannel-logout"),
                   framed_by=provider.url.rstrip("/"))


def test_the_sign_in_and_the_dashboard_render_without_a_refused_style(
    dashboard, logins, browser_context, activity
):
    page = browser_context(viewport=served.PHONE).new_page()
    violations = CspViolations(page)
    page.goto(f"{dashboard}/")
    sign_in_header = page.eval_on_selector("header", "e => getComputedStyle(e).backgroundColor")
    served.sign_in(page, logins["admin"])
    page.wait_for_selector("svg.chart")

    header = page.eval_on_selector("header", "e => getComputedStyle(e).backgroundColor")
    swatch = page.eval_on_selector(".swatch", "e => getComputedStyle(e).backgroundColor")
    bar = page.eval_on_selector("svg.chart rect.bar", "e => getComputedStyle(e).fill")
    assert (sign_in_header, header, swatch, bar) == (ACCENT, ACCENT, ACCENT, ACCENT)
    assert violations.messages == []
