"""``ates token`` and ``ates auth ...``: commands the ``ates`` console script picks up."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from auth.config import AuthConfig
from auth_client.settings import CLI_CLIENT_ID, auth_url
from auth_client.token_flow import TokenFlowError, obtain_tokens

if TYPE_CHECKING:
    from auth.keys import SigningKeys


@click.command("token")
@click.option("--email", required=True, help="Account to sign in as.")
@click.option("--password", prompt=True, hide_input=True, help="Asked for when omitted.")
@click.option("--auth-url", "provider", default=None,
              help="Provider URL (default: ATES_AUTH_URL).")
@click.option("--client-id", default=CLI_CLIENT_ID, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the whole token response.")
@click.option("--code", default=None,
              help="Two-factor code (authenticator app or recovery code), if the account has one.")
def token(email: str, password: str, provider: str | None, client_id: str,
          as_json: bool, code: str | None) -> None:
    """Sign in (code + PKCE, loopback redirect) and print an access token."""
    import httpx

    url = provider or auth_url()
    try:
        tokens = obtain_tokens(url, email, password, client_id, code=code)
    except httpx.TransportError as error:
        raise click.ClickException(
            f"cannot reach the auth service at {url} ({error or type(error).__name__}); "
            "is the stack up? (ATES_AUTH_URL or --auth-url name another)") from error
    except (TokenFlowError, OSError, httpx.HTTPError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(json.dumps(tokens, indent=2) if as_json else tokens["access_token"])


@click.group("auth")
def auth_group() -> None:
    """Manage the auth service: signing keys, demo accounts."""


def _signing_keys() -> SigningKeys:
    from auth.keys import SigningKeys
    from platform_kit.db import make_engine
    from platform_kit.settings import Settings

    engine = make_engine(Settings.from_env().database_for("auth"), pool_size=1)
    return SigningKeys(engine, AuthConfig.from_env().retired_key_publication)


@auth_group.command("rotate-key")
def rotate_key() -> None:
    """Sign new tokens with a fresh key; the old one stays published until its tokens expire."""
    click.echo(f"signing with new key {_signing_keys().rotate()}")


@auth_group.command("prune-keys")
def prune_keys() -> None:
    """Delete retired keys that are no longer published."""
    click.echo(f"pruned {_signing_keys().prune()} key(s)")


@auth_group.command("seed")
@click.option("--admin-password", envvar="ATES_ADMIN_PASSWORD", default=None,
              help="Password of admin@popug.inc (default: ATES_ADMIN_PASSWORD, else generated).")
def seed(admin_password: str | None) -> None:
    """Create the demo accounts that are missing and print their logins."""
    from auth.seed import seed_demo_accounts
    from platform_kit.settings import Settings

    for login in seed_demo_accounts(Settings.from_env(), admin_password):
        password = login["password"] or "(unchanged)"
        click.echo(f"{login['role']:<10} {login['email']:<24} {password}")


@auth_group.command("set-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True,
              help="Read the new password from the first line of stdin (for scripts).")
def set_password(email: str, password_stdin: bool) -> None:
    """Set the password of the account EMAIL (asked twice, never taken from the command
    line: it would stay in the shell's history)."""
    import getpass
    import sys

    from auth.domain import InvalidAccountData
    from auth.queries import AccountQueries
    from auth.service import AccountChanges, AccountService
    from messaging.outbox import Outbox
    from platform_kit.db import make_engine, make_session_factory
    from platform_kit.settings import Settings

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif not sys.stdin.isatty():
        raise click.ClickException("no terminal to ask the password on; use --password-stdin")
    else:
        password = getpass.getpass(f"New password for {email}: ")
        if getpass.getpass("Again: ") != password:
            raise click.ClickException("the two passwords differ; nothing changed")
    settings = Settings.from_env()
    engine = make_engine(settings.database_for("auth"), pool_size=1)
    try:
        sessions = make_session_factory(engine)
        accounts = AccountService(sessions, Outbox(settings), AuthConfig.from_env())
        account = AccountQueries(sessions).find_account_by_email(email)
        if account is None:
            raise click.ClickException(f"there is no account {email}")
        accounts.update_account(account.id, AccountChanges(password=password))
    except InvalidAccountData as error:
        raise click.ClickException(f"{error}; nothing changed") from error
    finally:
        engine.dispose()
    click.echo(f"{email}: password set")


commands: list[click.Command] = [token, auth_group]
