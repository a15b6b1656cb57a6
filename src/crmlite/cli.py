"""The ``crmlite`` command: serve, tokens, users, OAuth clients and grant codes."""

from __future__ import annotations

import json
import sys

import click

import crmlite
from crmlite.auth.scopes import ALL_SCOPES, is_valid
from crmlite.auth.tokens import ACCESS_TOKEN_LIFETIME, create_access_token
from crmlite.orgs import Org, UserExists, add_user, admin_user, bootstrap, find_user
from crmlite.store.base import SchemaVersionError, Store, database_url, open_store, redacted

DATABASE_HELP = "Database URL (default: $CRMLITE_DATABASE_URL or sqlite:///crmlite.db)."
SERVE_TOKEN_LIFETIME = 24 * 3600


def _open(url: str | None) -> tuple[Store, Org]:
    url = database_url(url)
    try:
        store = open_store(url)
        return store, bootstrap(store)
    except SchemaVersionError as exc:
        raise click.ClickException(str(exc)) from exc
    except Exception as exc:  # an unreachable server, a bad URL, an unwritable file
        raise click.ClickException(f"cannot open the database {redacted(url)}: {exc}") from exc


@click.group()
@click.version_option(package_name="crmlite")
def main() -> None:
    """crmlite: a self-hosted server that speaks Zoho CRM's REST records API."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--database", "database", default=None, help=DATABASE_HELP)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes; on SQLite one writer process is fastest (see README).")
def serve(host: str, port: int, database: str | None, workers: int) -> None:
    """Start the HTTP server."""
    from crmlite.server import serve as run

    url = database_url(database)
    store, org = _open(url)
    with store.read() as tx:
        admin = admin_user(tx, org.id)
    token = create_access_token(store, org.id, admin.id, ",".join(ALL_SCOPES),
                                SERVE_TOKEN_LIFETIME)
    store.close()
    base = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    engine = "compiled" if crmlite.compiled() else "pure Python"
    click.echo(f"crmlite serving {redacted(url)} at {base} (engine: {engine})")
    click.echo(f"access token (all scopes, {admin.email}, valid 24 h): {token}")
    click.echo(f'try: curl {base}/crm/v8/Contacts/upsert -H "Authorization: Zoho-oauthtoken '
               f'{token}" -d \'{{"data":[{{"Last_Name":"Boyle","Email":"p.boyle@abc.com"}}]}}\'')
    sys.stdout.flush()
    run(host, port, url, workers)


@main.group()
def token() -> None:
    """Access tokens."""


@token.command("create")
@click.option("--database", "database", default=None, help=DATABASE_HELP)
@click.option("--user", "email", default=None, help="User email (default: the org's admin).")
@click.option("--scope", "scope", default=",".join(ALL_SCOPES), show_default=True,
              help="Comma-separated scopes.")
@click.option("--expires-in", default=ACCESS_TOKEN_LIFETIME, show_default=True,
              type=click.IntRange(1), help="Lifetime in seconds.")
def token_create(database: str | None, email: str | None, scope: str, expires_in: int) -> None:
    """Print a new access token (and nothing else)."""
    scopes = [s.strip() for s in scope.split(",") if s.strip()]
    bad = [s for s in scopes if not is_valid(s)]
    if not scopes or bad:
        raise click.BadParameter(f"not a Zoho scope: {', '.join(bad) or '(none)'}",
                                 param_hint="--scope")
    store, org = _open(database)
    with store.read() as tx:
        user = find_user(tx, org.id, email) if email else admin_user(tx, org.id)
    if user is None:
        raise click.ClickException(f"no user {email} in this org (add one with `crmlite user add`)")
    click.echo(create_access_token(store, org.id, user.id, ",".join(scopes), expires_in))


@main.group()
def user() -> None:
    """Users of the org."""


@user.command("add")
@click.option("--database", "database", default=None, help=DATABASE_HELP)
@click.option("--email", required=True)
@click.option("--name", required=True, help='Full name, e.g. "Patricia Boyle".')
@click.option("--time-zone", default=None, help="IANA time zone (default: the org's).")
def user_add(database: str | None, email: str, name: str, time_zone: str | None) -> None:
    """Add a user to the org and print its id."""
    store, org = _open(database)
    try:
        added = add_user(store, org.id, email, name, time_zone or org.time_zone)
    except UserExists:
        raise click.ClickException(f"a user with email {email} already exists") from None
    click.echo(str(added.id))


@main.group()
def client() -> None:
    """OAuth clients (Zoho's Self Client and server-based clients)."""


@client.command("create")
@click.option("--database", "database", default=None, help=DATABASE_HELP)
@click.option("--name", required=True, help="The client's name.")
@click.option("--redirect-uri", default=None,
              help="Where /oauth/v2/auth sends the browser back with a code.")
def client_create(database: str | None, name: str, redirect_uri: str | None) -> None:
    """Register a client; print JSON {client_id, client_secret} (the secret is shown once)."""
    from crmlite.auth.oauth import create_client

    store, org = _open(database)
    client_id, secret = create_client(store, org.id, name.strip(), redirect_uri)
    click.echo(json.dumps({"client_id": client_id, "client_secret": secret}))


@main.group()
def grant() -> None:
    """Grant codes (Zoho's Self Client flow)."""


@grant.command("create")
@click.option("--database", "database", default=None, help=DATABASE_HELP)
@click.option("--client-id", required=True)
@click.option("--scope", "scope", required=True, help="Comma-separated scopes.")
@click.option("--user", "email", default=None, help="User email (default: the org's admin).")
@click.option("--expires-in", default=600, show_default=True, type=click.IntRange(1),
              help="Lifetime of the code in seconds.")
def grant_create(database: str | None, client_id: str, scope: str, email: str | None,
                 expires_in: int) -> None:
    """Print a one-time grant code, to exchange at /oauth/v2/token for tokens."""
    from crmlite.auth.oauth import OAuthError, create_grant, parse_scopes

    try:
        scopes = parse_scopes(scope)
    except OAuthError:
        raise click.BadParameter(f"not a list of Zoho scopes: {scope}",
                                 param_hint="--scope") from None
    store, _ = _open(database)
    try:
        code = create_grant(store, client_id, scopes, email, expires_in)
    except OAuthError as exc:
        what = {"invalid_client": f"no client {client_id} (create one with `crmlite client "
                                  "create`)",
                "invalid_user": f"no active user {email} in the client's org"}
        raise click.ClickException(what.get(exc.error, exc.error)) from None
    click.echo(code)
