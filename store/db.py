"""Engine, sessions and migrations for SQLite (default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# How far this process's clock is from the wall clock: zero, except while `saeko-sync demo`
# runs its world at a fixed instant (jobs/demo.py, ``shifted_clock``), so that the store, the
# rules and the sync all see the demo's time and the same seed gives the same demo.
_clock_offset = timedelta()


def utcnow() -> datetime:
    """Naive UTC now: the model stores UTC without zone (portable across both stores)."""
    return datetime.now(UTC).replace(tzinfo=None) + _clock_offset


@contextmanager
def shifted_clock(start: datetime) -> Iterator[timedelta]:
    """Within the block, ``utcnow()`` starts at ``start`` (naive UTC) and advances with the
    wall clock; yields the offset (for the sandbox's clock to follow). Restored on exit."""
    global _clock_offset
    previous = _clock_offset
    _clock_offset = start - datetime.now(UTC).replace(tzinfo=None)
    try:
        yield _clock_offset
    finally:
        _clock_offset = previous


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and its parent folder created."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

    return engine


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply the Alembic migrations to the database behind ``engine``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


class Database:
    """The store: an engine and a session factory."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def upgrade(self) -> None:
        upgrade(self.engine)

    def revisions(self) -> tuple[str | None, str | None]:
        """(the database's migration, the code's newest); raises when it cannot connect."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        with self.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        return current, ScriptDirectory.from_config(config).get_current_head()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on error."""
        with self.sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()
