"""Records as Zoho renders them: ids as strings, times in the caller's offset."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from crmlite.orgs import User
from crmlite.records.stored import StoredRecord
from crmlite.schema.datatypes import int_text


@lru_cache(maxsize=16384)
def format_time(epoch: int, tz: ZoneInfo) -> str:
    """ISO-8601, seconds precision, with the user's offset: ``2024-05-10T01:10:47-07:00``."""
    return datetime.fromtimestamp(epoch, tz).isoformat()


def user_ref(users: dict[int, User], user_id: int, with_email: bool = False) -> dict[str, Any]:
    user = users.get(user_id)
    if user is None:
        return {"name": None, "id": int_text(user_id)}
    return user.minified_with_email if with_email else user.minified


def write_details(records: list[StoredRecord], users: dict[int, User],
                  tz: ZoneInfo) -> list[dict[str, Any]]:
    """The ``details`` of successful insert, update or upsert items, in Zoho's key order.

    A reply's records mostly share their times and users: each is rendered once.
    """
    times: dict[int, str] = {}
    refs: dict[int, dict[str, Any]] = {}
    details = []
    for r in records:
        modified, created = times.get(r.modified_time), times.get(r.created_time)
        if modified is None:
            modified = times[r.modified_time] = format_time(r.modified_time, tz)
        if created is None:
            created = times[r.created_time] = format_time(r.created_time, tz)
        modifier, creator = refs.get(r.modified_by), refs.get(r.created_by)
        if modifier is None:
            modifier = refs[r.modified_by] = user_ref(users, r.modified_by)
        if creator is None:
            creator = refs[r.created_by] = user_ref(users, r.created_by)
        details.append({"Modified_Time": modified, "Modified_By": modifier,
                        "Created_Time": created, "id": int_text(r.id), "Created_By": creator})
    return details
