"""The security headers of every response of every service, from one middleware.

- ``Content-Security-Policy``: only the service's own scripts, styles, images and fonts;
  no plugins, no ``<base>``, and no framing by anyone (``frame-ancestors 'none'``, with
  ``X-Frame-Options: DENY`` for older browsers) unless a path is opened to one origin;
  inline styles only by the hash of their exact text (:func:`inline_style_hashes`);
- ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: same-origin`` (codes and
  states in URLs never leave the site; forms keep their ``Origin``);
- ``Cache-Control: no-store`` on everything but static assets, unless a route chose its own
  (pages and API answers are private to the person who asked).

The interactive API docs (``/docs``, ``/redoc``) run an inline script written by the docs
library; they alone may run inline scripts, and they show no private data.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
STATIC_PREFIXES = ("/static/", "/static-offline-docs/")
_STYLE_ELEMENT = re.compile(r"<style>(.*?)</style>", re.DOTALL)


@dataclass(frozen=True)
class PagePolicy:
    """What a service's pages need beyond the strict default."""

    style_hashes: tuple[str, ...] = ()
    # Origins whose pages this service's pages may show in a frame.
    frame_sources: tuple[str, ...] = ()
    # Paths that one other origin may show in a frame: path -> origin.
    framed_by: Mapping[str, str] = field(default_factory=dict)

    def content_security_policy(self, path: str) -> str:
        inline = " 'unsafe-inline'" if path in DOCS_PATHS else ""
        styles = "".join(f" '{digest}'" for digest in self.style_hashes)
        frames = "".join(f" {origin}" for origin in self.frame_sources)
        ancestors = self.framed_by.get(path, "'none'")
        return "; ".join([
            "default-src 'self'",
            f"script-src 'self'{inline}",
            f"style-src 'self'{inline or styles}",
            "img-src 'self' data:",
            "worker-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'none'",
            f"frame-src 'self'{frames}",
            f"frame-ancestors {ancestors}",
        ])

    def headers_for(self, path: str) -> dict[str, str]:
        headers = {
            "content-security-policy": self.content_security_policy(path),
            "x-content-type-options": "nosniff",
            "referrer-policy": "same-origin",
        }
        if path not in self.framed_by:
            headers["x-frame-options"] = "DENY"
        return headers


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def inline_style_hashes(*templates: Path) -> tuple[str, ...]:
    """The CSP hashes of the ``<style>`` elements written in these template files (which
    must hold no template syntax), so that a change to a style never needs a new hash."""
    return tuple(_sha256(text) for template in templates
                 for text in _STYLE_ELEMENT.findall(template.read_text(encoding="utf-8")))


def _sha256(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"sha256-{base64.b64encode(digest).decode('ascii')}"


def _is_static(path: str) -> bool:
    return path.startswith(STATIC_PREFIXES)


class SecurityHeaders:
    """Pure ASGI middleware (streamed bodies stay streamed)."""

    def __init__(self, app: ASGIApp, policy: PagePolicy | None = None):
        self.app = app
        self.policy = policy or PagePolicy()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        extra = self.policy.headers_for(path)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                _add_headers(MutableHeaders(scope=message), extra, path)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _add_headers(headers: MutableHeaders, extra: Mapping[str, str], path: str) -> None:
    for name, value in extra.items():
        headers[name] = value
    if "cache-control" not in headers and not _is_static(path):
        headers["cache-control"] = "no-store"


def distinct_origins(urls: Iterable[str]) -> tuple[str, ...]:
    """The origins of ``urls``, each once, in order."""
    return tuple(dict.fromkeys(origin_of(url) for url in urls))
