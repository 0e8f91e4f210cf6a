"""What the tests of every service expect of the security headers of a response."""

from __future__ import annotations

import httpx

STRICT_STYLES = "style-src 'self'"


def assert_secured(response: httpx.Response, cacheable: bool = False,
                   framed_by: str | None = None) -> None:
    headers = response.headers
    policy = headers["content-security-policy"]
    assert policy.startswith("default-src 'self'"), policy
    assert "script-src 'self';" in policy and "object-src 'none'" in policy
    assert "base-uri 'none'" in policy
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    if framed_by is None:
        assert "frame-ancestors 'none'" in policy and headers["x-frame-options"] == "DENY"
    else:
        assert f"frame-ancestors {framed_by}" in policy and "x-frame-options" not in headers
    if not cacheable:
        assert headers["cache-control"] == "no-store"
    else:
        assert "no-store" not in headers.get("cache-control", "")


class CspViolations:
    """Collects what Chromium reports about content the page's policy refused."""

    def __init__(self, page):
        self.messages: list[str] = []
        page.on("console", self._record)

    def _record(self, message) -> None:
        if "Content Security Policy" in message.text:
            self.messages.append(message.text)
