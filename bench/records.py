"""The benchmark's records: Zoho-Contacts-shaped, about 340 bytes of JSON each.

Record ``n`` has the external ID ``ext_id(n)`` and the Email ``email(n)``; both are unique
over the whole data set, so "record n exists" is all the load generator, the raw ceiling
and the preloader need to agree on. Bodies are built from byte templates (no per-record
dict), so the load generator spends little CPU on them.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

MODULE = "Contacts"
EXTERNAL_FIELD = "External_Id"
RECORDS_PER_REQUEST = 100

# The fields every record carries besides its keys and the fields an update changes.
_STATIC = (
    b'"First_Name":"Patricia","Title":"Head of Purchasing","Department":"Procurement",'
    b'"Mailing_Street":"1234 Harbour View Road","Mailing_City":"Springfield",'
    b'"Mailing_State":"Oregon","Mailing_Country":"United States"}'
)
_VARYING = b'"Last_Name":"Boyle %d","Phone":"+1 555 %07d","Description":"v%d",'
_FULL = b'{"External_Id":"EXT-%010d","Email":"c%010d@bench.example",' + _VARYING + _STATIC
_BY_EMAIL = b'{"Email":"c%010d@bench.example",' + _VARYING + _STATIC


def ext_id(n: int) -> str:
    return f"EXT-{n:010d}"


def email(n: int) -> str:
    return f"c{n:010d}@bench.example"


def record_bytes(n: int, version: int, *, with_ext: bool = True) -> bytes:
    """Record ``n`` as JSON; ``version`` changes Description. Without ``with_ext`` the
    record carries no External_Id (an update addressed by Email)."""
    if with_ext:
        return _FULL % (n, n, n, n % 10_000_000, version)
    return _BY_EMAIL % (n, n, n % 10_000_000, version)


def body(records: Iterable[bytes]) -> bytes:
    return b'{"data":[' + b",".join(records) + b"]}"


CASES = ("insert", "update_ext", "update_email", "mix")


PATTERNS = ("clustered", "random")


def split_case(name: str) -> tuple[str, str]:
    """``update_ext_random`` -> (``update_ext``, ``random``); others use ``clustered``."""
    if name.endswith("_random"):
        return name.removesuffix("_random"), "random"
    return name, "clustered"


class KeyPlan:
    """Hands out record numbers: new ones from a counter, existing ones at random.

    Existing records are ``[0, existing)``; new ones start at ``next_new``. Within one
    request the numbers are distinct. ``clustered`` (the default): the existing records of
    a request are one run of consecutive records at a random place, as a sync job sends
    its source table in order; ``random``: scattered over all existing records, so every
    record of a batch sits on its own database page.
    """

    def __init__(self, existing: int, next_new: int, seed: int,
                 pattern: str = "clustered") -> None:
        if pattern not in PATTERNS:
            raise ValueError(f"unknown key pattern {pattern!r}")
        self.existing = existing
        self.next_new = next_new
        self.pattern = pattern
        self.rng = random.Random(seed)

    def new(self, count: int) -> list[int]:
        start = self.next_new
        self.next_new += count
        return list(range(start, start + count))

    def old(self, count: int) -> list[int]:
        if self.existing < count:
            raise ValueError(f"need {count} existing records, have {self.existing}")
        if self.pattern == "random":
            return self.rng.sample(range(self.existing), count)
        start = self.rng.randrange(self.existing // count) * count
        return list(range(start, start + count))

    def request(self, case: str, version: int, size: int = RECORDS_PER_REQUEST
                ) -> tuple[bytes, int, int]:
        """The body of one request, and how many inserts and updates it should cause."""
        items = self.batch(case, size)
        with_ext = case != "update_email"
        recs = [record_bytes(n, version, with_ext=with_ext) for n, _ in items]
        inserts = sum(1 for _, old in items if not old)
        return body(recs), inserts, len(items) - inserts

    def batch(self, case: str, size: int = RECORDS_PER_REQUEST) -> list[tuple[int, bool]]:
        """Record numbers of one batch and whether each exists (for the raw ceiling)."""
        if case == "insert":
            return [(n, False) for n in self.new(size)]
        if case in ("update_ext", "update_email"):
            return [(n, True) for n in self.old(size)]
        if case == "mix":
            half = size // 2
            old, new = self.old(half), self.new(size - half)
            out: list[tuple[int, bool]] = []
            for i in range(size):  # alternate: update, insert, update, ...
                out.append((old[i // 2], True) if i % 2 == 0 else (new[i // 2], False))
            return out
        raise ValueError(f"unknown case {case!r}")
