"""Records as Zoho renders them: ids as strings, times in the caller's offset."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from crmlite.orgs import User
from crmlite.records.stored import StoredRecord


@lru_cache(maxsize=16384)
def format_time(epoch: int, tz: ZoneInfo) -> str:
    """ISO-8601, seconds precision, with the user's offset: ``2024-05-10T01:10:47-07:00``."""
    return datetime.fromtimestamp(epoch, tz).isoformat()


def user_ref(users: dict[int, User], user_id: int, with_email: bool = False) -> dict[str, Any]:
    user = users.get(user_id)
    if user is None:
        return {"name": None, "id": str(user_id)}
    return user.minified_with_email if with_email else user.minified


def write_details(record: StoredRecord, users: dict[int, User], tz: ZoneInfo) -> dict[str, Any]:
    """The ``details`` of a successful insert, update or upsert item, in Zoho's key order."""
    return {
        "Modified_Time": format_time(record.modified_time, tz),
        "Modified_By": user_ref(users, record.modified_by),
        "Created_Time": format_time(record.created_time, tz),
        "id": str(record.id),
        "Created_By": user_ref(users, record.created_by),
    }
