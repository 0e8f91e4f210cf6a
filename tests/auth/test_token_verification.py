"""The client side refuses every token the provider did not issue for ``ates``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import httpx
import pytest
from joserfc import jws, jwt
from joserfc.jwk import RSAKey

from auth.app import local_verifier
from auth.keys import SigningKeys
from auth_client.verification import InvalidToken, TokenVerifier
from tests.auth.support import RunningProvider, bearer


@pytest.fixture
def verifier(provider: RunningProvider) -> TokenVerifier:
    return provider.verifier()


def signing_key(provider: RunningProvider) -> RSAKey:
    return provider.app.state.provider.keys.signing_key()


def claims(provider: RunningProvider, **changes) -> dict:
    now = int(time.time())
    return {"iss": provider.url, "aud": "ates", "sub": str(uuid.uuid4()), "email": "a@popug.inc",
            "name": "A", "role": "admin", "iat": now, "exp": now + 600,
            "jti": str(uuid.uuid4())} | changes


def sign(key: RSAKey, payload: dict, kid: str | None = None, typ: str = "at+jwt") -> str:
    header = {"alg": "RS256", "kid": kid or key.kid, "typ": typ}
    return jwt.encode(header, payload, key)


def kid_of(token: str) -> str:
    return jws.extract_compact(token.encode()).protected["kid"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict, payload: dict, signature: bytes = b"") -> str:
    head = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())
    return head + "." + _b64(signature)


def test_a_token_of_the_provider_is_accepted(provider, verifier):
    token = sign(signing_key(provider), claims(provider, role="worker"))

    user = verifier.current_user(token)

    assert user.role == "worker" and user.email == "a@popug.inc"


def test_forged_token_signed_with_another_key_is_refused(provider, verifier):
    forger = RSAKey.generate_key(2048)
    token = sign(forger, claims(provider), kid=signing_key(provider).kid)

    with pytest.raises(InvalidToken):
        verifier.current_user(token)


@pytest.mark.parametrize("change, reason", [
    ({"exp": int(time.time()) - 120}, "exp"),
    ({"aud": "somebody-else"}, "aud"),
    ({"iss": "https://evil.example"}, "iss"),
])
def test_expired_or_misaddressed_tokens_are_refused(provider, verifier, change, reason):
    token = sign(signing_key(provider), claims(provider, **change))

    with pytest.raises(InvalidToken, match=reason):
        verifier.current_user(token)


def test_alg_none_is_refused(provider, verifier):
    token = unsigned({"alg": "none", "kid": signing_key(provider).kid, "typ": "at+jwt"},
                     claims(provider))

    with pytest.raises(InvalidToken):
        verifier.current_user(token)


def test_hs256_signed_with_the_public_key_is_refused(provider, verifier):
    key = signing_key(provider)
    public_pem = RSAKey.import_key(key.as_dict(private=False)).as_pem()
    header = {"alg": "HS256", "kid": key.kid, "typ": "at+jwt"}
    head = unsigned(header, claims(provider)).rsplit(".", 1)[0]
    signature = hmac.new(public_pem, head.encode(), hashlib.sha256).digest()

    with pytest.raises(InvalidToken):
        verifier.current_user(head + "." + _b64(signature))


def test_an_id_token_is_not_an_access_token(provider, verifier):
    token = sign(signing_key(provider), claims(provider), typ="JWT")

    with pytest.raises(InvalidToken, match="access token"):
        verifier.current_user(token)


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c"])
def test_malformed_tokens_are_refused(verifier, token):
    with pytest.raises(InvalidToken):
        verifier.current_user(token)


def test_forged_tokens_get_401_from_the_provider_api(provider):
    forged = sign(RSAKey.generate_key(2048), claims(provider), kid=signing_key(provider).kid)

    response = httpx.get(f"{provider.url}/api/me", headers=bearer(forged))

    assert response.status_code == 401 and response.json()["detail"]


def test_key_rotation_keeps_old_tokens_valid_while_the_new_key_signs(provider, make_login,
                                                                     verifier):
    login = make_login()
    old_token = provider.token_for(login)
    verifier.current_user(old_token)

    new_kid = provider.app.state.provider.keys.rotate()
    new_token = provider.token_for(login)

    published = {key["kid"] for key in httpx.get(f"{provider.url}/oauth/jwks").json()["keys"]}
    assert {kid_of(old_token), new_kid} <= published and kid_of(old_token) != new_kid
    assert kid_of(new_token) == new_kid
    assert verifier.current_user(new_token).id == login.id  # unknown kid: keys refetched
    assert verifier.current_user(old_token).id == login.id
    for token in (old_token, new_token):
        assert httpx.get(f"{provider.url}/api/me", headers=bearer(token)).status_code == 200


def test_a_rotation_elsewhere_signs_the_next_token_with_the_new_key(provider, make_login):
    login = make_login()
    elsewhere = SigningKeys(provider.engine, provider.config.retired_key_publication)

    new_kid = elsewhere.rotate()  # as ``ates auth rotate-key`` does, in a process of its own
    tokens = provider.tokens_for(login)

    assert kid_of(tokens["access_token"]) == kid_of(tokens["id_token"]) == new_kid


def test_the_active_key_is_read_once_for_the_tokens_of_one_response(provider):
    keys = provider.app.state.provider.keys
    elsewhere = SigningKeys(provider.engine, provider.config.retired_key_publication)

    with keys.one_read():
        first = keys.signing_key()
        new_kid = elsewhere.rotate()
        assert keys.signing_key() is first and first.kid != new_kid
    assert keys.signing_key().kid == new_kid


def test_the_provider_accepts_its_own_tokens_right_after_rotations_in_a_row(provider):
    keys = provider.app.state.provider.keys
    elsewhere = SigningKeys(provider.engine, provider.config.retired_key_publication)
    verifier = local_verifier(provider.config, keys)

    for _ in range(3):  # each well within the spacing of refetches for made-up key ids
        elsewhere.rotate()
        token = sign(keys.signing_key(), claims(provider, role="worker"))
        assert verifier.current_user(token).role == "worker"
