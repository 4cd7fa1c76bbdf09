"""Session-wide fixtures: real PostgreSQL 15, Redis 7 and Kubernetes control plane, isolated
per test; a migrated trader database per test, copied from a template migrated once."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

import sapphire
from sapphire.migrations import config as migrations
from sapphire.resources import crdgen
from tests.support import kube, services
from tests.support import node as process_node


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[services.PostgresServer]:
    url = os.environ.get("TEST_DATABASE_URL")
    server = services.PostgresServer.existing(url) if url else services.PostgresServer.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[services.RedisServer]:
    url = os.environ.get("TEST_REDIS_URL")
    server = services.RedisServer.existing(url) if url else services.RedisServer.start()
    yield server
    server.stop()


@pytest.fixture
def database_url(postgres_server: services.PostgresServer) -> Iterator[str]:
    """A fresh, empty Postgres database for this test only (``postgresql://`` URL)."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)


@pytest.fixture(scope="session")
def migrated_template(postgres_server: services.PostgresServer) -> Iterator[str]:
    """The name of a database at alembic head; tests get copies of it."""
    url = postgres_server.create_database()
    migrations.upgrade(url)
    yield str(make_url(url).database)
    postgres_server.drop_database(url)


@pytest.fixture
def trader_database_url(postgres_server: services.PostgresServer, migrated_template: str) -> Iterator[str]:
    """A migrated Postgres database of this test's own (``postgresql+psycopg://``)."""
    url = postgres_server.create_database(template=migrated_template)
    yield url.replace("postgresql://", "postgresql+psycopg://", 1)
    postgres_server.drop_database(url)


@pytest.fixture
def redis_url(redis_server: services.RedisServer) -> str:
    """A flushed Redis database index for this test only."""
    return redis_server.fresh_database()


@pytest.fixture
def redis_prefix() -> str:
    """A key and channel prefix unique to this test (pub/sub channels are server-wide)."""
    return f"t{uuid.uuid4().hex[:10]}:"


@pytest.fixture
def own_redis_server() -> Iterator[services.RedisServer]:
    """A Redis server of this test's own, which the test may stop and restart (outage tests)."""
    server = services.RedisServer.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def control_plane() -> Iterator[kube.ControlPlane]:
    """A real kube-apiserver + controller-manager + etcd, with a process node when we own it."""
    plane = kube.start_control_plane()
    node = process_node.ProcessNode(plane) if plane.owns_nodes else None
    if node is not None:
        node.start()
    plane.node = node
    yield plane
    if node is not None:
        node.stop()
    plane.stop()


@pytest.fixture
def namespace(control_plane: kube.ControlPlane) -> Iterator[str]:
    """A fresh namespace for this test."""
    with kube.fresh_namespace(control_plane) as name:
        yield name


@pytest.fixture(scope="session")
def installed_crds(control_plane: kube.ControlPlane) -> list[str]:
    """Apply ``crds/`` as a new user would, and wait until every CRD is Established.

    Returns the CRD names. The CRDs stay installed for the session: they are cluster-scoped
    and every test works in its own namespace.
    """
    control_plane.kubectl("apply", "-f", str(kube.REPOSITORY / "crds"))
    names = [resource.crd_name for resource in crdgen.RESOURCES]
    for name in names:
        control_plane.kubectl(
            "wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s", timeout=90
        )
    # Refresh kubectl's discovery cache: it may predate the CRDs, and `kubectl get sapphire`
    # expands the category from that cache.
    control_plane.kubectl("api-resources", f"--api-group={sapphire.GROUP}")
    return names
