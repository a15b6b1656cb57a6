"""Who is calling: a user of an org, with the scopes of their token."""

from __future__ import annotations

from dataclasses import dataclass

from crmlite.auth.tokens import TokenGrant, check_access_token
from crmlite.orgs import User, directory
from crmlite.schema.dictionary import DataDictionary, load
from crmlite.store.base import Store


@dataclass(slots=True)
class Principal:
    org_id: int
    user: User
    scopes: frozenset[str]
    dictionary: DataDictionary
    users: dict[int, User]


def principal_for(store: Store, grant: TokenGrant) -> Principal | None:
    users = directory(store, grant.org_id, grant.meta_version)
    user = users.get(grant.user_id)
    if user is None or user.status != "active":
        return None
    dictionary = load(store, grant.org_id, grant.meta_version)
    return Principal(grant.org_id, user, grant.scopes, dictionary, users)


def authenticate(store: Store, token: str) -> Principal | None:
    """The principal behind an access token; raises TokenRefused for a bad token."""
    return principal_for(store, check_access_token(store, token))
