"""The OAuth 2.1 / OpenID Connect provider: Authlib's framework-agnostic server on FastAPI.

- authorization code with PKCE (S256 only, for every client), exact redirect URIs,
  ``state``, ``nonce`` (required with ``openid``) and an ID token;
- refresh tokens rotated on every use; a reused one revokes its whole family, and a
  replayed authorization code revokes the tokens issued for it;
- client credentials for confidential service clients;
- JWT access tokens (RS256, ``typ: at+jwt``) with ``iss``, ``aud``, ``sub``, ``email``,
  ``name``, ``role``, ``exp``, ``iat``, ``jti``;
- revocation (RFC 7009), userinfo, discovery, JWKS, and RP-initiated logout that ends the
  SSO session and signs the browser out of every dashboard (front-channel logout).

Authlib is synchronous, so the async routes only read the HTTP request and hand an
:class:`OAuthRequest` to the server in a worker thread.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NoReturn, cast
from urllib.parse import parse_qsl, urlencode

from authlib.oauth2 import AuthorizationServer, OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Payload, grants
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.rpinitiated import EndSessionEndpoint, EndSessionRequest
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from joserfc.jwk import KeySet
from sqlalchemy.orm import Session, sessionmaker

from auth.config import AuthConfig
from auth.identity import Principal
from auth.keys import ALGORITHM, SigningKeys
from auth.oauth_clients import SCOPES_SUPPORTED, ClientRegistry, OAuthClient
from auth.queries import AccountQueries
from auth.sessions import (
    SignedIn,
    clients_of_session,
    end_session,
    find_session,
    find_session_id,
)
from auth.tokens import (
    ClaimedCode,
    ClaimedRefreshToken,
    CodeGrantRequest,
    Lineage,
    claim_code,
    claim_refresh_token,
    find_refresh_token,
    new_secret,
    nonce_seen,
    revoke_family,
    save_code,
    save_refresh_token,
)

SECRET_AND_PUBLIC_METHODS = ["client_secret_basic", "client_secret_post", "none"]
NONCE_REUSED = "Replay attack"  # Authlib's own refusal of a nonce used before
AUTHORIZE_PATH = "/oauth/authorize"


class FormPayload(OAuth2Payload):  # type: ignore[misc]  # untyped base
    def __init__(self, pairs: list[tuple[str, str]]):
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for name, value in pairs:
            self._datalist[name].append(value)
        self._data = {name: values[0] for name, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class OAuthRequest(OAuth2Request):  # type: ignore[misc]  # untyped base
    """An HTTP request, already read, in the shape Authlib expects."""

    payload: FormPayload
    # Filled in by Authlib as it handles the request.
    client: OAuthClient | None
    user: SignedIn | Principal | None
    authorization_code: ClaimedCode | None
    refresh_token: ClaimedRefreshToken | None

    def __init__(self, method: str, uri: str, headers: Mapping[str, str],
                 query: list[tuple[str, str]], form: list[tuple[str, str]]):
        super().__init__(method, uri, headers=headers)
        self.payload = FormPayload(query + form)
        # Authlib validates an authorization request twice while answering it (consent,
        # then response): the nonce is looked up once.
        self.nonces_seen: dict[tuple[str, str], bool] = {}
        # The transaction the request is answered in, when it has one of its own.
        self.transaction: Session | None = None
        # Whether the nonce is left to the storing of the code, which refuses a used one:
        # no look-up of its own before.
        self.nonce_checked_by_save = False
        self._args = dict(query)
        self._form = dict(form)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


async def read_oauth_request(request: Request, issuer: str) -> OAuthRequest:
    form: list[tuple[str, str]] = []
    content_type = request.headers.get("content-type", "")
    if request.method == "POST" and content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = [(k, v) for k, v in (await request.form()).multi_items() if isinstance(v, str)]
    # The issuer, not the Host header, says where the provider is and whether it uses TLS.
    uri = issuer + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return OAuthRequest(request.method, uri, request.headers,
                        list(request.query_params.multi_items()), form)


def user_claims(principal: Principal) -> dict[str, str]:
    return {"sub": principal.public_id, "email": principal.email, "name": principal.full_name,
            "role": principal.role}


class S256Challenge(CodeChallenge):  # type: ignore[misc]  # untyped base
    """PKCE for every client (OAuth 2.1), and only the S256 method."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: CodeGrant, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge (S256)")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]  # untyped base
    TOKEN_ENDPOINT_AUTH_METHODS = SECRET_AND_PUBLIC_METHODS
    server: Provider
    request: OAuthRequest

    @staticmethod
    def validate_authorization_redirect_uri(request: OAuthRequest, client: OAuthClient) -> str:
        # Authlib's own refusal quotes the URI, and cannot quote one with a line break.
        redirect_uri: str | None = request.payload.redirect_uri
        if not redirect_uri:
            raise InvalidRequestError("Missing 'redirect_uri' in request.")
        if not client.check_redirect_uri(redirect_uri):
            raise InvalidRequestError("The redirect URI is not registered for this client.")
        return redirect_uri

    def generate_authorization_code(self) -> str:
        # 256 random bits in one call (Authlib draws each of its 48 characters apart).
        return new_secret()

    def save_authorization_code(self, code: str, request: OAuthRequest) -> None:
        # Authlib has found the client, and the user is who ``authorize`` granted to.
        signed_in, client = request.user, request.client
        assert isinstance(signed_in, SignedIn) and client is not None
        data = request.payload.data
        grant = CodeGrantRequest(
            client_id=client.get_client_id(),
            account_id=signed_in.principal.account_id,
            sso_session_id=signed_in.session_id,
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope,
            nonce=data.get("nonce"),
            code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"],
            auth_time=signed_in.auth_time,
        )
        with self.server.transaction(request) as session:
            if not save_code(session, code, grant, self.server.config.authorization_code_ttl):
                # Back to the client, as Authlib's own check of the nonce answers.
                raise InvalidRequestError(NONCE_REUSED, redirect_uri=grant.redirect_uri)

    def query_authorization_code(self, code: str, client: OAuthClient) -> ClaimedCode | None:
        with self.server.transaction(self.request) as session:
            claimed = claim_code(session, code, client.get_client_id())
        if claimed is not None:
            self.server.keys.read_along(*claimed.signing_key)
        return claimed

    def delete_authorization_code(self, authorization_code: ClaimedCode) -> None:
        """Nothing to do: the code was marked used when it was claimed."""

    def authenticate_user(self, authorization_code: ClaimedCode) -> Principal | None:
        return authorization_code.owner


class RotatingRefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]  # untyped base
    TOKEN_ENDPOINT_AUTH_METHODS = SECRET_AND_PUBLIC_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: Provider
    request: OAuthRequest

    def authenticate_refresh_token(self, refresh_token: str) -> ClaimedRefreshToken | None:
        client = self.request.client
        assert client is not None, "Authlib authenticates the client first"
        with self.server.transaction(self.request) as session:
            return claim_refresh_token(session, refresh_token, client.get_client_id())

    def authenticate_user(self, refresh_token: ClaimedRefreshToken) -> Principal | None:
        return self.server.accounts.active_principal(refresh_token.lineage.account_id,
                                                     self.request.transaction)

    def revoke_old_credential(self, refresh_token: ClaimedRefreshToken) -> None:
        """Nothing to do: the token was marked rotated when it was claimed."""


class ServiceCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]  # untyped base
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class IdTokens(OpenIDCode):  # type: ignore[misc]  # untyped base
    def __init__(self, provider: Provider):
        super().__init__(require_nonce=True)
        self.provider = provider

    def resolve_client_private_key(self, client: OAuthClient) -> KeySet:
        return self.provider.keys.signing_keyset()

    def get_client_algorithm(self, client: OAuthClient) -> str:
        return ALGORITHM

    def get_client_claims(self, client: OAuthClient) -> dict[str, Any]:
        return {"iss": self.provider.config.issuer, "aud": client.get_client_id(),
                "exp": _now() + int(self.provider.config.id_token_ttl.total_seconds())}

    def get_authorization_code_claims(self, authorization_code: ClaimedCode) -> dict[str, Any]:
        claims: dict[str, Any] = super().get_authorization_code_claims(authorization_code)
        if authorization_code.session_public_id:
            claims["sid"] = authorization_code.session_public_id
        return claims

    def exists_nonce(self, nonce: str, request: OAuthRequest) -> bool:
        if request.nonce_checked_by_save:
            return False
        key = (request.payload.client_id, nonce)
        if key not in request.nonces_seen:
            with self.provider.transaction(request) as session:
                request.nonces_seen[key] = nonce_seen(session, *key)
        return request.nonces_seen[key]

    def generate_user_info(self, user: Principal, scope: str) -> UserInfo:
        return UserInfo(user_claims(user))


