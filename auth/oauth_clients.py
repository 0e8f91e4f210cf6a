"""The registered OAuth clients, as Authlib's ``ClientMixin`` expects them."""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable
from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin

from auth_client.settings import ClientConfig

SCOPES_SUPPORTED = ("openid", "profile", "email")
DEFAULT_SCOPE = " ".join(SCOPES_SUPPORTED)
SECRET_METHODS = ("client_secret_basic", "client_secret_post")
# RFC 8252 §7.3: native apps listen on a loopback port chosen at run time. Matched in full:
# ``$`` would also accept a trailing newline.
_LOOPBACK_CALLBACK = re.compile(r"http://127\.0\.0\.1:(\d{1,5})/callback", re.ASCII)


def is_loopback_callback(uri: str) -> bool:
    match = _LOOPBACK_CALLBACK.fullmatch(uri)
    return match is not None and 0 < int(match.group(1)) < 65536


class OAuthClient(ClientMixin):  # type: ignore[misc]  # untyped base
    def __init__(self, config: ClientConfig):
        self.config = config

    @property
    def client_id(self) -> str:
        return self.config.client_id

    @property
    def client_metadata(self) -> dict[str, Any]:
        return {"post_logout_redirect_uris": list(self.config.post_logout_redirect_uris)}

    def get_client_id(self) -> str:
        return self.config.client_id

    def get_default_redirect_uri(self) -> None:
        # OAuth 2.1: the redirect URI must always be sent (and match exactly).
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return DEFAULT_SCOPE
        return " ".join(s for s in scope.split() if s in SCOPES_SUPPORTED)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        if redirect_uri in self.config.redirect_uris:
            return True
        return self.config.loopback_redirect and is_loopback_callback(redirect_uri)

    def check_client_secret(self, client_secret: str) -> bool:
        expected = self.config.client_secret
        return expected is not None and hmac.compare_digest(expected, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.config.is_public:
            return method == "none"
        return method in SECRET_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and self.check_grant_type("authorization_code")

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.config.grant_types


class ClientRegistry:
    def __init__(self, configs: Iterable[ClientConfig]):
        self._clients = {config.client_id: OAuthClient(config) for config in configs}

    def get(self, client_id: str | None) -> OAuthClient | None:
        return self._clients.get(client_id or "")

    def all(self) -> list[OAuthClient]:
        return list(self._clients.values())
