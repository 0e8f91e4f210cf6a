"""The ``ates`` command."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import click

from deploy.console import use_stack_env
from deploy.mailsink import mailsink_cli
from deploy.serve import ROLES, available_services, serve, service_ports, worker_names
from event_schemas.cli import schemas_cli
from platform_kit.console import confirmed, progress, progress_option, yes_option
from platform_kit.settings import Settings
from platform_kit.spec import service_spec, service_specs

# Commands that start the platform or one of its parts: they never read a stack file.
_NOT_OPERATOR_COMMANDS = {"up", "serve", "mailsink", "schemas"}


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """aTES: task tracker with accounting.

    Operator commands act on the stack `ates up` last started from this folder: they read
    what it chose from ATES_VAR_DIR/ates.env (default: var/ates.env; variables set in the
    environment win) and say on stderr which stack they act on.
    """
    if ctx.invoked_subcommand not in _NOT_OPERATOR_COMMANDS:
        use_stack_env(ctx)


@main.command()
def up() -> None:
    """Start the whole platform on embedded servers (what `make up` runs)."""
    from deploy.stack import run_stack

    run_stack()


@main.command("serve")
@click.argument("service", type=click.Choice(available_services()))
@click.option("--role", type=click.Choice(ROLES), default="all", show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=None, help="Default: the service's usual port.")
@click.option(
    "--only",
    "only",
    default="",
    help="Comma-separated workers to run (e.g. relay or consumer); default: all of them.",
)
def serve_cmd(service: str, role: str, host: str, port: int | None, only: str) -> None:
    """Run one service's web app and/or workers."""
    settings = Settings.from_env()
    chosen = [name.strip() for name in only.split(",") if name.strip()]
    unknown = set(chosen) - set(worker_names(service, settings))
    if unknown:
        raise click.UsageError(f"{service} has no worker named {', '.join(sorted(unknown))}")
    serve(service, settings, host, port or service_ports()[service], role, chosen)


@main.command()
@click.argument("services", nargs=-1)
def migrate(services: tuple[str, ...]) -> None:
    """Apply database migrations (default: every service)."""
    from platform_kit.migrations import upgrade

    known = available_services()
    unknown = [name for name in services if name not in known]
    if unknown:
        # before anything is created: an unknown name must not leave a database behind
        raise click.ClickException(
            f"unknown service {', '.join(map(repr, unknown))}; the services are "
            f"{', '.join(known)}")
    settings = Settings.from_env()
    for service in services or known:
        spec = service_spec(service)
        upgrade(spec.migrations, spec.database_url(settings))
        click.echo(f"{service}: migrated")


@main.group()
def dlq() -> None:
    """Inspect and redrive dead letters."""


def _dlq_topic(settings: Settings, topic: str) -> str:
    """The Kafka dead-letter topic of a logical TOPIC; a clear error for an unknown one."""
    from platform_kit.settings import LOGICAL_TOPICS

    if topic not in LOGICAL_TOPICS:
        raise click.ClickException(
            f"unknown topic {topic!r}; the topics are {', '.join(LOGICAL_TOPICS)}"
        )
    return settings.dlq_topic(topic)


@contextlib.contextmanager
def _broker_errors(settings: Settings, dlq_topic: str) -> Iterator[None]:
    """Expected failures of the broker as one line each, not a traceback."""
    from confluent_kafka import KafkaException

    from messaging.dlq import UnknownTopic

    try:
        yield
    except UnknownTopic as error:
        raise click.ClickException(
            f"unknown topic: {dlq_topic!r} does not exist on {settings.kafka_bootstrap}"
        ) from error
    except (KafkaException, TimeoutError, RuntimeError) as error:
        raise click.ClickException(
            f"{dlq_topic} on {settings.kafka_bootstrap}: {error}"
        ) from error


