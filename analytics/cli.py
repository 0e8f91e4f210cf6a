"""``ates analytics ...``: commands the ``ates`` console script picks up."""

from __future__ import annotations

import click


@click.group("analytics")
def analytics_group() -> None:
    """Operate the analytics service."""


@analytics_group.command("rebuild")
@click.option("--timeout", type=float, default=600.0, show_default=True,
              help="Seconds the replay may take.")
def rebuild_command(timeout: float) -> None:
    """Empty the projection and replay every topic from the beginning."""
    from analytics.app import engine_for
    from analytics.stream import rebuild
    from messaging.settings import Settings

    settings = Settings.from_env()
    engine = engine_for(settings)
    try:
        read = rebuild(engine, settings, timeout)
    except TimeoutError as error:
        raise click.ClickException(str(error)) from error
    finally:
        engine.dispose()
    click.echo(f"analytics rebuilt from {read} message(s)")


commands = [analytics_group]
