"""Authorization codes and refresh tokens in the database.

Both are single-use. Using one is an atomic ``UPDATE ... RETURNING`` claim, so two
concurrent requests with the same secret cannot both succeed. Presenting a secret that
was already used is treated as theft: everything issued from it is revoked.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import (
    ColumnElement,
    Row,
    Table,
    Update,
    and_,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from auth.identity import PRINCIPAL_COLUMNS, Principal
from auth.keys import ACTIVE_KEY_COLUMNS
from auth.models import Account, AuthorizationCode, Base, RefreshToken, SsoSession


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def expiry(ttl: timedelta) -> datetime:
    return datetime.now(UTC) + ttl


@dataclass(frozen=True)
class CodeGrantRequest:
    """What an authorization code is bound to when it is issued."""

    client_id: str
    account_id: int
    sso_session_id: int | None
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str
    code_challenge_method: str
    auth_time: datetime


@dataclass(frozen=True)
class ClaimedCode:
    """A code that was just used; implements Authlib's authorization-code interface."""

    id: int
    grant: CodeGrantRequest
    session_public_id: str | None
    owner: Principal | None  # the code's account, if it may still sign in
    signing_key: tuple[str | None, str | None]  # the active key's id and PEM, when read

    @property
    def code_challenge(self) -> str:
        return self.grant.code_challenge

    @property
    def code_challenge_method(self) -> str:
        return self.grant.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.grant.redirect_uri

    def get_scope(self) -> str:
        return self.grant.scope

    def get_nonce(self) -> str | None:
        return self.grant.nonce

    def get_auth_time(self) -> int:
        return int(self.grant.auth_time.timestamp())

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> list[str]:
        return ["pwd"]


_codes = Base.metadata.tables[AuthorizationCode.__tablename__]
_refresh_tokens = Base.metadata.tables[RefreshToken.__tablename__]


# Statements are built once: a request only binds its values.

_CODE_COLUMNS = ("code_hash", "expires_at", *CodeGrantRequest.__dataclass_fields__)
_NEW = {name: bindparam(f"new_{name}", type_=_codes.c[name].type) for name in _CODE_COLUMNS}
_NEW_CODE = select(*_NEW.values())
# The client's nonce is used once: a code is not stored if the client had one for it.
_NONCE_UNUSED = or_(_NEW["nonce"].is_(None), ~exists().where(
    _codes.c.client_id == _NEW["client_id"], _codes.c.nonce == _NEW["nonce"]))
_SAVE_CODE = (insert(_codes).from_select(_CODE_COLUMNS, _NEW_CODE.where(_NONCE_UNUSED))
              .returning(_codes.c.id))


def save_code(session: Session, code: str, grant: CodeGrantRequest, ttl: timedelta) -> bool:
    """Store a code; False (nothing stored) when its client had one for its nonce."""
    row = {"code_hash": digest(code), "expires_at": expiry(ttl), **vars(grant)}
    stored = session.execute(_SAVE_CODE, {f"new_{name}": row[name] for name in _CODE_COLUMNS})
    return stored.first() is not None


def _claiming_once(table: Table, used_at: str, *conditions: ColumnElement[bool]) -> Update:
    """Marks one unexpired, unused row as used now and returns it."""
    return (update(table)
            .where(*conditions, table.c[used_at].is_(None), table.c.expires_at > func.now())
            .values({used_at: func.now()})
            .returning(*table.c))


_claimed_code = _claiming_once(_codes, "used_at", _codes.c.code_hash == bindparam("presented_hash"),
                               _codes.c.client_id == bindparam("presenting_client")
                               ).cte("claimed")
_OWNER_COLUMNS = [column.label(f"owner_{column.key}") for column in PRINCIPAL_COLUMNS]
# The claim, with the public id of the code's SSO session, the code's account as a
# principal (nulls when it may no longer sign in) and the active signing key the tokens
# are about to be signed with, in one statement.
_CLAIM_CODE = (
    select(_claimed_code, SsoSession.public_id.label("session_public_id"), *_OWNER_COLUMNS,
           *ACTIVE_KEY_COLUMNS)
    .select_from(_claimed_code)
    .outerjoin(SsoSession, SsoSession.id == _claimed_code.c.sso_session_id)
    .outerjoin(Account, and_(Account.id == _claimed_code.c.account_id,
                             Account.active.is_(True), Account.deleted_at.is_(None)))
)


def claim_code(session: Session, code: str, client_id: str) -> ClaimedCode | None:
    """Use a code once; a replayed code revokes the tokens issued for it."""
    claimed = session.execute(_CLAIM_CODE, {"presented_hash": digest(code),
                                            "presenting_client": client_id}).one_or_none()
    if claimed is None:
        _revoke_tokens_of_replayed_code(session, code)
        return None
    public_id = claimed.session_public_id
    return ClaimedCode(claimed.id, _grant_of(claimed),
                       None if public_id is None else str(public_id), _owner_of(claimed),
                       (claimed.signing_kid, claimed.signing_pem))