def _now() -> int:
    return int(time.time())


class AccessTokens(JWTBearerTokenGenerator):  # type: ignore[misc]  # untyped base
    def __init__(self, config: AuthConfig, keys: SigningKeys):
        ttl = int(config.access_token_ttl.total_seconds())
        super().__init__(
            issuer=config.issuer,
            alg=ALGORITHM,
            refresh_token_generator=lambda **_: new_secret(),
            expires_generator=lambda client, grant_type: ttl,
        )
        self.config = config
        self.keys = keys

    def get_jwks(self) -> KeySet:
        return self.keys.signing_keyset()

    def get_audiences(self, client: OAuthClient, user: Principal | None, scope: str) -> str:
        return self.config.audience

    def get_jti(self, client: OAuthClient, grant_type: str, user: Principal | None,
                scope: str) -> str:
        return str(uuid.uuid4())

    def get_extra_claims(self, client: OAuthClient, grant_type: str, user: Principal | None,
                         scope: str) -> dict[str, str]:
        if user is not None:
            return {k: v for k, v in user_claims(user).items() if k != "sub"}
        role = client.config.service_role
        return {"name": client.get_client_id(), **({"role": role} if role else {})}


class Revocation(RevocationEndpoint):  # type: ignore[misc]  # untyped base
    CLIENT_AUTH_METHODS = SECRET_AND_PUBLIC_METHODS
    server: Provider

    def query_token(self, token_string: str, token_type_hint: str | None
                    ) -> ClaimedRefreshToken | None:
        # Access tokens are self-contained JWTs; they run out within minutes.
        if token_type_hint == "access_token":
            return None
        with self.server.sessions() as session:
            row = find_refresh_token(session, token_string)
        if row is None:
            return None
        return ClaimedRefreshToken(row.id, Lineage(row.family_id, row.client_id, row.account_id,
                                                   row.sso_session_id, row.scope))

    def revoke_token(self, token: ClaimedRefreshToken, request: OAuthRequest) -> None:
        with self.server.sessions.begin() as session:
            revoke_family(session, token.lineage.family_id)


class Logout(EndSessionEndpoint):  # type: ignore[misc]  # untyped base
    server: Provider

    def get_server_jwks(self) -> KeySet:
        return self.server.keys.public_keyset()

    def get_algorithms(self) -> list[str]:
        return [ALGORITHM]

    def end_session(self, end_session_request: EndSessionRequest) -> None:
        """Ending happens in :meth:`Provider.end_sessions`, which also reports what ended."""


