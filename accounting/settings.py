"""Configuration of the accounting service on top of the platform ``Settings``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from zoneinfo import ZoneInfo

from platform_kit.settings import Settings

CLOSE_TIME_ENV = "ATES_ACCOUNTING_CLOSE_TIME"
MAIL_FROM_ENV = "ATES_ACCOUNTING_MAIL_FROM"
MAIL_RETRY_ENV = "ATES_ACCOUNTING_MAIL_RETRY_SECONDS"
MAIL_RETRY_MAX_ENV = "ATES_ACCOUNTING_MAIL_RETRY_MAX_SECONDS"


@dataclass(frozen=True)
class AccountingSettings:
    """Platform settings plus when the day is closed and how payout mails are sent.

    ``close_time`` is the local time (in ``platform.timezone``) at which the scheduler
    closes the day that just ended; mails that the SMTP server refuses are retried after
    ``mail_retry_seconds``, doubling up to ``mail_retry_max_seconds``.
    """

    platform: Settings
    close_time: time = time(0, 1)
    mail_from: str = "accounting@popug.inc"
    mail_retry_seconds: float = 5.0
    mail_retry_max_seconds: float = 300.0

    def __post_init__(self) -> None:
        if self.mail_retry_seconds <= 0 or self.mail_retry_max_seconds < self.mail_retry_seconds:
            raise ValueError("mail retry delays must be positive, the maximum >= the first")
        ZoneInfo(self.platform.timezone)  # fails early on an unknown time zone

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.platform.timezone)

    @classmethod
    def from_env(
        cls, platform: Settings | None = None, environ: Mapping[str, str] | None = None
    ) -> AccountingSettings:
        env = os.environ if environ is None else environ
        defaults = cls(platform or Settings())
        return cls(
            platform=platform if platform is not None else Settings.from_env(dict(env)),
            close_time=_close_time(env.get(CLOSE_TIME_ENV)) or defaults.close_time,
            mail_from=env.get(MAIL_FROM_ENV, defaults.mail_from),
            mail_retry_seconds=float(env.get(MAIL_RETRY_ENV, defaults.mail_retry_seconds)),
            mail_retry_max_seconds=float(
                env.get(MAIL_RETRY_MAX_ENV, defaults.mail_retry_max_seconds)
            ),
        )


def _close_time(raw: str | None) -> time | None:
    if raw is None:
        return None
    try:
        return time.fromisoformat(raw.strip())
    except ValueError:
        raise ValueError(f"{CLOSE_TIME_ENV} must be a time like 00:01, not {raw!r}") from None
