"""Throwaway PostgreSQL 15 and Redis 7 servers from Debian's packages, for tests.

``TEST_DATABASE_URL`` and ``TEST_REDIS_URL`` point the tests at existing servers instead.
Each test gets its own database (created from a template, which is fast) and its own
Redis database index plus key prefix, so tests never see each other's data.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis
from sqlalchemy.engine import make_url

from tests.support import processes

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")


def _postgres_url(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


@dataclass
class PostgresServer:
    """A PostgreSQL cluster in a temporary directory, or an existing server."""

    admin_url: str
    """``postgresql://`` URL of a database we may create other databases from."""
    process: subprocess.Popen[bytes] | None = None
    directory: Path | None = None
    _names: itertools.count[int] = field(default_factory=itertools.count)

    @classmethod
    def start(cls, *, durable: bool = False) -> PostgresServer:
        """Start a throwaway cluster. Tests leave durability off for speed; ``durable`` keeps
        fsync, synchronous commit and full page writes on (benchmarks of durable writes)."""
        if not (POSTGRES_BIN / "initdb").exists():
            raise RuntimeError(f"PostgreSQL 15 is not installed ({POSTGRES_BIN}); run `make test` as root")
        user = processes.unprivileged_user()
        directory = Path(tempfile.mkdtemp(prefix="sapphire-pg-"))
        data, sockets = directory / "data", directory / "run"
        sockets.mkdir()
        processes.chown_tree(directory, user)
        subprocess.run(
            processes.as_user(
                [
                    str(POSTGRES_BIN / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                ],
                user,
            ),
            check=True,
            capture_output=True,
        )
        port = processes.free_port()
        durability = "on" if durable else "off"
        command = [
            str(POSTGRES_BIN / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets),
            "-c", "listen_addresses=127.0.0.1", "-c", f"fsync={durability}",
            "-c", f"synchronous_commit={durability}", "-c", f"full_page_writes={durability}",
            "-c", "max_connections=300",
        ]  # fmt: skip
        with (directory / "postgres.log").open("wb") as log:
            process = subprocess.Popen(processes.as_user(command, user), stdout=log, stderr=subprocess.STDOUT)
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

        def accepting() -> bool:
            with psycopg.connect(url, connect_timeout=1):
                return True

        processes.wait_until(accepting, timeout=30, what="PostgreSQL to accept connections")
        return cls(admin_url=url, process=process, directory=directory)

    @classmethod
    def existing(cls, url: str) -> PostgresServer:
        return cls(admin_url=_postgres_url(url.replace("+psycopg", ""), "postgres"))

    def create_database(self, *, template: str | None = None) -> str:
        """Create an empty database (or a copy of ``template``); return its ``postgresql://`` URL."""
        name = f"sapphire_test_{next(self._names)}_{id(self) % 10_000}"
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            clause = f' TEMPLATE "{template}"' if template else ""
            connection.execute(f'CREATE DATABASE "{name}"{clause}')
        return _postgres_url(self.admin_url, name)

    def drop_database(self, url: str) -> None:
        name = make_url(url).database
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.process is not None:
            processes.stop_process(self.process)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class RedisServer:
    """A Redis server in a temporary directory (it can be stopped and restarted), or an existing one."""

    port: int
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None
    directory: Path | None = None
    password: str | None = None
    _next_db: itertools.cycle[int] = field(default_factory=lambda: itertools.cycle(range(1, 16)))

    @classmethod
    def start(cls) -> RedisServer:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed; run `make test` as root")
        server = cls(port=processes.free_port(), directory=Path(tempfile.mkdtemp(prefix="sapphire-redis-")))
        server.resume()
        return server

    @classmethod
    def existing(cls, url: str) -> RedisServer:
        parsed = make_url(url.replace("redis://", "redis+x://", 1))
        return cls(port=parsed.port or 6379, host=parsed.host or "127.0.0.1", password=parsed.password)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    def resume(self) -> None:
        """(Re)start the server on the same port, for outage tests."""
        if self.directory is None:
            raise RuntimeError("cannot start an external Redis server")
        command = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
            "--save", "", "--appendonly", "no", "--databases", "16",
        ]  # fmt: skip
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        processes.wait_until(lambda: self.client().ping() is True, timeout=15, what="Redis to answer PING")

    def pause(self) -> None:
        """Stop the server; ``resume`` starts it again on the same port."""
        if self.process is None:
            raise RuntimeError("cannot stop an external Redis server")
        processes.stop_process(self.process)
        self.process = None

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, db=db, password=self.password, socket_timeout=2)

    def fresh_database(self) -> str:
        """A flushed database index, as a URL. Pub/sub is server-wide, so also use a key prefix."""
        db = next(self._next_db)
        self.client(db).flushdb()
        return self.url.rsplit("/", 1)[0] + f"/{db}"

    def stop(self) -> None:
        if self.process is not None:
            processes.stop_process(self.process)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)


def advisory_lock_backends(database_url: str, key: int, *, granted: bool) -> list[int]:
    """The backends of ``database_url``'s database that hold (``granted``) or wait for (not
    ``granted``) the session advisory lock ``key``: a fact Postgres reports, so a test can see
    that a migration is blocked on the lock rather than hope it is by now. pg_locks shows a bigint
    key as classid (its high 32 bits), objid (its low 32 bits) and objsubid 1."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted = %s"
            " AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (granted, key >> 32, key & 0xFFFFFFFF),
        ).fetchall()
    return [int(row[0]) for row in rows]
