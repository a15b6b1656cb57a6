"""The engine as installed: compiled by mypyc (setup.py), as a user's `pip install` gets it."""

from __future__ import annotations

import ast
import importlib
import os
from pathlib import Path

import orjson
import pytest

import crmlite

ROOT = Path(__file__).resolve().parent.parent


def compiled_modules() -> list[str]:
    """setup.py's COMPILED, as module names."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "COMPILED" for t in node.targets):
            paths = ast.literal_eval(node.value)
            return [p.removeprefix("src/").removesuffix(".py").replace("/", ".") for p in paths]
    raise AssertionError("setup.py names no COMPILED modules")


@pytest.mark.skipif(os.environ.get("CRMLITE_COMPILE") == "0",
                    reason="CRMLITE_COMPILE=0 installs the engine as Python")
@pytest.mark.parametrize("name", compiled_modules())
def test_the_engine_runs_compiled(name: str) -> None:
    """The suite exercises what users run: a module setup.py compiles is an extension."""
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert not module.__file__.endswith(".py"), (
        f"{name} runs as Python: the build fell back (see pip's output) or is missing")
    assert crmlite.compiled()


def test_server_says_how_its_engine_runs(tmp_path: Path) -> None:
    from tests.conftest import Server

    server = Server(f"sqlite:///{tmp_path / 'crmlite.db'}")
    try:
        engine = "compiled" if crmlite.compiled() else "pure Python"
        assert server.banner[0].endswith(f"(engine: {engine})"), server.banner
    finally:
        server.stop()


def test_upserts_leave_no_memory_behind(tmp_path: Path) -> None:
    """mypyc's ``str()`` of an ``int`` leaks integers beyond 2**62, which record ids are
    (schema.datatypes.int_text): a server that rendered ids that way grew by every record it
    wrote. Inserts and updates through the engine, and reading the records back (a list
    page, one record by id), must leave nothing behind."""
    import gc
    import tracemalloc

    from crmlite.auth.principal import authenticate
    from crmlite.auth.tokens import create_access_token
    from crmlite.orgs import admin_user, bootstrap
    from crmlite.records.reader import get_record, list_query, list_records
    from crmlite.records.writer import items_json, write_records
    from crmlite.store.base import open_store

    store = open_store(f"sqlite:///{tmp_path / 'crmlite.db'}")
    org = bootstrap(store)
    with store.read() as tx:
        admin = admin_user(tx, org.id)
    token = create_access_token(store, org.id, admin.id, "ZohoCRM.modules.ALL")

    def upserts(first: int, batches: int) -> None:
        for b in range(first, first + batches):
            principal = authenticate(store, token)
            assert principal is not None
            contacts = principal.dictionary.module("Contacts")
            assert contacts is not None
            # half new records, half the previous batch's (updated by Email)
            data = [{"Last_Name": f"L{n}", "Email": f"c{n}@example.com", "Phone": str(b)}
                    for n in range(b * 25, b * 25 + 50)]
            outcomes = write_records(store, principal, contacts, data, "upsert")
            replies = orjson.loads(items_json(outcomes, principal, "upsert"))
            assert [i["status"] for i in replies] == ["success"] * 50
            query = list_query(contacts, {"fields": "Last_Name,Email,Owner,Modified_Time",
                                          "per_page": "50"}, True)
            page, _ = list_records(store, principal, contacts, query)
            assert len(page) == 50
            one = get_record(store, principal, contacts, replies[0]["details"]["id"])
            assert one is not None and one["id"] == replies[0]["details"]["id"]

    upserts(0, 20)  # caches warm
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        upserts(20, 100)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
        store.close()
    grown = sum(stat.count_diff for stat in after.compare_to(before, "filename"))
    # a leak of one object per record written (or read) would be 5,000 blocks
    assert grown < 1_000, [str(s) for s in after.compare_to(before, "filename")[:5]]
