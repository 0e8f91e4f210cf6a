"""Every answer of the provider carries the security headers; its inline styles are allowed
by their hash only, and its signed-out page may frame the dashboards' sign-out URLs."""

from __future__ import annotations

import httpx
import pytest

from tests.auth.support import bearer
from tests.security_headers import assert_secured


@pytest.mark.parametrize("path", ["/login", "/", "/admin/accounts", "/oauth/logout",
                                  "/.well-known/openid-configuration", "/api/accounts",
                                  "/no-such-page", "/healthz"])
def test_every_answer_carries_the_security_headers(provider, path):
    response = httpx.get(f"{provider.url}{path}")

    assert_secured(response)


def test_api_answers_with_a_token_carry_them_too(provider, admin_token):
    response = httpx.get(f"{provider.url}/api/me", headers=bearer(admin_token))

    assert response.status_code == 200
    assert_secured(response)


def test_the_published_keys_stay_cacheable(provider):
    response = httpx.get(f"{provider.url}/oauth/jwks")

    assert response.headers["cache-control"] == "max-age=300"
    assert_secured(response, cacheable=True)


def test_inline_styles_are_allowed_by_hash_and_dashboards_may_be_framed(provider,
                                                                        dashboard_ports):
    policy = httpx.get(f"{provider.url}/login").headers["content-security-policy"]

    assert "style-src 'self' 'sha256-" in policy and "unsafe-inline" not in policy
    frame_src = next(d for d in policy.split("; ") if d.startswith("frame-src"))
    for port in dashboard_ports.values():
        assert f"http://127.0.0.1:{port}" in frame_src


def test_only_the_api_docs_may_run_their_inline_script(provider):
    response = httpx.get(f"{provider.url}/docs")

    policy = response.headers["content-security-policy"]
    assert "script-src 'self' 'unsafe-inline'" in policy
    assert "frame-ancestors 'none'" in policy
