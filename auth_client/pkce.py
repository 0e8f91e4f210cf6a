"""Proof Key for Code Exchange (RFC 7636), S256 method."""

from __future__ import annotations

import base64
import hashlib
import secrets


def s256_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def pkce_pair() -> tuple[str, str]:
    """A fresh code verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    return verifier, s256_challenge(verifier)
