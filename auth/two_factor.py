"""Second factor: time-based one-time passwords (TOTP, RFC 6238) and recovery codes.

A code is accepted for the current 30-second step and one step either side (clock drift),
and never twice: the last accepted step is kept and a code of that step or an earlier one
is refused. Recovery codes are random, single-use and stored as digests. The enrolment
QR code is drawn here as SVG (segno), so the secret never leaves the provider.
"""

from __future__ import annotations

import io
import secrets
import time

import pyotp
import segno

from auth.tokens import digest

ISSUER_NAME = "aTES"
RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no look-alikes (0/o, 1/l/i)
_DRIFT_STEPS = 1


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER_NAME)


def qr_svg(uri: str) -> bytes:
    """The ``otpauth://`` URI as a standalone SVG image."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", scale=5, border=2, xmldecl=True,
                                    title="Two-factor enrolment QR code")
    return out.getvalue()


def normalise(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def accepted_step(secret: str, code: str, last_step: int | None,
                  now: float | None = None) -> int | None:
    """The time step ``code`` belongs to, if it is valid and newer than ``last_step``."""
    code = normalise(code)
    if len(code) != 6 or not (code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    current = int((time.time() if now is None else now) // totp.interval)
    for step in range(current - _DRIFT_STEPS, current + _DRIFT_STEPS + 1):
        if last_step is not None and step <= last_step:
            continue
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_recovery_codes() -> list[str]:
    """Ten codes like ``k7m2p-x9qrt`` (50 bits each)."""
    def one() -> str:
        chars = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
        return f"{chars[:5]}-{chars[5:]}"

    return [one() for _ in range(RECOVERY_CODE_COUNT)]


def recovery_digest(code: str) -> str:
    return digest(normalise(code))


def looks_like_recovery_code(code: str) -> bool:
    return len(normalise(code)) == 10
