"""Mails of the provider (password reset links), sent over the platform's SMTP server
(``ATES_SMTP_URL``: ``smtp://[user:password@]host[:port]`` or ``smtps://...``)."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import unquote, urlsplit

import structlog

log = structlog.get_logger("auth.mail")


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str


class Mailer:
    def __init__(self, smtp_url: str, sender: str, timeout: float = 10.0):
        parts = urlsplit(smtp_url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"not an SMTP URL: {smtp_url!r}")
        self.ssl = parts.scheme == "smtps"
        self.host = parts.hostname
        self.port = parts.port or (465 if self.ssl else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.sender = sender
        self.timeout = timeout

    def send(self, mail: Mail) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain="ates.popug.inc")
        message.set_content(mail.body)
        client_class = smtplib.SMTP_SSL if self.ssl else smtplib.SMTP
        with client_class(self.host, self.port, timeout=self.timeout) as client:
            if self.username:
                client.login(self.username, self.password or "")
            client.send_message(message)

    def send_quietly(self, mail: Mail) -> None:
        """Send, logging a failure instead of raising (the request has been answered)."""
        try:
            self.send(mail)
        except (OSError, smtplib.SMTPException) as error:
            log.error("mail not sent", subject=mail.subject, error=str(error))