@dlq.command("list")
@click.argument("topic")
def dlq_list(topic: str) -> None:
    """List the dead letters of a logical TOPIC (e.g. tasks-lifecycle)."""
    from messaging.dlq import read_dead_letters

    settings = Settings.from_env()
    dlq_topic = _dlq_topic(settings, topic)
    with _broker_errors(settings, dlq_topic):
        letters = read_dead_letters(settings, dlq_topic)
    if not letters:
        # on stderr: stdout stays one JSON object per line for scripts
        click.echo("no dead letters", err=True)
    for letter in letters:
        click.echo(json.dumps(letter.summary()))


@dlq.command("redrive")
@click.argument("topic")
@click.option("--event-id", default=None, help="Only this event.")
@click.option("--consumer", default=None, help="Only letters of this consumer.")
@yes_option
@progress_option
def dlq_redrive(topic: str, event_id: str | None, consumer: str | None, yes: bool,
                show_progress: bool | None) -> None:
    """Republish the dead letters of a logical TOPIC not redriven yet, each event once to
    the consumer that failed it (a second run does nothing)."""
    from messaging.dlq import redrive

    settings = Settings.from_env()
    dlq_topic = _dlq_topic(settings, topic)
    only = "".join([f" of event {event_id}" if event_id else "",
                    f" of consumer {consumer}" if consumer else ""])
    confirmed(f"Republish the dead letters{only} in {dlq_topic} not redriven yet to their "
              f"topics on {settings.kafka_bootstrap}: their consumers handle them again", yes)
    with _broker_errors(settings, dlq_topic), \
            progress("redriving", None, "letters", show_progress) as bar:
        report = redrive(settings, dlq_topic, event_id=event_id, consumer=consumer,
                         progress=bar)
    click.echo(f"redriven: {len(report.redriven)}")
    for letter in report.truncated:
        click.echo(
            f"not redriven, truncated letter of {letter.consumer} (event {letter.event_id}): "
            f"its original is at {letter.topic} partition {letter.partition} "
            f"offset {letter.offset}",
            err=True,
        )


@main.group()
def consumers() -> None:
    """Consumer groups."""


@consumers.command("reset")
@click.argument("service", type=click.Choice(
    [spec.name for spec in service_specs() if spec.consumer is not None]))
@yes_option
@progress_option
def consumers_reset(service: str, yes: bool, show_progress: bool | None) -> None:
    """Move SERVICE's consumer group to the beginning of its topics (stop it first);
    on its next start it reads every event again, and its inbox skips them all."""
    from confluent_kafka import KafkaException

    from messaging.groups import GroupInUse, consumer_group_of, reset_to_beginning

    settings = Settings.from_env()
    group, topics = consumer_group_of(service, settings)
    confirmed(f"Move consumer group {group} on {settings.kafka_bootstrap} to the beginning of "
              f"{', '.join(topics)}: on its next start {service} reads every event again", yes)
    try:
        with progress("resetting", None, "partitions", show_progress) as bar:
            offsets = reset_to_beginning(settings, group, topics, progress=bar)
    except GroupInUse as error:
        raise click.ClickException(str(error)) from error
    except (KafkaException, RuntimeError) as error:
        raise click.ClickException(f"{group} on {settings.kafka_bootstrap}: {error}") from error
    click.echo(f"{group}: {len(offsets)} partitions reset to the beginning")


@main.command()
@click.argument("services", nargs=-1, type=click.Choice(available_services()))
@click.option("--outbox-older-than", "outbox_age", default="7d", show_default=True,
              help="Delete outbox events delivered longer ago than this (90s, 15m, 12h, 7d).")
@click.option("--inbox-older-than", "inbox_age", default=None,
              help="Also delete inbox records of events handled longer ago than this.")