def _owner_of(row: Row[Any]) -> Principal | None:
    if row.owner_id is None:
        return None
    return Principal(row.owner_id, str(row.owner_public_id), row.owner_email,
                     row.owner_full_name, row.owner_role)


def _grant_of(row: Row[Any]) -> CodeGrantRequest:
    names = CodeGrantRequest.__dataclass_fields__
    return CodeGrantRequest(**{name: getattr(row, name) for name in names})


def _revoke_tokens_of_replayed_code(session: Session, code: str) -> None:
    used = session.scalars(
        select(AuthorizationCode).where(
            AuthorizationCode.code_hash == digest(code), AuthorizationCode.used_at.is_not(None)
        )
    ).first()
    if used is not None and used.token_family is not None:
        revoke_family(session, used.token_family)


_NONCE_SEEN = select(_codes.c.id).where(
    _codes.c.client_id == bindparam("client_id"), _codes.c.nonce == bindparam("nonce")
).limit(1)


def nonce_seen(session: Session, client_id: str, nonce: str) -> bool:
    seen = session.execute(_NONCE_SEEN, {"client_id": client_id, "nonce": nonce}).first()
    return seen is not None




@dataclass(frozen=True)
class Lineage:
    """Where a refresh token comes from: its family, owner, client and SSO session."""

    family_id: uuid.UUID
    client_id: str
    account_id: int
    sso_session_id: int | None
    scope: str
    rotated_from: int | None = None


class Client(Protocol):
    def get_client_id(self) -> str: ...


@dataclass(frozen=True)
class ClaimedRefreshToken:
    """A refresh token that was just used; implements what Authlib asks of a token."""

    id: int
    lineage: Lineage

    def check_client(self, client: Client) -> bool:
        return client.get_client_id() == self.lineage.client_id

    def get_scope(self) -> str:
        return self.lineage.scope

    def successor(self) -> Lineage:
        return replace(self.lineage, rotated_from=self.id)


# A refresh token, and the code it was issued for (none: ``code_id`` is null) linked to its
# family.
_SAVE_REFRESH_TOKEN = text("""
WITH linked_code AS (
    UPDATE authorization_codes SET token_family = :family_id WHERE id = :code_id
)
INSERT INTO refresh_tokens (token_hash, family_id, rotated_from, client_id, account_id,
                            sso_session_id, scope, expires_at)
VALUES (:token_hash, :family_id, :rotated_from, :client_id, :account_id, :sso_session_id,
        :scope, :expires_at)
""")


def save_refresh_token(session: Session, token: str, lineage: Lineage, ttl: timedelta,
                       code_id: int | None = None) -> None:
    """Store a refresh token; one issued for the code ``code_id`` is linked to it in the
    same statement (a replay of the code revokes the token's family)."""
    session.execute(_SAVE_REFRESH_TOKEN, {"token_hash": digest(token), "expires_at": expiry(ttl),
                                          "code_id": code_id, **vars(lineage)})


_CLAIM_REFRESH_TOKEN = _claiming_once(
    _refresh_tokens, "rotated_at", _refresh_tokens.c.token_hash == bindparam("presented_hash"),
    _refresh_tokens.c.client_id == bindparam("presenting_client"),
    _refresh_tokens.c.revoked_at.is_(None))


def claim_refresh_token(session: Session, token: str, client_id: str) -> ClaimedRefreshToken | None:
    """Use a refresh token once; reusing a rotated one revokes its whole family."""
    claimed = session.execute(_CLAIM_REFRESH_TOKEN, {"presented_hash": digest(token),
                                                     "presenting_client": client_id}
                              ).one_or_none()
    if claimed is None:
        _revoke_family_of_reused(session, token, client_id)
        return None
    return _claimed(claimed)


def _claimed(row: Row[Any]) -> ClaimedRefreshToken:
    names = [name for name in Lineage.__dataclass_fields__ if name != "rotated_from"]
    return ClaimedRefreshToken(row.id, Lineage(**{name: getattr(row, name) for name in names}))


def _revoke_family_of_reused(session: Session, token: str, client_id: str) -> None:
    reused = find_refresh_token(session, token)
    if reused is not None and reused.client_id == client_id and reused.rotated_at is not None:
        revoke_family(session, reused.family_id)


def find_refresh_token(session: Session, token: str) -> RefreshToken | None:
    return session.scalars(
        select(RefreshToken).where(RefreshToken.token_hash == digest(token))
    ).first()


def revoke_family(session: Session, family_id: uuid.UUID) -> None:
    _revoke(session, RefreshToken.family_id == family_id)


def revoke_account_tokens(session: Session, account_id: int) -> None:
    _revoke(session, RefreshToken.account_id == account_id)


def revoke_session_tokens(session: Session, sso_session_id: int) -> None:
    _revoke(session, RefreshToken.sso_session_id == sso_session_id)


def _revoke(session: Session, condition: ColumnElement[bool]) -> None:
    session.execute(
        update(RefreshToken).where(condition, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )
