"""The OAuth 2.0 token server, as Zoho Accounts runs it (zoho-crm-api.md §6).

Clients (``oauth_clients``) hold a SHA-256 hash of their secret. Grant codes, refresh
tokens and access tokens live in ``oauth_tokens``, keyed by the SHA-256 hash of the token,
told apart by ``kind``:

``grant`` / ``grant_online``
    a one-time authorization code (Self Client or ``/oauth/v2/auth``); ``grant`` yields a
    refresh token too (access_type=offline), ``grant_online`` an access token only.
``refresh``
    lives until revoked; ``parent_hash`` of its access tokens points at it.
``access``
    lives one hour; revoked with its refresh token.

Errors are Zoho's: ``{"error": "invalid_code"}`` and the like (:class:`OAuthError`).
"""

from __future__ import annotations

import hmac
import secrets
import string
import time
from dataclasses import dataclass
from typing import Any

from crmlite.auth import scopes as scope_grammar
from crmlite.auth.tokens import ACCESS_TOKEN_LIFETIME, new_token, store_token, token_hash
from crmlite.orgs import User, admin_user, users_by_id
from crmlite.store.base import Store, Tx

GRANT_LIFETIME = 600  # a Self Client code: 10 minutes unless asked otherwise
AUTH_CODE_LIFETIME = 120  # a code from the browser flow (/oauth/v2/auth)
MAX_ACCESS_PER_REFRESH = 30  # Zoho: the 31st access token of a refresh token evicts the oldest
GRANT_KINDS = ("grant", "grant_online")
_ID_ALPHABET = string.ascii_uppercase + string.digits


