"""Sends the payout mails of the mail outbox over SMTP.

A mail is claimed with ``FOR UPDATE SKIP LOCKED`` (so several mailers never send the
same one), sent, and marked sent in the same database transaction, only after the SMTP
server accepted it. While the server refuses or cannot be reached, the mail is kept with
its next attempt pushed back, doubling the delay each time (``domain.retry_delay``).
Closing a day only queues the mails; each is composed when it is first sent.
Each mail carries a Message-ID derived from its payout, the same on every attempt.
"""

from __future__ import annotations

import smtplib
import threading
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import unquote, urlsplit

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from accounting import domain, metrics, payout_mail
from accounting.models import Account, Payout, PayoutEmail
from accounting.settings import AccountingSettings

log = structlog.get_logger("accounting.mailer")

MESSAGE_ID_DOMAIN = "ates.popug.inc"


class RecipientUnknown(Exception):
    """The account's email has not reached the replica yet."""


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    ssl: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        """``smtp://[user:password@]host[:port]`` or ``smtps://...``."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"not an SMTP URL: {url!r}")
        ssl = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if ssl else 25),
            ssl=ssl,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def connect(self, timeout: float = 10.0) -> smtplib.SMTP:
        client_class = smtplib.SMTP_SSL if self.ssl else smtplib.SMTP
        client = client_class(self.host, self.port, timeout=timeout)
        if self.username:
            client.login(self.username, self.password or "")
        return client


class Mailer:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: AccountingSettings,
        idle_sleep: float = 1.0,
    ):
        self.sessions = sessions
        self.settings = settings
        self.server = SmtpServer.from_url(settings.platform.smtp_url)
        self.idle_sleep = idle_sleep

    def run(self, stop: threading.Event) -> None:
        log.info("mailer started")
        while not stop.is_set():
            try:
                sent = self.run_once()
            except Exception:
                log.exception("mailer round failed; retrying")
                sent = 0
            if not sent:
                stop.wait(self.idle_sleep)
        log.info("mailer stopped")

    def run_once(self, limit: int = 1000) -> int:
        """Send due mails until none is left, one fails, or ``limit`` were sent."""
        client: smtplib.SMTP | None = None
        sent = 0
        try:
            while sent < limit:
                with self.sessions() as session, session.begin():
                    mail = _claim_due_mail(session)
                    if mail is None:
                        break
                    try:
                        client = client or self.server.connect()
                        self._send(client, mail, session)
                    except (smtplib.SMTPException, OSError, RecipientUnknown) as error:
                        self._postpone(session, mail, error)
                        _drop(client)
                        client = None
                        break
                sent += 1
                metrics.EMAILS_SENT.inc()
        finally:
            _drop(client, polite=True)
        return sent

    def _send(self, client: smtplib.SMTP, mail: PayoutEmail, session: Session) -> None:
        recipient = mail.recipient or session.scalar(
            select(Account.email)
            .join(Payout, Payout.account_id == Account.public_id)
            .where(Payout.id == mail.payout_id)
        )
        if not recipient:
            raise RecipientUnknown("the account's email is not known yet")
        _compose_once(session, mail)
        payout_id = session.scalar(select(Payout.public_id).where(Payout.id == mail.payout_id))
        client.send_message(self._message(mail, recipient, f"payout-{payout_id}"))
        session.execute(
            update(PayoutEmail)
            .where(PayoutEmail.payout_id == mail.payout_id)
            .values(
                recipient=recipient,
                sent_at=func.now(),
                attempts=PayoutEmail.attempts + 1,
                last_error=None,
            )
        )

    def _message(self, mail: PayoutEmail, recipient: str, message_key: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.settings.mail_from
        message["To"] = recipient
        message["Subject"] = mail.subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = f"<{message_key}@{MESSAGE_ID_DOMAIN}>"
        message.set_content(mail.text_body)
        message.add_alternative(mail.html_body, subtype="html")
        return message

    def _postpone(self, session: Session, mail: PayoutEmail, error: Exception) -> None:
        attempts = mail.attempts + 1
        metrics.EMAILS_POSTPONED.inc()
        delay = domain.retry_delay(
            attempts, self.settings.mail_retry_seconds, self.settings.mail_retry_max_seconds
        )
        log.warning(
            "payout mail not sent; will retry",
            mail=mail.payout_id,
            attempts=attempts,
            retry_in=delay,
            error=str(error),
        )
        session.execute(
            update(PayoutEmail)
            .where(PayoutEmail.payout_id == mail.payout_id)
            .values(
                attempts=attempts,
                next_attempt_at=func.now() + timedelta(seconds=delay),
                last_error=f"{type(error).__name__}: {error}"[:1000],
            )
        )


def _claim_due_mail(session: Session) -> PayoutEmail | None:
    return session.scalar(
        select(PayoutEmail)
        .where(PayoutEmail.sent_at.is_(None), PayoutEmail.next_attempt_at <= func.now())
        .order_by(PayoutEmail.next_attempt_at, PayoutEmail.payout_id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )


def _compose_once(session: Session, mail: PayoutEmail) -> None:
    """The mail's text, composed once its recipient is known; retries send the same."""
    if mail.subject is None:
        payout_mail.compose(session, mail.payout_id)
        session.refresh(mail)


def _drop(client: smtplib.SMTP | None, polite: bool = False) -> None:
    """Close an SMTP connection (saying goodbye when it is still usable)."""
    if client is None:
        return None
    try:
        if polite:
            client.quit()
        else:
            client.close()
    except (smtplib.SMTPException, OSError):
        client.close()
    return None