@yes_option
@progress_option
def prune(services: tuple[str, ...], outbox_age: str, inbox_age: str | None, yes: bool,
          show_progress: bool | None) -> None:
    """Delete delivered outbox events (and, if asked, old inbox records)."""
    from messaging.retention import parse_age, prune_inbox, prune_outbox
    from platform_kit.db import make_engine

    try:
        ages = parse_age(outbox_age), parse_age(inbox_age) if inbox_age else None
    except ValueError as error:
        raise click.BadParameter(str(error)) from error
    settings = Settings.from_env()
    chosen = services or available_services()
    what = f"outbox events delivered more than {outbox_age} ago"
    if inbox_age:
        what += f" and inbox records of events handled more than {inbox_age} ago"
    confirmed(f"Delete {what} in the databases of {', '.join(chosen)} on "
              f"{_server(settings.database_url)}", yes)
    for service in chosen:
        engine = make_engine(service_spec(service).database_url(settings), pool_size=1)
        try:
            with progress(f"{service} outbox", None, "rows", show_progress) as bar:
                line = f"{service}: outbox {prune_outbox(engine, ages[0], progress=bar)}"
            if ages[1] is not None:
                with progress(f"{service} inbox", None, "rows", show_progress) as bar:
                    line += f", inbox {prune_inbox(engine, ages[1], progress=bar)}"
        finally:
            engine.dispose()
        click.echo(f"{line} deleted")


@main.group("outbox")
def outbox_group() -> None:
    """The services' outboxes."""


@outbox_group.command("replay")
@click.option("--since", "since_text", required=True,
              help="Events sent since this time: ISO 8601 (UTC unless a zone is given, "
                   "e.g. 2026-12-03T06:00) or an age (90s, 15m, 12h, 7d).")
@click.option("--service", "services", multiple=True,
              help="Only this service's outbox (repeatable; default: every service).")
@click.option("--topic", "topics", multiple=True,
              help="Only events of this logical topic (repeatable; default: every topic).")
@yes_option
def outbox_replay(since_text: str, services: tuple[str, ...], topics: tuple[str, ...],
                  yes: bool) -> None:
    """Publish again the events the outboxes still hold that were sent since a time (a
    topic lost on the broker): they are marked unsent and each service's relay publishes
    them again, in order; consumers skip those they already applied."""
    from messaging.replay import mark_unsent, parse_since
    from platform_kit.db import make_engine
    from platform_kit.settings import LOGICAL_TOPICS

    try:
        since = parse_since(since_text)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    chosen = _known(services, available_services(), "service")
    settings = Settings.from_env()
    only = [settings.topic(t) for t in _known(topics, list(LOGICAL_TOPICS), "topic")] \
        if topics else None
    confirmed(f"Mark the outbox events sent since {since.isoformat(timespec='seconds')}"
              f"{' to ' + ', '.join(topics) if topics else ''} in the databases of "
              f"{', '.join(chosen)} on {_server(settings.database_url)} unsent: their relays "
              f"publish them again to {settings.kafka_bootstrap}", yes)
    for service in chosen:
        engine = make_engine(service_spec(service).database_url(settings), pool_size=1)
        try:
            marked = mark_unsent(engine, since, only)
        finally:
            engine.dispose()
        detail = ", ".join(f"{topic} {count}" for topic, count in sorted(marked.items()))
        click.echo(f"{service}: {marked.total()} event(s) to publish again"
                   + (f" ({detail})" if detail else ""))


def _known(names: tuple[str, ...], known: list[str], what: str) -> list[str]:
    """``names`` (default: all ``known``); one line naming the unknown ones otherwise."""
    unknown = [name for name in names if name not in known]
    if unknown:
        raise click.ClickException(
            f"unknown {what} {', '.join(map(repr, unknown))}; the {what}s are {', '.join(known)}")
    return list(names or known)


def _server(database_url: str) -> str:
    """host:port of a database URL (no user, no password)."""
    from urllib.parse import urlsplit

    parts = urlsplit(database_url)
    return f"{parts.hostname}:{parts.port or 5432}"


main.add_command(schemas_cli)
main.add_command(mailsink_cli)


def _add_service_commands() -> None:
    """Services contribute top-level commands through their spec's ``commands``."""
    for spec in service_specs():
        for command in spec.commands() if spec.commands else ():
            main.add_command(command)


_add_service_commands()

if __name__ == "__main__":
    main()
