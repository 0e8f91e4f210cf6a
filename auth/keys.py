"""RS256 signing keys, kept in the database so every replica signs with the same key.

The first key is generated on first use. Rotation makes a new key the signer and retires
the old one, which stays in the JWKS for ``retired_key_publication`` so the tokens it
signed keep verifying until they expire; after that it can be pruned.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import Connection, Engine, Row, delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert

from auth.models import SigningKey

ALGORITHM = "RS256"
KEY_BITS = 2048



@dataclass
class _OneRead:
    """The active keys read within :meth:`SigningKeys.one_read`, by the keys they came
    from, and the connection they are read on (``None``: one of their own)."""

    connection: Connection | None
    keys: dict[SigningKeys, RSAKey] = field(default_factory=dict)


_READ_ONCE: ContextVar[_OneRead | None] = ContextVar("signing_key_read_once", default=None)


_ACTIVE_KEY = select(SigningKey.kid, SigningKey.private_pem).where(SigningKey.status == "active")
# The same, as two columns another statement returns beside its own: the first statement of
# a token response reads the key its tokens are signed with (:meth:`SigningKeys.read_along`).
ACTIVE_KEY_COLUMNS = (
    select(SigningKey.kid).where(SigningKey.status == "active")
    .scalar_subquery().label("signing_kid"),
    select(SigningKey.private_pem).where(SigningKey.status == "active")
    .scalar_subquery().label("signing_pem"),
)


def new_key() -> RSAKey:
    key = RSAKey.generate_key(KEY_BITS, parameters={"use": "sig", "alg": ALGORITHM})
    key.ensure_kid()
    return key


def _parse(kid: str, pem: str) -> RSAKey:
    return RSAKey.import_key(pem, parameters={"kid": kid, "use": "sig", "alg": ALGORITHM})


def _kid(key: RSAKey) -> str:
    kid = key.kid
    assert kid is not None, "every key here has a kid: new keys are given their thumbprint"
    return kid


def _row(key: RSAKey) -> dict[str, str]:
    return {"kid": _kid(key), "private_pem": key.as_pem(private=True).decode(), "status": "active"}


class SigningKeys:
    def __init__(self, engine: Engine, retired_publication: timedelta):
        self.engine = engine
        self.retired_publication = retired_publication
        self._parsed: dict[str, RSAKey] = {}
        self._lock = threading.Lock()

    def signing_key(self) -> RSAKey:
        """The active private key (created when there is none yet).

        Read from the database every time, so a rotation by any replica or by ``ates auth
        rotate-key`` signs the next token with the new key; within :meth:`one_read`, once.
        """
        read = _READ_ONCE.get()
        if read is None:
            return self._read_signing_key()
        if self not in read.keys:
            read.keys[self] = self._read_signing_key(read.connection)
        return read.keys[self]

    @contextmanager
    def one_read(self, connection: Connection | None = None) -> Iterator[None]:
        """Within: the active key is read once (the tokens of one response, one key), on
        ``connection`` when given (the response's own transaction: no second checkout)."""
        reset = _READ_ONCE.set(_OneRead(connection))
        try:
            yield
        finally:
            _READ_ONCE.reset(reset)

    def read_along(self, kid: str | None, pem: str | None) -> None:
        """Within :meth:`one_read`: the active key, as a statement of its transaction
        returned it (``ACTIVE_KEY_COLUMNS``), is the one its tokens are signed with. Nothing
        when there was none: it is created on first use."""
        read = _READ_ONCE.get()
        if read is not None and kid is not None and pem is not None:
            read.keys[self] = self._key(kid, pem)

    def _read_signing_key(self, connection: Connection | None = None) -> RSAKey:
        row = self._active_row(connection)
        if row is None:
            self._create_first_key()
            row = self._active_row()
            if row is None:
                raise LookupError("no active signing key, even after creating the first one")
        return self._key(row.kid, row.private_pem)

    def signing_keyset(self) -> KeySet:
        return KeySet([self.signing_key()])

    def public_keyset(self) -> KeySet:
        """Every published key (active and recently retired), public parts only."""
        query = select(SigningKey.kid, SigningKey.private_pem).where(
            or_(
                SigningKey.status == "active",
                SigningKey.retired_at > func.now() - self.retired_publication,
            )
        ).order_by(SigningKey.id.desc())
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            self.signing_key()
            return self.public_keyset()
        return KeySet([RSAKey.import_key(self._key(r.kid, r.private_pem).as_dict(private=False))
                       for r in rows])

    def jwks(self) -> dict[str, Any]:
        """The JWKS document the provider publishes."""
        return dict(self.public_keyset().as_dict(private=False))

    def rotate(self) -> str:
        """Retire the active key and sign with a fresh one from now on; returns its kid."""
        key = new_key()
        with self.engine.begin() as conn:
            conn.execute(
                update(SigningKey).where(SigningKey.status == "active")
                .values(status="retired", retired_at=func.now())
            )
            conn.execute(insert(SigningKey).values(**_row(key)))
        return _kid(key)

    def prune(self) -> int:
        """Delete retired keys that are no longer published; returns how many."""
        with self.engine.begin() as conn:
            result = conn.execute(
                delete(SigningKey).where(
                    SigningKey.status == "retired",
                    SigningKey.retired_at <= func.now() - self.retired_publication,
                )
            )
        return result.rowcount

    def _active_row(self, connection: Connection | None = None) -> Row[str, str] | None:
        if connection is not None:
            return connection.execute(_ACTIVE_KEY).first()
        with self.engine.connect() as conn:
            return conn.execute(_ACTIVE_KEY).first()

    def _create_first_key(self) -> None:
        # Replicas starting together race here; the partial unique index keeps one winner.
        statement = insert(SigningKey).values(**_row(new_key())).on_conflict_do_nothing(
            index_elements=["status"], index_where=text("status = 'active'")
        )
        with self.engine.begin() as conn:
            conn.execute(statement)

    def _key(self, kid: str, pem: str) -> RSAKey:
        with self._lock:
            if kid not in self._parsed:
                self._parsed[kid] = _parse(kid, pem)
            return self._parsed[kid]
