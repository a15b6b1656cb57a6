"""Who is calling: a user of an org, with the scopes of their token.

Every request checks its token against the store, but for a write that is a round trip
and a pooled connection of its own on PostgreSQL (bench/RESULTS.md: 4-12 % of the records
per second, two workers). So a
process remembers the principals of the tokens it checked; a write may start from one
(:func:`remembered`) and then holds its grant inside its own transaction
(:meth:`~crmlite.store.base.Tx.hold_grant`, on PostgreSQL in the transaction's first
round trip): the token must still exist and its org's metadata still be at the version
the principal was made with, or the write rolls back with
:class:`~crmlite.store.base.GrantChanged` and the caller checks the token afresh. A token
revoked by another process, or a field added there, takes effect at the next write as
it does at the next read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from crmlite.auth.tokens import TokenGrant, check_access_token, expired
from crmlite.orgs import User, directory
from crmlite.schema.dictionary import DataDictionary, load
from crmlite.store.base import Store

REMEMBERED_TOKENS = 4096  # per process; the oldest is forgotten first


@dataclass(slots=True)
class Principal:
    org_id: int
    user: User
    scopes: frozenset[str]
    dictionary: DataDictionary
    users: dict[int, User]
    # set on a principal from the process's memory (not checked against the store for
    # this request): a write must hold it in its transaction (Tx.hold_grant)
    unchecked: TokenGrant | None = None


_remembered: dict[tuple[str, str], Principal] = {}


def principal_for(store: Store, grant: TokenGrant) -> Principal | None:
    users = directory(store, grant.org_id, grant.meta_version)
    user = users.get(grant.user_id)
    if user is None or user.status != "active":
        return None
    dictionary = load(store, grant.org_id, grant.meta_version)
    return Principal(grant.org_id, user, grant.scopes, dictionary, users)


def authenticate(store: Store, token: str) -> Principal | None:
    """The principal behind an access token, checked against the store; raises
    TokenRefused for a bad token."""
    key = (store.url, token)
    _remembered.pop(key, None)
    grant = check_access_token(store, token)
    principal = principal_for(store, grant)
    if principal is not None:
        if len(_remembered) >= REMEMBERED_TOKENS:
            del _remembered[next(iter(_remembered))]
        _remembered[key] = replace(principal, unchecked=grant)
    return principal


def remembered(store: Store, token: str) -> Principal | None:
    """The principal of a token this process checked before and that has not expired
    since, for a write that holds its grant (see the module's docstring); None if there
    is none."""
    principal = _remembered.get((store.url, token))
    if principal is None:
        return None
    assert principal.unchecked is not None
    if expired(principal.unchecked):
        del _remembered[(store.url, token)]
        return None
    return principal
