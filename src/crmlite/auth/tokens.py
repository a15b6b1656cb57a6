"""Access tokens: issued, stored hashed (SHA-256, never in clear), checked per request."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from crmlite.auth import scopes as scope_grammar
from crmlite.store.base import Store, Tx

ACCESS_TOKEN_LIFETIME = 3600


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """Zoho-shaped: ``1000.<32 hex>.<32 hex>``."""
    return f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"


@dataclass(slots=True, frozen=True)
class TokenGrant:
    org_id: int
    user_id: int
    scopes: frozenset[str]
    meta_version: int  # the org's metadata version when the token was checked
    token_hash: str
    expires_at: int | None


class TokenRefused(Exception):
    """No such token, or it expired or was revoked."""


def store_token(tx: Tx, token: str, kind: str, org_id: int, user_id: int, scopes: str,
                expires_in: int | None, client_id: str | None = None,
                parent: str | None = None) -> None:
    now = int(time.time())
    tx.execute(
        "INSERT INTO oauth_tokens (token_hash, kind, org_id, user_id, client_id, scopes, "
        "expires_at, created_time, parent_hash) VALUES (?,?,?,?,?,?,?,?,?)",
        (token_hash(token), kind, org_id, user_id, client_id, scopes,
         now + expires_in if expires_in is not None else None, now,
         token_hash(parent) if parent else None),
    )


def create_access_token(store: Store, org_id: int, user_id: int, scopes: str,
                        expires_in: int = ACCESS_TOKEN_LIFETIME) -> str:
    token = new_token()
    with store.write() as tx:
        store_token(tx, token, "access", org_id, user_id, scopes, expires_in)
    return token


def check_access_token(store: Store, token: str) -> TokenGrant:
    hashed = token_hash(token)
    with store.read() as tx:
        rows = tx.execute(
            "SELECT t.org_id, t.user_id, t.scopes, t.expires_at, o.meta_version "
            "FROM oauth_tokens t JOIN orgs o ON o.id = t.org_id "
            "WHERE t.token_hash = ? AND t.kind = 'access'",
            (hashed,),
        )
    if not rows:
        raise TokenRefused()
    org_id, user_id, scopes, expires_at, meta_version = rows[0]
    grant = TokenGrant(org_id, user_id, scope_grammar.parse(scopes), meta_version, hashed,
                       expires_at)
    if expired(grant):
        raise TokenRefused()
    return grant


def expired(grant: TokenGrant) -> bool:
    return grant.expires_at is not None and grant.expires_at <= time.time()
