"""``ates analytics ...``: commands the ``ates`` console script picks up."""

from __future__ import annotations

import click

from deploy.console import confirmed, progress, progress_option, yes_option


@click.group("analytics")
def analytics_group() -> None:
    """Operate the analytics service."""


@analytics_group.command("rebuild")
@click.option("--timeout", type=float, default=600.0, show_default=True,
              help="Seconds the replay may take.")
@yes_option
@progress_option
def rebuild_command(timeout: float, yes: bool, show_progress: bool | None) -> None:
    """Empty the projection and replay every topic from the beginning."""
    from analytics.app import engine_for
    from analytics.stream import rebuild
    from messaging.settings import Settings

    settings = Settings.from_env()
    engine = engine_for(settings)
    url = engine.url
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


commands = [analytics_group]
