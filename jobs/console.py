"""What the CLI and the demo both print with: the consoles, the sync progress bars and
table, and the ``.env`` writer (shared here so that neither imports the other)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from store.sync import SyncReport

console = Console()
err_console = Console(stderr=True)


class RichProgress:
    """ProgressFn that draws one bar per stream."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def __call__(self, stream: str, advance: int, total: int | None) -> None:
        if stream not in self.tasks:
            self.tasks[stream] = self.progress.add_task(stream, total=total)
        task = self.tasks[stream]
        if total is not None:
            self.progress.update(task, total=max(total, self.progress.tasks[task].completed
                                                 + advance))
        self.progress.advance(task, advance)


def progress_bars() -> Progress:
    """The progress display of a sync, on stderr (off when it is not a terminal)."""
    return Progress(TextColumn("[bold]{task.description:<12}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=err_console,
                    transient=False, disable=not err_console.is_terminal)


def sync_table(reports: list[SyncReport], title: str = "Sincronización") -> RenderableType:
    """One row per stream synced (what changed, API calls), narrow enough for 80 columns,
    then one line per failed stream with its whole error, wrapped at words: the setting a
    message tells you to fix is never cut."""
    if not reports:
        return Group()
    table = Table(title=title, box=box.SIMPLE_HEAD, padding=0, show_edge=False)
    table.add_column("flujo", no_wrap=True)
    for column in ("nuevos", "actualizados", "sin\ncambio", "borrados", "carta\nmuerta",
                   "llamadas\nAPI", "estado"):
        table.add_column(column, justify="right", no_wrap=True)
    failed: list[Text] = []
    for r in reports:
        c = r.counts
        name = f"{r.source}/{r.stream}"
        table.add_row(name, str(c.created), str(c.updated), str(c.unchanged), str(c.deleted),
                      str(c.dead_lettered), str(r.api_calls),
                      Text("✗", style="red") if r.error else Text("✓", style="green"))
        if r.error:
            failed.append(Text(f"✗ {name}: {r.error}", style="red"))
    return Group(table, *failed)


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """Write KEY=value lines, keeping unrelated lines of an existing file."""
    kept: list[str] = []
    if path.exists():
        kept = [line for line in path.read_text(encoding="utf-8").splitlines()
                if line.split("=", 1)[0].strip() not in values]
    lines = kept + [f"{key}={value}" for key, value in sorted(values.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
