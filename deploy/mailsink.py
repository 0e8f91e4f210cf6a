"""SMTP sink with a small web page, for the dev stack and the tests.

`MailSink` runs a real SMTP server (aiosmtpd) and an HTTP server (FastAPI on uvicorn), both in
background threads. Every received mail is kept in memory and can be read from Python
(`messages()`, `wait_for()`), from `GET /api/messages`, or from the HTML page at `/`.

`pause()` / `resume()` simulate a mail server outage: while paused the SMTP server answers
`421 Service not available` to MAIL, RCPT and DATA, so nothing is accepted.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import click
import httpx
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader

from platform_kit.security_headers import PagePolicy, SecurityHeaders, inline_style_hashes

Mail = dict[str, Any]
Predicate = Callable[[list[Mail]], bool]

UNAVAILABLE = "421 Service not available"
TEMPLATES_DIR = Path(__file__).parent / "templates"
STARTUP_TIMEOUT = 10.0


# --------------------------------------------------------------------------- storage


class MailStore:
    """Thread-safe, in-memory list of received mails (oldest first)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mails: list[Mail] = []
        self._next_id = 1

    def add(self, mail: Mail) -> Mail:
        with self._lock:
            stored = {"id": self._next_id, **mail}
            self._next_id += 1
            self._mails.append(stored)
            return _copy_mail(stored)

    def all(self) -> list[Mail]:
        with self._lock:
            return [_copy_mail(mail) for mail in self._mails]

    def clear(self) -> None:
        with self._lock:
            self._mails.clear()


def _copy_mail(mail: Mail) -> Mail:
    return {**mail, "to": list(mail["to"])}


# --------------------------------------------------------------------------- parsing


