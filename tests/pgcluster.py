"""A throwaway PostgreSQL 15 cluster on a free loopback port, for tests and benchmarks.

initdb refuses to run as root, so as root the cluster runs as the ``postgres`` user on a
data directory that user owns.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin",
               "/usr/lib/postgresql/17/bin")


def pg_bin(name: str) -> str | None:
    for d in PG_BIN_DIRS:
        candidate = Path(d) / name
        if candidate.exists():
            return str(candidate)
    return shutil.which(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    def __init__(self) -> None:
        initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
        if not initdb or not pg_ctl:
            raise RuntimeError("PostgreSQL binaries (initdb, pg_ctl) not found; "
                               "apt-get install -y postgresql")
        self.pg_ctl = pg_ctl
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="crmlite-pg-"))
        self.data = self.root / "data"
        self.data.mkdir()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.data, "postgres", "postgres")
        os.chmod(self.data, 0o700)
        self._run([initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                   "--no-locale", "--no-sync"])
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.root} -c max_connections=200 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c shared_buffers=128MB")
        try:
            self._run([pg_ctl, "-D", str(self.data), "-l", str(self.root / "server.log"),
                       "-w", "-t", "60", "-o", options, "start"])
        except subprocess.CalledProcessError as exc:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            shutil.rmtree(self.root, ignore_errors=True)
            raise RuntimeError(f"PostgreSQL did not start: {exc.stderr!r}\n{tail}") from exc
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.stopped = False
        atexit.register(self.stop)  # even when the session ends without its finalizers

    def _run(self, cmd: list[str]) -> None:
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, cwd=self.root)

    def create_database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def drop_database(self, url: str) -> None:
        """Drop a database made by create_database (its leftover connections with it)."""
        import psycopg

        name = url.rsplit("/", 1)[1].split("?", 1)[0]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def restart(self) -> None:
        """Restart with the same options (after ``ALTER SYSTEM`` of a setting that needs it,
        such as ``shared_preload_libraries``: bench/instructions.py)."""
        self._run([self.pg_ctl, "-D", str(self.data), "-l", str(self.root / "server.log"),
                   "-w", "-t", "60", "restart"])

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        try:
            self._run([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
