"""Validation problems: each one names the file, the line and, in Spanish, what to fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

# How close a misspelling must be to be suggested (difflib ratio; 0.6 is difflib's default).
SUGGESTION_CUTOFF = 0.6


@dataclass(frozen=True)
class Problem:
    """One mistake in a rule file, ready to print as ``file:line: message``."""

    path: str
    line: int
    message: str
    rule_id: str | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {"path": self.path, "line": self.line, "message": self.message,
                "rule_id": self.rule_id}


def suggest(word: str, candidates: Iterable[str]) -> str:
    """'; ¿quisiste decir "x"?' for the closest candidate, or '' when none is close."""
    pool = [c for c in candidates if c]
    close = difflib.get_close_matches(word, pool, n=1, cutoff=SUGGESTION_CUTOFF)
    if not close:
        lowered = {c.lower(): c for c in pool}
        close = [lowered[word.lower()]] if word.lower() in lowered else []
    return f'; ¿quisiste decir "{close[0]}"?' if close else ""


def one_of(candidates: Iterable[str]) -> str:
    """'"a", "b" o "c"' for messages listing the allowed values."""
    items = [f'"{c}"' for c in candidates]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " o " + items[-1]


class ProblemSink:
    """Collects problems for one file; knows the file's path for every message."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []
        self.rule_id: str | None = None

    def add(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.path, max(1, line), message, self.rule_id))

    def __bool__(self) -> bool:
        return bool(self.problems)
