"""``ates analytics ...``: commands the ``ates`` console script picks up."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from platform_kit.console import confirmed, progress, progress_option, yes_option

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from platform_kit.settings import Settings


@click.group("analytics")
def analytics_group() -> None:
    """Operate the analytics service."""


@analytics_group.command("rebuild")
@click.option("--timeout", type=float, default=600.0, show_default=True,
              help="Seconds the replay may take.")
@click.option("--force", is_flag=True,
              help="Rebuild even when the topics no longer reach back to the events the "
                   "dashboard holds (a memory-only broker that restarted).")
@yes_option
@progress_option
def rebuild_command(timeout: float, force: bool, yes: bool, show_progress: bool | None) -> None:
    """Empty the projection and replay every topic from the beginning."""
    from analytics.app import engine_for
    from analytics.rebuild_guard import TopicsForgot, check_topics_reach_back
    from analytics.stream import rebuild
    from platform_kit.settings import Settings

    settings = Settings.from_env()
    engine = engine_for(settings)
    url = engine.url
    if not force:
        _refuse_when_topics_forgot(engine, settings, check_topics_reach_back, TopicsForgot)
    confirmed(f"Empty the analytics dashboard in database {url.database} on "
              f"{url.host}:{url.port} and replay every event from {settings.kafka_bootstrap}"
              " (the dashboard is incomplete until the replay ends)", yes)
    try:
        with progress("replaying", None, "events", show_progress) as bar:
            read = rebuild(engine, settings, timeout, progress=bar)
    except TimeoutError as error:
        raise click.ClickException(str(error)) from error
    finally:
        engine.dispose()
    click.echo(f"analytics rebuilt from {read} message(s)")


def _refuse_when_topics_forgot(engine: Engine, settings: Settings,
                               check: Callable[[Engine, Settings], None],
                               forgot: type[Exception]) -> None:
    from confluent_kafka import KafkaException

    try:
        check(engine, settings)
    except forgot as error:
        engine.dispose()
        raise click.ClickException(f"refusing to rebuild: {error}") from error
    except KafkaException as error:
        engine.dispose()
        raise click.ClickException(
            f"cannot read the topics on {settings.kafka_bootstrap}: {error}") from error


commands: list[click.Command] = [analytics_group]
