"""The accounting service as ``deploy.serve`` runs it: web app and background workers."""

from __future__ import annotations

import threading
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text

from accounting.consumers import CONSUMED_TOPICS, CONSUMER_NAME, make_handlers
from accounting.ledger import Books
from accounting.mailer import Mailer
from accounting.scheduler import run_scheduler
from accounting.settings import AccountingSettings
from messaging.consumer import ConsumerRuntime
from messaging.db import make_engine, make_session_factory
from messaging.relay import run_relay_forever
from messaging.settings import Settings

SERVICE = "accounting"

Worker = Callable[[threading.Event], None]


def engine_for(settings: Settings) -> Engine:
    return make_engine(settings.database_for(SERVICE))


def consumer_runtime(engine: Engine, books: Books, **options) -> ConsumerRuntime:
    """The consumer that feeds replicas and ledger from auth's and tasks' topics."""
    return ConsumerRuntime(
        CONSUMER_NAME,
        engine,
        books.settings.platform,
        make_handlers(books),
        topics=CONSUMED_TOPICS,
        **options,
    )


def workers(settings: Settings) -> dict[str, Worker]:
    engine = engine_for(settings)
    books = Books.create(AccountingSettings.from_env(settings))

    def relay(stop: threading.Event) -> None:
        run_relay_forever(engine, settings, stop)

    def consumer(stop: threading.Event) -> None:
        consumer_runtime(engine, books).run(stop)

    def scheduler(stop: threading.Event) -> None:
        run_scheduler(engine, books, stop)

    def mailer(stop: threading.Event) -> None:
        Mailer(make_session_factory(engine), books.settings).run(stop)

    return {"relay": relay, "consumer": consumer, "scheduler": scheduler, "mailer": mailer}


def create_app(settings: Settings) -> FastAPI:
    engine = engine_for(settings)
    app = FastAPI(title="aTES accounting")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "detail": str(exc)}, status_code=503)
        return JSONResponse({"status": "ready"})

    return app
