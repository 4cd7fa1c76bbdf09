"""The test services are the real thing: PostgreSQL 15 and Redis 7, not stand-ins."""

from __future__ import annotations

import psycopg

from tests.support import services


def test_postgres_is_postgresql_15(database_url: str) -> None:
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT version()").fetchone()
    assert row is not None
    assert str(row[0]).startswith("PostgreSQL 15."), row[0]


def test_each_test_gets_its_own_empty_database(database_url: str) -> None:
    with psycopg.connect(database_url) as connection:
        tables = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        connection.execute("CREATE TABLE only_here (id int)")
    assert tables == (0,)


def test_redis_is_redis_7(redis_server: services.RedisServer, redis_url: str) -> None:
    info = redis_server.client().info("server")
    assert str(info["redis_version"]).startswith("7."), info["redis_version"]
    db = int(redis_url.rsplit("/", 1)[1])
    assert redis_server.client(db).dbsize() == 0


def test_redis_can_be_stopped_and_restarted(own_redis_server: services.RedisServer) -> None:
    own_redis_server.client().set("k", "v")
    own_redis_server.pause()
    try:
        own_redis_server.client().ping()
    except Exception as error:
        down = type(error).__name__
    else:
        down = ""
    own_redis_server.resume()
    assert down == "ConnectionError"
    assert own_redis_server.client().ping() is True
