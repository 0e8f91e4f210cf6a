"""A client sending the same access token again is not verified again, yet still refused
as soon as its key is withdrawn or the token expires."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from auth_client import verification
from auth_client.verification import InvalidToken, JwksCache, TokenVerifier

ISSUER = "https://id.popug.inc"


def new_key() -> RSAKey:
    key = RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"})
    key.ensure_kid()
    return key


KEY = new_key()


def access_token(key: RSAKey = KEY, lifetime: int = 600, kid: str | None = None) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "ates", "sub": str(uuid.uuid4()), "iat": now,
              "exp": now + lifetime, "role": "worker"}
    return jwt.encode({"alg": "RS256", "kid": kid or key.kid, "typ": "at+jwt"}, claims, key)


class Provider:
    """The published keys, which a test may change."""

    def __init__(self) -> None:
        self.keys = [KEY]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.as_dict(private=False) for key in self.keys]}


@pytest.fixture
def signature_checks(monkeypatch) -> list[str]:
    """The tokens whose signature was checked, in order."""
    checked: list[str] = []
    decode = verification.jwt.decode

    def counting_decode(token: str, *args: Any, **kwargs: Any) -> Any:
        checked.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(verification.jwt, "decode", counting_decode)
    return checked


def verifier(provider: Provider, max_age: float = 600.0, leeway: int = 30) -> TokenVerifier:
    return TokenVerifier(ISSUER, "ates", JwksCache(provider.jwks, max_age=max_age),
                         leeway=leeway)


def test_a_token_sent_again_is_not_verified_again(signature_checks):
    tokens = verifier(Provider())
    token = access_token()

    first, second = tokens.current_user(token), tokens.current_user(token)

    assert first == second
    assert first.role == "worker"
    assert signature_checks == [token]


def test_a_remembered_token_is_refused_once_its_key_is_withdrawn(signature_checks):
    provider = Provider()
    tokens = verifier(provider, max_age=0.0)  # the keys are fetched again at every use
    token = access_token()
    tokens.current_user(token)

    provider.keys = [new_key()]

    with pytest.raises(InvalidToken, match="unknown signing key"):
        tokens.current_user(token)


def test_a_remembered_token_is_refused_once_expired():
    tokens = verifier(Provider(), leeway=0)
    token = access_token(lifetime=1)
    tokens.current_user(token)

    time.sleep(2.1)

    with pytest.raises(InvalidToken, match="expired"):
        tokens.current_user(token)


def test_only_the_latest_tokens_are_remembered(signature_checks):
    tokens = verifier(Provider())
    tokens.verified.kept = 2
    first, second, third = access_token(), access_token(), access_token()
    for token in (first, second, third, third, first):
        tokens.current_user(token)

    assert signature_checks == [first, second, third, first]


def test_a_token_with_a_bad_signature_is_never_remembered(signature_checks):
    tokens = verifier(Provider())
    forged = access_token(new_key(), kid=KEY.kid)  # claims to be signed with the published key

    for _ in range(2):
        with pytest.raises(InvalidToken, match="signature"):
            tokens.current_user(forged)

    assert signature_checks == [forged, forged]
