"""Pure rules about accounts: roles, what they may do, valid emails, names and passwords."""

from __future__ import annotations

import re
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    ACCOUNTANT = "accountant"
    WORKER = "worker"


ROLES: tuple[str, ...] = tuple(role.value for role in Role)

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 256
FULL_NAME_MAX_LENGTH = 200
EMAIL_MAX_LENGTH = 254
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class InvalidAccountData(ValueError):
    """Input that no account may have; the message is meant for the person who typed it."""


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        expected = ", ".join(ROLES)
        raise InvalidAccountData(f"unknown role {value!r}; expected one of {expected}") from None


def normalise_email(value: str) -> str:
    """Emails are compared case-insensitively, so they are stored lower-cased."""
    email = value.strip().lower()
    if len(email) > EMAIL_MAX_LENGTH or not _EMAIL.match(email):
        raise InvalidAccountData(f"{value!r} is not a valid email address")
    return email


def clean_full_name(value: str) -> str:
    name = " ".join(value.split())
    if not name:
        raise InvalidAccountData("full name must not be empty")
    if len(name) > FULL_NAME_MAX_LENGTH:
        raise InvalidAccountData(f"full name must be at most {FULL_NAME_MAX_LENGTH} characters")
    return name


def check_password(password: str) -> None:
    if len(password) < PASSWORD_MIN_LENGTH or not password.strip():
        raise InvalidAccountData(f"password must be at least {PASSWORD_MIN_LENGTH} characters")
    if len(password) > PASSWORD_MAX_LENGTH:
        raise InvalidAccountData(f"password must be at most {PASSWORD_MAX_LENGTH} characters")


def may_manage_accounts(role: str) -> bool:
    return role == Role.ADMIN


def is_eligible_assignee(role: str, active: bool) -> bool:
    """Tasks go to active accounts that are neither admins nor managers."""
    return active and role not in (Role.ADMIN, Role.MANAGER)
