"""Local verification of the provider's JWTs against its published keys (JWKS).

Only RS256 is accepted, whatever a token's header claims (this refuses ``alg=none`` and
HS256 tokens "signed" with the public key). The issuer, audience and expiry are always
checked, and access tokens must be typed ``at+jwt`` (RFC 9068), so an ID token cannot be
replayed as an access token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import GuestProtocol, KeySet, KeySetSerialization, RSAKey

ALGORITHMS = ["RS256"]
ACCESS_TOKEN_TYPE = "at+jwt"


class InvalidToken(Exception):
    """The token is not one this service may accept; the message says why."""


@dataclass(frozen=True)
class CurrentUser:
    """Who is calling: the account a valid access token was issued to.

    ``id`` is the account's public id. For a service client (client-credentials token) it
    is the client id, ``email`` is empty and ``role`` is the client's configured role.
    """

    id: str
    email: str
    name: str
    role: str

    def has_role(self, *roles: str) -> bool:
        return self.role in roles


JwksSource = Callable[[], dict[str, Any]]


def http_jwks(url: str, timeout: float = 10.0) -> JwksSource:
    def fetch() -> dict[str, Any]:
        response = httpx.get(url, timeout=timeout)
        response.raise_for_status()
        keys: dict[str, Any] = response.json()
        return keys

    return fetch


class JwksCache:
    """The provider's public keys, refreshed every ``max_age`` seconds and on unknown ``kid``.

    Refetches caused by unknown key ids are spaced at least ``refetch_interval`` apart, so a
    stream of tokens with made-up ids cannot turn into a stream of requests to the provider.
    """

    def __init__(self, source: JwksSource, max_age: float = 600.0,
                 refetch_interval: float = 1.0):
        self.source = source
        self.max_age = max_age
        self.refetch_interval = refetch_interval
        self._keys: dict[str, RSAKey] = {}
        self._fetched_at = float("-inf")
        self._unknown_kid_refetch_at = float("-inf")
        self._lock = threading.Lock()

    def key(self, kid: str) -> RSAKey:
        with self._lock:
            now = time.monotonic()
            if now - self._fetched_at > self.max_age:
                self._fetch(now)
            may_refetch = now - self._unknown_kid_refetch_at >= self.refetch_interval
            if kid not in self._keys and may_refetch:
                self._unknown_kid_refetch_at = now
                self._fetch(now)
            if kid not in self._keys:
                raise InvalidToken(f"unknown signing key {kid!r}")
            return self._keys[kid]

    def _fetch(self, now: float) -> None:
        try:
            keyset = KeySet.import_key_set(cast(KeySetSerialization, self.source()))
        except (httpx.HTTPError, ValueError, JoseError) as error:
            raise InvalidToken(f"cannot load the provider's keys: {error}") from error
        self._keys = {key.kid: key for key in keyset if isinstance(key, RSAKey) and key.kid}
        self._fetched_at = now


# How many access tokens' signatures are remembered as verified (a few hundred bytes each).
VERIFIED_SIGNATURES_KEPT = 4096


class VerifiedSignatures:
    """Access tokens whose signature was verified, with the key that verified it, so that a
    client sending the same token again is not verified again (an RSA check per request).

    An entry counts only while its key is still the provider's (see ``JwksCache.key``);
    claims (expiry above all) are checked at every use. The oldest entries go first.
    """

    def __init__(self, kept: int = VERIFIED_SIGNATURES_KEPT):
        self.kept = kept
        self._entries: dict[str, tuple[RSAKey, dict[str, Any], dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, token: str, jwks: JwksCache) -> tuple[dict[str, Any], dict[str, Any]] | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        key, claims, header = entry
        if jwks.key(header["kid"]) is not key:
            return None
        return dict(claims), header

    def add(self, token: str, key: RSAKey, claims: dict[str, Any], header: dict[str, Any]
            ) -> None:
        with self._lock:
            while len(self._entries) >= self.kept:
                del self._entries[next(iter(self._entries))]
            self._entries[token] = (key, dict(claims), header)


class TokenVerifier:
    def __init__(self, issuer: str, audience: str, jwks: JwksCache, leeway: int = 30):
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.jwks = jwks
        self.leeway = leeway
        self.verified = VerifiedSignatures()
        self._claim_rules: dict[str, jwt.JWTClaimsRegistry] = {}

    def access_claims(self, token: str) -> dict[str, Any]:
        known = self.verified.get(token, self.jwks)
        claims, header = known if known is not None else self._decode(token, self.verified)
        if header.get("typ") != ACCESS_TOKEN_TYPE:
            raise InvalidToken("not an access token")
        self._check_claims(claims, self.audience)
        return claims

    def id_token_claims(self, token: str, client_id: str, nonce: str | None) -> dict[str, Any]:
        claims, _header = self._decode(token)
        self._check_claims(claims, client_id)
        if nonce is not None and claims.get("nonce") != nonce:
            raise InvalidToken("id_token nonce does not match the login request")
        return claims

    def current_user(self, token: str) -> CurrentUser:
        claims = self.access_claims(token)
        return CurrentUser(id=claims["sub"], email=claims.get("email", ""),
                           name=claims.get("name", ""), role=claims.get("role", ""))

    def _decode(self, token: str, remember_in: VerifiedSignatures | None = None
                ) -> tuple[dict[str, Any], dict[str, Any]]:
        used: list[RSAKey] = []

        def key_for(token_object: GuestProtocol) -> RSAKey:
            kid = token_object.headers().get("kid")
            if not kid:
                raise InvalidToken("token has no key id")
            used.append(self.jwks.key(kid))
            return used[-1]

        try:
            decoded = jwt.decode(token, key_for, algorithms=ALGORITHMS)
        except JoseError as error:
            raise InvalidToken(f"invalid token: {error.error}") from error
        except ValueError as error:
            raise InvalidToken("malformed token") from error
        claims, header = dict(decoded.claims), dict(decoded.header)
        if remember_in is not None:
            remember_in.add(token, used[-1], claims, header)
        return claims, header

    def _check_claims(self, claims: dict[str, Any], audience: str) -> None:
        registry = self._claim_rules.get(audience)
        if registry is None:
            registry = self._claim_rules.setdefault(audience, jwt.JWTClaimsRegistry(
                leeway=self.leeway,
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": audience},
                exp={"essential": True},
                sub={"essential": True},
            ))
        try:
            registry.validate(claims)
        except JoseError as error:
            raise InvalidToken(f"token refused: {error.description or error.error}") from error