class OAuthError(Exception):
    """Refused, with Zoho Accounts' error code (``invalid_code``, ``invalid_client``, ...)."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass(slots=True, frozen=True)
class Client:
    client_id: str
    org_id: int
    name: str
    secret_hash: str
    redirect_uri: str | None


@dataclass(slots=True, frozen=True)
class Issued:
    """What the token endpoint answers (``api_domain`` is added by the HTTP layer)."""

    access_token: str
    refresh_token: str | None
    expires_in: int

    def body(self, api_domain: str) -> dict[str, Any]:
        out: dict[str, Any] = {"access_token": self.access_token}
        if self.refresh_token is not None:
            out["refresh_token"] = self.refresh_token
        out.update({"api_domain": api_domain, "token_type": "Bearer",
                    "expires_in": self.expires_in})
        return out


def new_client_id() -> str:
    """Zoho-shaped: ``1000.`` and 30 upper-case letters and digits."""
    return "1000." + "".join(secrets.choice(_ID_ALPHABET) for _ in range(30))


def new_client_secret() -> str:
    return secrets.token_hex(21)


def parse_scopes(raw: str | None) -> list[str]:
    """A scope list as Zoho takes it (comma-separated; spaces tolerated); raises invalid_scope."""
    scopes = [s.strip() for s in (raw or "").replace(" ", ",").split(",") if s.strip()]
    if not scopes or not all(scope_grammar.is_valid(s) for s in scopes):
        raise OAuthError("invalid_scope")
    return scopes


# --- clients -------------------------------------------------------------------------------

def create_client(store: Store, org_id: int, name: str,
                  redirect_uri: str | None = None) -> tuple[str, str]:
    """Register a client; returns ``(client_id, client_secret)`` (the secret is shown once)."""
    client_id, secret = new_client_id(), new_client_secret()
    with store.write() as tx:
        tx.execute(
            "INSERT INTO oauth_clients (client_id, org_id, name, secret_hash, redirect_uri, "
            "created_time) VALUES (?,?,?,?,?,?)",
            (client_id, org_id, name, token_hash(secret), redirect_uri or None, int(time.time())),
        )
    return client_id, secret


def find_client(tx: Tx, client_id: str | None) -> Client | None:
    if not client_id:
        return None
    rows = tx.execute("SELECT client_id, org_id, name, secret_hash, redirect_uri "
                      "FROM oauth_clients WHERE client_id = ?", (client_id,))
    return Client(*rows[0]) if rows else None


def _authenticated_client(tx: Tx, client_id: str | None, secret: str | None) -> Client:
    client = find_client(tx, client_id)
    if client is None:
        raise OAuthError("invalid_client")
    if not secret or not hmac.compare_digest(token_hash(secret), client.secret_hash):
        raise OAuthError("invalid_client_secret")
    return client


def _check_redirect(client: Client, redirect_uri: str | None) -> None:
    """A redirect_uri, when given, must be the one the client registered."""
    if redirect_uri and client.redirect_uri and redirect_uri != client.redirect_uri:
        raise OAuthError("invalid_redirect_uri")


# --- grant codes ---------------------------------------------------------------------------

def create_grant(store: Store, client_id: str, scopes: list[str], email: str | None = None,
                 expires_in: int = GRANT_LIFETIME, offline: bool = True) -> str:
    """A one-time grant code for a user of the client's org (the org's admin by default)."""
    code = new_token()
    with store.write() as tx:
        client = find_client(tx, client_id)
        if client is None:
            raise OAuthError("invalid_client")
        user = _user(tx, client.org_id, email)
        store_token(tx, code, "grant" if offline else "grant_online", client.org_id, user.id,
                    ",".join(scopes), expires_in, client_id=client.client_id)
    return code


def _user(tx: Tx, org_id: int, email: str | None) -> User:
    if email is None:
        return admin_user(tx, org_id)
    for user in users_by_id(tx, org_id).values():
        if user.email.lower() == email.strip().lower():
            if user.status != "active":
                raise OAuthError("invalid_user")
            return user
    raise OAuthError("invalid_user")


def authorize(store: Store, client_id: str | None, redirect_uri: str | None,
              raw_scope: str | None, response_type: str | None,
              access_type: str | None) -> str:
    """The browser flow's consent step: a code for the org's admin user (no login page)."""
    with store.read() as tx:
        client = find_client(tx, client_id)
    if client is None:
        raise OAuthError("invalid_client")
    if response_type != "code":
        raise OAuthError("unsupported_response_type")
    if not redirect_uri or redirect_uri != client.redirect_uri:
        raise OAuthError("invalid_redirect_uri")
    scopes = parse_scopes(raw_scope)
    return create_grant(store, client.client_id, scopes, None, AUTH_CODE_LIFETIME,
                        offline=(access_type or "online").lower() == "offline")


# --- the token endpoint --------------------------------------------------------------------

def _prune(tx: Tx, now: int) -> None:
    tx.execute("DELETE FROM oauth_tokens WHERE expires_at IS NOT NULL AND expires_at <= ?",
               (now,))


def _issue_access(tx: Tx, org_id: int, user_id: int, scopes: str, client_id: str,
                  parent: str | None) -> str:
    token = new_token()
    store_token(tx, token, "access", org_id, user_id, scopes, ACCESS_TOKEN_LIFETIME,
                client_id=client_id, parent=parent)
    if parent is not None:
        keep = tx.execute(
            "SELECT token_hash FROM oauth_tokens WHERE kind = 'access' AND parent_hash = ? "
            "ORDER BY created_time DESC, token_hash LIMIT ?",
            (token_hash(parent), MAX_ACCESS_PER_REFRESH + 1))
        if len(keep) > MAX_ACCESS_PER_REFRESH:
            mine = token_hash(token)
            evict = [h for (h,) in keep if h != mine][MAX_ACCESS_PER_REFRESH - 1:]
            tx.executemany("DELETE FROM oauth_tokens WHERE token_hash = ?", [(h,) for h in evict])
    return token


def _active_user(tx: Tx, org_id: int, user_id: int) -> None:
    user = users_by_id(tx, org_id).get(user_id)
    if user is None or user.status != "active":
        raise OAuthError("invalid_code")


def exchange_code(store: Store, client_id: str | None, secret: str | None, code: str | None,
                  redirect_uri: str | None) -> Issued:
    """``grant_type=authorization_code``: a code is good for one exchange."""
    now = int(time.time())
    with store.write() as tx:
        _prune(tx, now)
        client = _authenticated_client(tx, client_id, secret)
        if not code:
            raise OAuthError("invalid_code")
        rows = tx.execute(
            "SELECT kind, org_id, user_id, client_id, scopes FROM oauth_tokens "
            "WHERE token_hash = ? AND kind IN ('grant', 'grant_online')", (token_hash(code),))
        if not rows or rows[0][3] != client.client_id:
            raise OAuthError("invalid_code")
        _check_redirect(client, redirect_uri)
        kind, org_id, user_id, _, scopes = rows[0]
        tx.execute("DELETE FROM oauth_tokens WHERE token_hash = ?", (token_hash(code),))
        _active_user(tx, org_id, user_id)
        refresh = None
        if kind == "grant":
            refresh = new_token()
            store_token(tx, refresh, "refresh", org_id, user_id, scopes, None,
                        client_id=client.client_id)
        access = _issue_access(tx, org_id, user_id, scopes, client.client_id, refresh)
    return Issued(access, refresh, ACCESS_TOKEN_LIFETIME)


def refresh_access(store: Store, client_id: str | None, secret: str | None,
                   refresh_token: str | None) -> Issued:
    """``grant_type=refresh_token``: a new access token, the refresh token unchanged."""
    with store.write() as tx:
        _prune(tx, int(time.time()))
        client = _authenticated_client(tx, client_id, secret)
        if not refresh_token:
            raise OAuthError("invalid_code")
        rows = tx.execute(
            "SELECT org_id, user_id, client_id, scopes FROM oauth_tokens "
            "WHERE token_hash = ? AND kind = 'refresh'", (token_hash(refresh_token),))
        if not rows or rows[0][2] != client.client_id:
            raise OAuthError("invalid_code")
        org_id, user_id, _, scopes = rows[0]
        _active_user(tx, org_id, user_id)
        access = _issue_access(tx, org_id, user_id, scopes, client.client_id, refresh_token)
    return Issued(access, None, ACCESS_TOKEN_LIFETIME)


def client_credentials(store: Store, client_id: str | None, secret: str | None,
                       raw_scope: str | None, soid: str | None) -> Issued:
    """``grant_type=client_credentials`` with ``soid=ZohoCRM.<org id>``: acts as the org's admin."""
    with store.write() as tx:
        _prune(tx, int(time.time()))
        client = _authenticated_client(tx, client_id, secret)
        if not soid:
            raise OAuthError("missing_org_info")
        service, _, org = soid.partition(".")
        zgid = tx.execute("SELECT zgid FROM orgs WHERE id = ?", (client.org_id,))
        if service.lower() != "zohocrm" or org not in (str(client.org_id), zgid[0][0]):
            raise OAuthError("invalid_org_info")
        scopes = parse_scopes(raw_scope)
        admin = admin_user(tx, client.org_id)
        access = _issue_access(tx, client.org_id, admin.id, ",".join(scopes),
                               client.client_id, None)
    return Issued(access, None, ACCESS_TOKEN_LIFETIME)


