"""What the sync and quota benchmarks share: an in-process sandbox, a fresh store, memory
readings, per-stream timings and the tables they print.

Not a benchmark itself; ``bench/sync_large.py``, ``bench/sync_incremental.py`` and
``bench/quota_budget.py`` import it (see bench/README.md).
"""

from __future__ import annotations

import logging
import os
import platform
import resource
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.settings import Settings, load_settings  # noqa: E402
from sandbox.server import Sandbox, SandboxServer  # noqa: E402
from store.db import Database  # noqa: E402

# A fixed "now" for the demo world (a Wednesday afternoon, as in tests/conftest.py), so every
# run of a benchmark syncs the same data.
WORLD_NOW = datetime(2026, 11, 18, 20, 0, 0)
WORLD_SEED = 7
# The tools a benchmark counts calls for (sandbox route prefixes).
TOOLS = ("podio", "jira", "google")

console = Console(width=110)


# --- memory ------------------------------------------------------------------------------


def rss_mb() -> float:
    """Resident set size of this process now (VmRSS of /proc/self/status), in MB."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (getrusage: KB on Linux), in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- logs and per-stream timing ------------------------------------------------------------


@dataclass
class StreamClock:
    """Marks the moment each stream finishes (the connectors' ``sync.stream.done`` log
    event), so a source's time can be split between its streams: a stream runs from the
    previous mark (or the source's start) to its own."""

    marks: list[tuple[str, str, float]] = field(default_factory=list)

    def __call__(self, _logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("event") == "sync.stream.done":
            self.marks.append((str(event.get("source")), str(event.get("stream")),
                               time.perf_counter()))
        return event

    def durations(self, started: float) -> dict[tuple[str, str], float]:
        """(source, stream) -> seconds, for the marks taken after ``started``."""
        out: dict[tuple[str, str], float] = {}
        previous = started
        for source, stream, at in self.marks:
            if at < started:
                continue
            out[(source, stream)] = at - previous
            previous = at
        return out


def quiet_logs(clock: StreamClock | None = None, level: str = "WARNING") -> None:
    """structlog at ``level`` (benchmarks print tables, not log lines), with the stream clock
    seeing every event before the level filter drops it."""
    processors: list[Any] = [structlog.processors.add_log_level]
    if clock is not None:
        processors.append(clock)
    threshold = logging.getLevelNamesMapping()[level]

    def drop_below(_logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        if logging.getLevelNamesMapping().get(method.upper(), logging.INFO) < threshold:
            raise structlog.DropEvent
        return event

    processors += [drop_below, structlog.dev.ConsoleRenderer(colors=False)]
    structlog.configure(processors=processors,
                        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
                        cache_logger_on_first_use=False)
    logging.getLogger("httpx").setLevel(logging.WARNING)


# --- the sandbox and the store ---------------------------------------------------------


@contextmanager
def fresh_store(database_url: str | None) -> Iterator[str]:
    """A database URL on an empty store: a SQLite file in a temp dir, or, for a PostgreSQL
    URL, a new schema in that database (dropped afterwards)."""
    if not database_url:
        with tempfile.TemporaryDirectory(prefix="saeko-bench-") as folder:
            yield f"sqlite:///{folder}/bench.db"
        return
    if not database_url.startswith("postgresql"):
        raise SystemExit("--database-url must be a PostgreSQL URL "
                         "(postgresql+psycopg://user@host:5432/db); SQLite is the default")
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    joiner = "&" if "?" in database_url else "?"
    try:
        yield f"{database_url}{joiner}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@dataclass
class Bench:
    """One benchmark's sandbox (served on 127.0.0.1), settings pointing at it, and store."""

    box: Sandbox
    server: SandboxServer
    settings: Settings
    db: Database
    marks: dict[str, int] = field(default_factory=dict)  # a benchmark's own bookmarks
    polling: Counter[str] = field(default_factory=Counter)  # quota_budget: the ticks' calls
    morning: Counter[str] = field(default_factory=Counter)  # quota_budget: the 9:00 rules'

    def tool(self, name: str) -> Any:
        """An emulated tool, for its UI helpers (``update_item_as``, ``register_webhook`` …)."""
        return self.box.tools[name]

    def calls(self) -> dict[str, int]:
        """Calls the sandbox served so far, per tool."""
        return {tool: self.box.calls.total(tool) for tool in TOOLS}


@contextmanager
def running_bench(clients: int, database_url: str | None, *, live_clock: bool = False,
                  **overrides: Any) -> Iterator[Bench]:
    """Seed the demo world at ``clients``, serve it, and open a fresh, upgraded store.

    By default the world ends at WORLD_NOW and the sandbox clock is frozen there (as in the
    tests; benchmarks move it themselves). ``live_clock`` instead builds the world up to
    the current hour and lets the clock run, for the service, whose rules read the real
    time. ``overrides`` are extra settings.
    """
    box = Sandbox(clients=clients, seed=WORLD_SEED, now=None if live_clock else WORLD_NOW)
    if not live_clock:
        box.clock.freeze(WORLD_NOW)
    server = SandboxServer(box).start()
    try:
        with fresh_store(database_url) as url:
            env = {key.lower(): value for key, value in box.env().items()}
            settings = load_settings(**env, database_url=url, log_level="WARNING",
                                     **overrides)
            db = Database(url)
            db.upgrade()
            try:
                yield Bench(box, server, settings, db)
            finally:
                db.dispose()
    finally:
        server.stop()


# --- printing ---------------------------------------------------------------------------


def machine() -> str:
    """One line naming the machine the figures come from."""
    return (f"{datetime.now().strftime('%Y-%m-%d %H:%M')} · {platform.machine()} · "
            f"{os.cpu_count()} CPUs (shared) · Python {platform.python_version()} · "
            f"{platform.system()} {platform.release()}")


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """Print a table: first column left-aligned, the figures right-aligned."""
    console.print(f"\n[bold]{title}[/bold]")
    out = Table()
    for number, column in enumerate(columns):
        out.add_column(column, justify="left" if number == 0 else "right")
    for row in rows:
        out.add_row(*(_cell(v) for v in row))
    console.print(out)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
