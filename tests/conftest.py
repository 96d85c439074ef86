"""Shared fixtures: a sandbox served over HTTP on 127.0.0.1, and stores on SQLite and,
where reachable, PostgreSQL (skipped with a visible reason otherwise)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest

# Shared helper modules assert too: let pytest explain their failures like a test's.
pytest.register_assert_rewrite("tests.desk_helpers", "tests.rules_helpers")

from sandbox.server import Sandbox, SandboxServer  # noqa: E402
from sandbox.world import World, build_world  # noqa: E402
from store.db import Database  # noqa: E402

# A fixed "now" for the demo world (a Wednesday afternoon), so tests are deterministic.
WORLD_NOW = datetime(2026, 11, 18, 20, 0, 0)
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def small_world() -> World:
    return build_world(clients=6, seed=11, now=WORLD_NOW)


@pytest.fixture
def sandbox(small_world: World) -> Iterator[Sandbox]:
    """A fresh sandbox (own state) served on a free port for one test."""
    box = Sandbox(build_world(clients=6, seed=11, now=WORLD_NOW))
    box.clock.freeze(WORLD_NOW)
    server = SandboxServer(box).start()
    try:
        yield box
    finally:
        server.stop()


def _postgres_reason() -> str | None:
    try:
        import psycopg

        with psycopg.connect("host=127.0.0.1 port=5432 dbname=test user=postgres",
                             connect_timeout=2):
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"PostgreSQL not reachable at 127.0.0.1:5432 ({exc.__class__.__name__}: {exc})"


_PG_SKIP = _postgres_reason()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A database URL on an empty store: SQLite in tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/store.db"
        return
    yield from _postgres_schema()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL schema only (multi-replica tests); skipped without a server."""
    yield from _postgres_schema()


def _postgres_schema() -> Iterator[str]:
    if _PG_SKIP:
        pytest.skip(_PG_SKIP)
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    dsn = "host=127.0.0.1 port=5432 dbname=test user=postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def db(store_url: str) -> Iterator[Database]:
    database = Database(store_url)
    database.upgrade()
    try:
        yield database
    finally:
        database.dispose()