def parse_mail(content: bytes, mail_from: str | None, rcpt_tos: list[str]) -> Mail:
    """Turn raw message bytes plus the SMTP envelope into the stored dict (without id)."""
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return {
        "from": str(message.get("From") or mail_from or ""),
        "to": list(rcpt_tos),
        "subject": str(message.get("Subject") or ""),
        "text": _body(message, "plain") or "",
        "html": _body(message, "html"),
        "received_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }


def _body(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None:
        return None
    try:
        content = str(part.get_content())
    except (LookupError, ValueError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content.replace("\r\n", "\n")


# --------------------------------------------------------------------------- SMTP side


class SinkHandler:
    """aiosmtpd handler: stores every mail, or refuses everything while paused."""

    def __init__(self, store: MailStore) -> None:
        self.store = store
        self.paused = threading.Event()

    async def handle_MAIL(  # noqa: N802 - aiosmtpd hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self.paused.is_set():
            return UNAVAILABLE
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.paused.is_set():
            return UNAVAILABLE
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.paused.is_set():
            return UNAVAILABLE
        content = envelope.original_content or envelope.content or b""
        raw = content if isinstance(content, bytes) else content.encode("utf-8")
        self.store.add(parse_mail(raw, envelope.mail_from, envelope.rcpt_tos))
        return "250 Message accepted for delivery"


class SinkController(Controller):
    """Controller that supports port 0: the bound port is written back to `self.port`."""

    def _create_server(self) -> Any:
        return self._bind_and_record_port()

    async def _bind_and_record_port(self) -> asyncio.Server:
        server = await Controller._create_server(self)
        assert isinstance(server, asyncio.Server)  # a TCP server: it has sockets
        self.port = server.sockets[0].getsockname()[1]
        return server


# --------------------------------------------------------------------------- HTTP side


def create_app(store: MailStore) -> FastAPI:
    """FastAPI app serving the JSON API and the HTML page for `store`."""
    app = FastAPI(title="mail sink", docs_url=None, redoc_url=None, openapi_url=None)
    policy = PagePolicy(style_hashes=inline_style_hashes(TEMPLATES_DIR / "mailsink.html"))
    app.add_middleware(SecurityHeaders, policy=policy)
    templates = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=True)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/messages")
    def list_messages() -> list[Mail]:
        return store.all()

    @app.delete("/api/messages")
    def clear_messages() -> dict[str, str]:
        store.clear()
        return {"status": "cleared"}

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        mails = [_view(mail) for mail in reversed(store.all())]
        return templates.get_template("mailsink.html").render(mails=mails)

    return app


def _view(mail: Mail) -> Mail:
    received = datetime.fromisoformat(mail["received_at"])
    return {**mail, "time": received.strftime("%Y-%m-%d %H:%M:%S UTC"), "to": ", ".join(mail["to"])}


class _HttpServer:
    """uvicorn running `app` in a daemon thread on a socket bound up front."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.sock = _bind_socket(host, port)
        self.port: int = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def start(self, health_url: str) -> None:
        self.thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if not self.thread.is_alive():
                raise RuntimeError("mail sink HTTP server exited during startup")
            if self.server.started and _answers(health_url):
                return
            time.sleep(0.02)
        self.stop()
        raise TimeoutError("mail sink HTTP server did not start in time")

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=STARTUP_TIMEOUT)
        self.sock.close()


def _bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _url_host(host: str) -> str:
    """Host as it goes into a URL; a wildcard bind address is reached via loopback."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


# --------------------------------------------------------------------------- the sink


class MailSink:
    """SMTP server plus web page keeping every received mail in memory."""

    def __init__(self, host: str = "127.0.0.1", smtp_port: int = 1025, http_port: int = 8025):
        self.host = host
        self.smtp_port = smtp_port
        self.http_port = http_port
        self._store = MailStore()
        self._handler = SinkHandler(self._store)
        self._smtp: SinkController | None = None
        self._http: _HttpServer | None = None

    @property
    def smtp_url(self) -> str:
        return f"smtp://{_url_host(self.host)}:{self.smtp_port}"

    @property
    def http_url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.http_port}"

    def start(self) -> None:
        """Start both servers; returns once the HTTP page answers."""
        if self._smtp is not None:
            raise RuntimeError("mail sink already started")
        smtp = SinkController(self._handler, hostname=self.host, port=self.smtp_port)
        smtp.start()
        self._smtp = smtp
        self.smtp_port = smtp.port
        try:
            http = _HttpServer(create_app(self._store), self.host, self.http_port)
            self.http_port = http.port
            http.start(f"{self.http_url}/healthz")
        except BaseException:
            self.stop()
            raise
        self._http = http

    def stop(self) -> None:
        """Stop both servers; safe to call more than once."""
        http, self._http = self._http, None
        smtp, self._smtp = self._smtp, None
        if http is not None:
            http.stop()
        if smtp is not None:
            smtp.stop()

    def __enter__(self) -> MailSink:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ----------------------------------------------------------------- outage simulation

    def pause(self) -> None:
        """Refuse all mail with `421 Service not available` until `resume()`."""
        self._handler.paused.set()

    def resume(self) -> None:
        """Accept mail again (same port)."""
        self._handler.paused.clear()

    @property
    def paused(self) -> bool:
        return self._handler.paused.is_set()

    # ----------------------------------------------------------------- received mail

    def messages(self) -> list[Mail]:
        """All received mails, oldest first (copies)."""
        return self._store.all()

    def clear(self) -> None:
        self._store.clear()

    def wait_for(
        self, predicate: Predicate, timeout: float = 10.0, interval: float = 0.05
    ) -> list[Mail]:
        """Poll until `predicate(messages)` is true and return those messages."""
        deadline = time.monotonic() + timeout
        while True:
            mails = self.messages()
            if predicate(mails):
                return mails
            if time.monotonic() >= deadline:
                raise TimeoutError(f"mail sink: condition not met within {timeout}s")
            time.sleep(interval)


# --------------------------------------------------------------------------- entry points


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_mailsink(host: str, smtp_port: int, http_port: int) -> None:
    """Run a sink until SIGTERM or SIGINT (blocking; must be called from the main thread)."""
    stop = threading.Event()
    with _stop_on_signals(stop), MailSink(host, smtp_port, http_port) as sink:
        print(f"mail sink: {sink.smtp_url}, page {sink.http_url}", flush=True)
        while not stop.wait(0.5):
            pass


@click.command("mailsink")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--smtp-port", default=1025, show_default=True, type=int, help="SMTP port.")
@click.option("--http-port", default=8025, show_default=True, type=int, help="Web page port.")
def mailsink_cli(host: str, smtp_port: int, http_port: int) -> None:
    """Run an SMTP sink that shows received mail on a web page."""
    run_mailsink(host, smtp_port, http_port)


if __name__ == "__main__":
    mailsink_cli()
