"""Fixtures: a real ``crmlite serve`` process per test, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.pgcluster import PostgresCluster, free_port

CRMLITE = [sys.executable, "-m", "crmlite"]
BACKENDS = ["sqlite", "postgresql"]
SOURCE = Path(__file__).resolve().parent.parent / "src" / "crmlite"


def pytest_configure(config: pytest.Config) -> None:
    """An editable install compiles the engine in place (setup.py): a module edited since
    would be shadowed by its stale extension, and the suite would test the old code."""
    stale = sorted(str(so.relative_to(SOURCE)) for so in SOURCE.rglob("*.so")
                   if (py := so.with_name(so.name.split(".")[0] + ".py")).exists()
                   and py.stat().st_mtime > so.stat().st_mtime)
    if stale:
        pytest.exit(f"compiled modules older than their source: {', '.join(stale)}; rebuild "
                    "with `.venv/bin/python -m pip install -e .` (scripts/test.sh does)",
                    returncode=2)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    yield cluster
    cluster.stop()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'crmlite.db'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_database()
    yield url
    cluster.drop_database(url)


def cli(database_url: str, *args: str) -> str:
    """Run a crmlite command; its stdout."""
    done = subprocess.run([*CRMLITE, *args, "--database", database_url], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


class Server:
    """``crmlite serve`` in a subprocess, with a client for the token it printed."""

    def __init__(self, database_url: str, workers: int = 1) -> None:
        self.database_url = database_url
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.proc: subprocess.Popen[str] | None = None
        self.token = ""
        self.banner: list[str] = []
        self.start()

    def start(self) -> None:
        args = [*CRMLITE, "serve", "--port", str(self.port), "--database", self.database_url]
        if self.workers > 1:
            args += ["--workers", str(self.workers)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert self.proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            found = re.search(r"access token .*: (1000\.\S+)", line)
            if found:
                self.token = found.group(1)
            if line.startswith("try: curl"):
                break
        assert self.token, "".join(lines)
        self.banner = [line.rstrip("\n") for line in lines]  # what serve printed
        while time.monotonic() < deadline:
            try:
                httpx.get(self.base + "/", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("server did not start: " + "".join(lines))

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def restart(self) -> None:
        token = self.token
        self.stop()
        self.start()
        self.token = token

    def client(self, token: str | None = None) -> Client:
        return Client(self.base, token if token is not None else self.token)


class Client:
    def __init__(self, base: str, token: str | None) -> None:
        headers = {"Authorization": f"Zoho-oauthtoken {token}"} if token else {}
        self.http = httpx.Client(base_url=base, headers=headers, timeout=60)

    def request(self, method: str, path: str, json: Any = None, content: Any = None,
                **kw: Any) -> httpx.Response:
        if json is not None:
            import orjson

            content = orjson.dumps(json)
        return self.http.request(method, path, content=content, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return self.request("POST", path, json=json, **kw)

    def put(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return self.request("PUT", path, json=json, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, **kw)

    def upsert(self, module: str, records: list[dict[str, Any]], version: str = "v8",
               **body: Any) -> httpx.Response:
        return self.post(f"/crm/{version}/{module}/upsert", {"data": records, **body})

    def add_field(self, module: str, **definition: Any) -> str:
        reply = self.post(f"/crm/v8/settings/fields?module={module}",
                          {"fields": [definition]})
        assert reply.status_code == 201, reply.text
        return reply.json()["fields"][0]["details"]["id"]

    def record(self, module: str, record_id: str) -> dict[str, Any] | None:
        reply = self.get(f"/crm/v8/{module}/{record_id}")
        if reply.status_code == 204:
            return None
        assert reply.status_code == 200, reply.text
        return reply.json()["data"][0]


@pytest.fixture(scope="module", params=BACKENDS)
def shared_server(request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for a whole test module, for tests that do not need an empty database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'crmlite.db'}"
        cluster = None
    else:
        cluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database()
    srv = Server(url)
    yield srv
    srv.stop()
    if cluster is not None:
        cluster.drop_database(url)


@pytest.fixture
def server(database_url: str) -> Iterator[Server]:
    srv = Server(database_url)
    yield srv
    srv.stop()


@pytest.fixture
def api(server: Server) -> Client:
    return server.client()


def admin_token(store: Any) -> tuple[Any, str]:
    """For tests that drive the engine without HTTP: bootstrap the store's org and give its
    admin an all-scope access token. Returns the org and the token."""
    from crmlite.auth.tokens import create_access_token
    from crmlite.orgs import admin_user, bootstrap

    org = bootstrap(store)
    with store.read() as tx:
        admin = admin_user(tx, org.id)
    return org, create_access_token(store, org.id, admin.id, "ZohoCRM.modules.ALL")


def new_user(server: Server, email: str, name: str, scope: str | None = None) -> Client:
    cli(server.database_url, "user", "add", "--email", email, "--name", name)
    args = ["token", "create", "--user", email]
    if scope:
        args += ["--scope", scope]
    return server.client(cli(server.database_url, *args))