def token(store: Store, params: dict[str, str]) -> Issued:
    """``POST /oauth/v2/token``: dispatch on ``grant_type``."""
    grant_type = params.get("grant_type")
    client_id, secret = params.get("client_id"), params.get("client_secret")
    if grant_type == "authorization_code":
        return exchange_code(store, client_id, secret, params.get("code"),
                             params.get("redirect_uri"))
    if grant_type == "refresh_token":
        return refresh_access(store, client_id, secret, params.get("refresh_token"))
    if grant_type == "client_credentials":
        return client_credentials(store, client_id, secret, params.get("scope"),
                                  params.get("soid"))
    raise OAuthError("unsupported_grant_type" if grant_type else "invalid_request")


def revoke(store: Store, token_value: str) -> None:
    """Revoke a refresh token (with its access tokens) or an access token; unknown is a no-op."""
    hashed = token_hash(token_value)
    with store.write() as tx:
        rows = tx.execute("SELECT kind FROM oauth_tokens WHERE token_hash = ?", (hashed,))
        if rows and rows[0][0] == "refresh":
            tx.execute("DELETE FROM oauth_tokens WHERE parent_hash = ?", (hashed,))
        if rows and rows[0][0] in ("refresh", "access"):
            tx.execute("DELETE FROM oauth_tokens WHERE token_hash = ?", (hashed,))
