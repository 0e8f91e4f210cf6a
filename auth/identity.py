"""The signed-in account as the OAuth machinery sees it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row

from auth.models import Account


@dataclass(frozen=True)
class Principal:
    account_id: int
    public_id: str
    email: str
    full_name: str
    role: str

    def get_user_id(self) -> str:
        """Authlib's name for the ``sub`` claim: the public id, never the database id."""
        return self.public_id

    @classmethod
    def of(cls, account: Account | Row[*tuple[Any, ...]]) -> Principal:
        """Of an account, or of a row selecting ``PRINCIPAL_COLUMNS``."""
        return cls(account.id, str(account.public_id), account.email, account.full_name,
                   account.role)


# What a query selects to make a principal of each row (``Principal.of``).
PRINCIPAL_COLUMNS = (Account.id, Account.public_id, Account.email, Account.full_name,
                     Account.role)
