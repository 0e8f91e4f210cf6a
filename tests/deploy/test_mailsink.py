"""Tests for the SMTP sink: real SMTP in, real HTTP out."""

from __future__ import annotations

import os
import select
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from deploy.mailsink import MailSink

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sink() -> Iterator[MailSink]:
    with MailSink(smtp_port=0, http_port=0) as running:
        yield running


def _send(sink: MailSink, subject: str, to: list[str], html: str | None = None) -> None:
    message = EmailMessage()
    message["From"] = "aTES <noreply@ates.test>"
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message.set_content("Hello,\nyour task is done.\n")
    if html is not None:
        message.add_alternative(html, subtype="html")
    with smtplib.SMTP(sink.host, sink.smtp_port, timeout=5) as client:
        client.send_message(message, to_addrs=to)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_ports_and_urls(sink: MailSink) -> None:
    assert sink.smtp_port > 0 and sink.http_port > 0
    assert sink.smtp_url == f"smtp://127.0.0.1:{sink.smtp_port}"
    assert sink.http_url == f"http://127.0.0.1:{sink.http_port}"
    assert httpx.get(f"{sink.http_url}/healthz").json() == {"status": "ok"}


def test_multipart_mail_is_listed_over_http(sink: MailSink) -> None:
    to = ["popug@ates.test", "admin@ates.test"]
    _send(sink, "Task done", to, html="<p>your task is <b>done</b></p>")

    response = httpx.get(f"{sink.http_url}/api/messages")

    assert response.status_code == 200
    [mail] = response.json()
    assert set(mail) == {"id", "from", "to", "subject", "text", "html", "received_at"}
    assert mail["id"] == 1
    assert mail["from"] == "aTES <noreply@ates.test>"
    assert mail["to"] == to
    assert mail["subject"] == "Task done"
    assert mail["text"] == "Hello,\nyour task is done.\n"
    assert "<b>done</b>" in mail["html"]
    assert mail["received_at"].endswith("+00:00")
    assert sink.messages() == [mail]


def test_plain_mail_has_null_html_and_ids_increase(sink: MailSink) -> None:
    _send(sink, "first", ["a@ates.test"])
    _send(sink, "second", ["b@ates.test"])

    mails = httpx.get(f"{sink.http_url}/api/messages").json()

    assert [(m["id"], m["subject"], m["html"]) for m in mails] == [
        (1, "first", None),
        (2, "second", None),
    ]


def test_recipients_come_from_the_envelope(sink: MailSink) -> None:
    message = EmailMessage()
    message["From"] = "noreply@ates.test"
    message["To"] = "visible@ates.test"
    message["Subject"] = "with bcc"
    message.set_content("hi")
    with smtplib.SMTP(sink.host, sink.smtp_port, timeout=5) as client:
        client.send_message(message, to_addrs=["visible@ates.test", "hidden@ates.test"])

    [mail] = sink.wait_for(lambda ms: len(ms) == 1, timeout=2)

    assert mail["to"] == ["visible@ates.test", "hidden@ates.test"]
    assert mail["text"] == "hi\n"


def test_page_lists_mail_and_escapes(sink: MailSink) -> None:
    empty = httpx.get(f"{sink.http_url}/")
    assert empty.status_code == 200
    assert "No mail received yet" in empty.text

    _send(sink, "Weekly report", ["a@ates.test"])
    _send(sink, "<script>alert(1)</script>", ["b@ates.test"])
    page = httpx.get(f"{sink.http_url}/")

    assert page.headers["content-type"].startswith("text/html")
    assert "Weekly report" in page.text
    assert "<details>" in page.text
    assert "your task is done." in page.text
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "No mail received yet" not in page.text


def test_delete_clears(sink: MailSink) -> None:
    _send(sink, "to be removed", ["a@ates.test"])
    assert len(sink.messages()) == 1

    response = httpx.delete(f"{sink.http_url}/api/messages")

    assert response.status_code == 200
    assert httpx.get(f"{sink.http_url}/api/messages").json() == []
    assert sink.messages() == []


def test_clear_from_python(sink: MailSink) -> None:
    _send(sink, "x", ["a@ates.test"])
    sink.clear()
    assert sink.messages() == []


def test_pause_refuses_and_resume_delivers(sink: MailSink) -> None:
    port = sink.smtp_port
    sink.pause()
    assert sink.paused
    with pytest.raises(smtplib.SMTPException):
        _send(sink, "during outage", ["a@ates.test"])
    assert sink.messages() == []

    sink.resume()
    _send(sink, "after outage", ["a@ates.test"])

    assert sink.smtp_port == port
    assert [m["subject"] for m in sink.messages()] == ["after outage"]


def test_wait_for_returns_when_predicate_holds(sink: MailSink) -> None:
    _send(sink, "hello", ["a@ates.test"])
    mails = sink.wait_for(lambda ms: any(m["subject"] == "hello" for m in ms), timeout=2)
    assert len(mails) == 1


def test_wait_for_times_out(sink: MailSink) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        sink.wait_for(lambda ms: len(ms) > 0, timeout=0.3)
    assert time.monotonic() - started < 2


def test_stop_releases_ports() -> None:
    sink = MailSink(smtp_port=0, http_port=0)
    sink.start()
    smtp_port, http_port = sink.smtp_port, sink.http_port
    sink.stop()
    sink.stop()
    for port in (smtp_port, http_port):
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            pass


def test_run_mailsink_subprocess_exits_cleanly_on_sigterm() -> None:
    smtp_port, http_port = _free_port(), _free_port()
    code = (
        "from deploy.mailsink import run_mailsink; "
        f"run_mailsink('127.0.0.1', {smtp_port}, {http_port})"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        assert ready, "mail sink subprocess printed nothing"
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"mail sink subprocess exited: {proc.communicate(timeout=5)[1]}")
        assert line.strip() == (
            f"mail sink: smtp://127.0.0.1:{smtp_port}, page http://127.0.0.1:{http_port}"
        )
        health = httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=5)
        assert health.json() == {"status": "ok"}

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
