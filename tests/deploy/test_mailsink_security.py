"""The mail page carries the security headers of every aTES page and renders under them."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import httpx

from deploy.mailsink import MailSink
from tests.security_headers import CspViolations, assert_secured


def _send(sink: MailSink) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = ("a@popug.test", "b@popug.test",
                                                          "Paid <today>")
    message.set_content("You earned $12.00.")
    with smtplib.SMTP("127.0.0.1", sink.smtp_port) as smtp:
        smtp.send_message(message)


def test_every_answer_of_the_mail_page_carries_the_security_headers():
    with MailSink(smtp_port=0, http_port=0) as sink:
        for path in ("/", "/api/messages", "/healthz", "/nowhere"):
            assert_secured(httpx.get(f"{sink.http_url}{path}"))


def test_the_mail_page_renders_without_a_refused_style(browser_context):
    with MailSink(smtp_port=0, http_port=0) as sink:
        _send(sink)
        page = browser_context().new_page()
        violations = CspViolations(page)
        page.goto(sink.http_url)

        assert "Paid <today>" in page.inner_text("body")
        assert violations.messages == []
