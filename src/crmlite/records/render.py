"""Records as Zoho renders them: ids as strings, times in the caller's offset."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import orjson

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


def write_details_json(records: list[StoredRecord], users: dict[int, User],
                       tz: ZoneInfo) -> list[bytes]:
    """The ``details`` of successful insert, update or upsert items, in Zoho's key order, as
    JSON objects left open after ``Created_By`` (an item may add members, then ``}``).

    Rendered from pieces: a reply's records mostly share their times and users, each
    rendered once, and no dict is built per record (a 100-record reply built as dicts and
    then serialised cost about seven times as much).
    """
    times: dict[int, bytes] = {}
    refs: dict[int, bytes] = {}
    details = []
    for r in records:
        modified, created = times.get(r.modified_time), times.get(r.created_time)
        if modified is None:
            modified = times[r.modified_time] = orjson.dumps(format_time(r.modified_time, tz))
        if created is None:
            created = times[r.created_time] = orjson.dumps(format_time(r.created_time, tz))
        modifier, creator = refs.get(r.modified_by), refs.get(r.created_by)
        if modifier is None:
            modifier = refs[r.modified_by] = orjson.dumps(user_ref(users, r.modified_by))
        if creator is None:
            creator = refs[r.created_by] = orjson.dumps(user_ref(users, r.created_by))
        details.append(b"".join((b'{"Modified_Time":', modified, b',"Modified_By":', modifier,
                                 b',"Created_Time":', created, b',"id":"',
                                 int_text(r.id).encode(), b'","Created_By":', creator)))
    return details


def write_details(records: list[StoredRecord], users: dict[int, User],
                  tz: ZoneInfo) -> list[dict[str, Any]]:
    """:func:`write_details_json`'s objects as dicts (for an error's details)."""
    return [orjson.loads(d + b"}") for d in write_details_json(records, users, tz)]