class Provider(AuthorizationServer):  # type: ignore[misc]  # untyped base
    def __init__(self, config: AuthConfig, sessions: sessionmaker[Session],
                 accounts: AccountQueries, keys: SigningKeys):
        super().__init__(scopes_supported=list(SCOPES_SUPPORTED))
        self.config = config
        self.sessions = sessions
        self.accounts = accounts
        self.keys = keys
        self.clients = ClientRegistry(config.clients)
        self.register_token_generator("default", AccessTokens(config, keys))
        self.register_grant(CodeGrant, [S256Challenge(required=True), IdTokens(self)])
        self.register_grant(RotatingRefreshGrant)
        self.register_grant(ServiceCredentialsGrant)
        self.register_endpoint(Revocation)
        self.register_endpoint(Logout)

    # --- what Authlib needs from a framework integration ---------------------------

    def query_client(self, client_id: str) -> OAuthClient | None:
        return self.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: OAuthRequest) -> None:
        if "refresh_token" not in token:
            return
        lineage = self._lineage(token, request)
        ttl = self.config.refresh_token_ttl
        with self.transaction(request) as session:
            code = request.authorization_code
            save_refresh_token(session, token["refresh_token"], lineage, ttl,
                               None if code is None else code.id)

    @staticmethod
    def _lineage(token: dict[str, Any], request: OAuthRequest) -> Lineage:
        if request.refresh_token is not None:
            return request.refresh_token.successor()
        code = request.authorization_code
        assert code is not None, "refresh tokens come from a code or from a refresh token"
        return Lineage(uuid.uuid4(), code.grant.client_id, code.grant.account_id,
                       code.grant.sso_session_id, token.get("scope", code.grant.scope))

    def create_oauth2_request(self, request: OAuthRequest) -> OAuthRequest:
        return request

    def create_json_request(self, request: object) -> NoReturn:
        raise NotImplementedError("the provider reads no JSON requests")

    def handle_response(self, status_code: int, body: Any,
                        headers: Iterable[tuple[str, str]] | None) -> Response:
        response_headers = dict(headers or [])
        if isinstance(body, dict):
            response_headers.pop("Content-Type", None)
            return JSONResponse(body, status_code=status_code, headers=response_headers)
        return Response(body or b"", status_code=status_code, headers=response_headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signals are needed."""

    # --- endpoints ------------------------------------------------------------------
    # Authlib answers with what :meth:`handle_response` made.

    def authorize(self, request: OAuthRequest, sso_cookie: str | None) -> Response:
        """Issue a code to a browser signed in with ``sso_cookie``, or send it to the login
        page first. One transaction reads the SSO session and the nonce and saves the code;
        it commits before the code is answered."""
        with self._answered_in_one_transaction(request) as session:
            return self._authorize(request, find_session(session, sso_cookie))

    def authorize_after_sign_in(self, next_url: str, session: Session,
                                signed_in: SignedIn) -> Response | None:
        """The authorization request a sign-in was made for (``next_url``, a path on the
        provider), answered at once for the session it opens, in its transaction (``session``):
        the browser goes back to the client with its code without a round trip through the
        authorization endpoint. None when ``next_url`` is no authorization request."""
        path, _, query = next_url.partition("?")
        if path != AUTHORIZE_PATH:
            return None
        request = OAuthRequest("GET", self.config.issuer + next_url, {},
                               parse_qsl(query, keep_blank_values=True), [])
        request.nonce_checked_by_save = True
        with self._answered_in(request, session):
            return self._authorize(request, signed_in)

    def _authorize(self, request: OAuthRequest, signed_in: SignedIn | None) -> Response:
        try:
            grant = self.get_consent_grant(request, end_user=signed_in)
        except OAuth2Error as error:
            return cast(Response, self.handle_error_response(request, error))
        if signed_in is None or grant.prompt == "login":
            location = self._login_url(request, reauthenticate=signed_in is not None)
            return Response(status_code=302, headers={"Location": location})
        return cast(Response, self.create_authorization_response(
            request, grant_user=signed_in, grant=grant))

    @contextmanager
    def _answered_in_one_transaction(self, request: OAuthRequest) -> Iterator[Session]:
        """A transaction for every step of answering ``request``; it commits before the
        answer leaves."""
        with self.sessions.begin() as session, self._answered_in(request, session):
            yield session

    @staticmethod
    @contextmanager
    def _answered_in(request: OAuthRequest, session: Session) -> Iterator[Session]:
        """Every step of answering ``request`` in the transaction ``session``."""
        request.transaction = session
        try:
            yield session
        finally:
            request.transaction = None

    @contextmanager
    def transaction(self, request: OAuthRequest) -> Iterator[Session]:
        """The request's own transaction, or else one for this step alone."""
        if request.transaction is not None:
            yield request.transaction
            return
        with self.sessions.begin() as session:
            yield session

    @staticmethod
    def _login_url(request: OAuthRequest, reauthenticate: bool) -> str:
        # Without ``prompt`` the authorize request that follows the login goes through.
        query = [(k, v) for k, vs in request.payload.datalist.items() for v in vs if k != "prompt"]
        params = {"next": f"{AUTHORIZE_PATH}?{urlencode(query)}"}
        return "/login?" + urlencode(params | ({"prompt": "login"} if reauthenticate else {}))

    def token(self, request: OAuthRequest) -> Response:
        """One transaction claims the code or refresh token, reads the signing key (the ID
        token and the access token: one key, read once; a code's claim reads it in its own
        statement) and stores the new refresh token. A refused grant commits too: a replayed
        code or refresh token revokes its family."""
        with (self._answered_in_one_transaction(request) as session,
              self.keys.one_read(session.connection())):
            return cast(Response, self.create_token_response(request))

    def revoke(self, request: OAuthRequest) -> Response:
        return cast(Response, self.create_endpoint_response(Revocation.ENDPOINT_NAME, request))

    def validate_logout(self, request: OAuthRequest) -> EndSessionRequest:
        """The validated end-session request (raises ``OAuth2Error``)."""
        return self.validate_endpoint_request(Logout.ENDPOINT_NAME, request)

    def end_sessions(self, signed_in: SignedIn | None,
                     id_token_claims: dict[str, Any] | None) -> list[str]:
        """End the browser's SSO session (and the one named by the ID token).

        Returns the front-channel logout URLs of the dashboards used in those sessions.
        """
        with self.sessions.begin() as session:
            ended = self._sessions_to_end(session, signed_in, id_token_claims)
            client_ids: set[str] = set()
            for sso_session_id, _sid in ended:
                end_session(session, sso_session_id)
                client_ids.update(clients_of_session(session, sso_session_id))
        return self._frontchannel_urls(client_ids, [sid for _, sid in ended])

    @staticmethod
    def _sessions_to_end(session: Session, signed_in: SignedIn | None,
                         id_token_claims: dict[str, Any] | None) -> set[tuple[int, str]]:
        ended: set[tuple[int, str]] = set()
        if signed_in is not None:
            ended.add((signed_in.session_id, signed_in.session_public_id))
        sid = (id_token_claims or {}).get("sid")
        if sid:
            sso_session_id = find_session_id(session, sid)
            if sso_session_id is not None:
                ended.add((sso_session_id, sid))
        return ended

    def _frontchannel_urls(self, client_ids: set[str], sids: list[str]) -> list[str]:
        urls = []
        for client_id in sorted(client_ids):
            client = self.clients.get(client_id)
            if client is None or not client.config.frontchannel_logout_uri:
                continue
            for sid in sids:
                query = urlencode({"iss": self.config.issuer, "sid": sid})
                urls.append(f"{client.config.frontchannel_logout_uri}?{query}")
        return urls

    def discovery(self) -> dict[str, Any]:
        issuer = self.config.issuer
        methods = SECRET_AND_PUBLIC_METHODS
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/oauth/authorize",
            "token_endpoint": f"{issuer}/oauth/token",
            "userinfo_endpoint": f"{issuer}/oauth/userinfo",
            "jwks_uri": f"{issuer}/oauth/jwks",
            "revocation_endpoint": f"{issuer}/oauth/revoke",
            "end_session_endpoint": f"{issuer}/oauth/logout",
            "scopes_supported": list(SCOPES_SUPPORTED),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token",
                                      "client_credentials"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "token_endpoint_auth_methods_supported": methods,
            "revocation_endpoint_auth_methods_supported": methods,
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "sid",
                                 "email", "name", "role"],
            "frontchannel_logout_supported": True,
            "frontchannel_logout_session_supported": True,
        }
