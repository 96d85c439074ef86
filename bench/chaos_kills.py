"""The chaos suite's writes and kill points (``bench/chaos.py``): which requests write to a
tool and which ledger action makes each, the baseline's writes paired with their ledger
rows, and the kill points chosen among them (lost responses, between two actions of one
rule, inside one action, before any effect).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass

from chaos_plan import PLAN_SEED

from sandbox.core import JournalEntry

# --- writes and kill points ----------------------------------------------------------------

# Requests that change something in a tool (OAuth, filters and searches are reads).
READ_BY_POST = re.compile(r"/oauth|/token|/filter|/search|approximate-count|/verify")
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
ACTION_OF_WRITE = [  # (tool, method, path pattern) -> the ledger action that makes it
    ("podio", "PUT", re.compile(r"^/item/\d+/?$"), "podio.actualizar"),
    ("podio", "POST", re.compile(r"^/task/"), "podio.tarea"),
    ("podio", "POST", re.compile(r"^/comment/"), "podio.comentario"),
    ("jira", "POST", re.compile(r"/issue/?$"), "jira.crear"),
    ("jira", "POST", re.compile(r"/remotelink/?$"), "jira.crear (remote link)"),
    ("jira", "POST", re.compile(r"/comment/?$"), "jira.comentar"),
    ("google", "POST", re.compile(r"/messages/send$"), "gmail.enviar"),
    ("google", "POST", re.compile(r"/events$"), "calendar"),
]


def is_write(entry: JournalEntry) -> bool:
    return entry.method in WRITE_METHODS and not READ_BY_POST.search(entry.path)


def action_of(entry: JournalEntry) -> str:
    for tool, method, pattern, action in ACTION_OF_WRITE:
        if entry.tool == tool and entry.method == method and pattern.search(entry.path):
            return action
    return f"{entry.tool} {entry.method}"


@dataclass(frozen=True)
class WriteSeen:
    """One write of a baseline cycle, with the ledger row it belongs to."""

    cycle: int  # plan step index
    tool: str
    method: str
    path: str
    occurrence: int  # how many writes with this method and path came before, in the cycle
    order: int  # its place among the cycle's writes
    action: str
    rule: str
    position: int  # the action's position among the rule's actions run for that trigger


@dataclass(frozen=True)
class KillPoint:
    cycle: int
    write: WriteSeen
    when: str  # before | after
    category: str
    recover: str  # now: restart at once; next: the next planned cycle recovers

    def label(self) -> str:
        w = self.write
        return (f"step {self.cycle} {self.when} {w.action} of {w.rule} "
                f"({w.method} {w.tool}{w.path}) [{self.category}, recover {self.recover}]")


def align_writes(cycle: int, writes: list[JournalEntry],
                 rows: list[tuple[int, str, str, str, int]]) -> list[WriteSeen]:
    """Pair a baseline cycle's writes with its new ledger rows (sent in id order; a Jira
    create is two writes: the issue and its remote link)."""
    out: list[WriteSeen] = []
    queue = [row for row in rows if row[3] == "done"]  # omitted/dead rows wrote nothing
    current: tuple[int, str, str, str, int] | None = None
    occurrences: Counter[tuple[str, str, str]] = Counter()
    previous: dict[str, str] = {}
    for entry in writes:
        action = action_of(entry)
        if not action.endswith("(remote link)"):
            index = next((i for i, row in enumerate(queue) if row[2] == action), None)
            if index is not None:
                current = queue[index]
                del queue[:index + 1]
        rule = current[1].split("|")[0] if current else "?"
        dedupe = current[1].split("|")[1] if current else "?"
        group = f"{rule}|{dedupe}"
        position = 0 if previous.get("group") != group else int(previous["position"]) + 1
        if action.endswith("(remote link)"):
            position = int(previous.get("position", 0))
        previous = {"group": group, "position": str(position)}
        key = (entry.tool, entry.method, entry.path)
        out.append(WriteSeen(cycle, entry.tool, entry.method, entry.path, occurrences[key],
                             len(out), action, rule, position))
        occurrences[key] += 1
    return out


def choose_kill_points(writes: list[WriteSeen], total: int, trials: int
                       ) -> list[list[KillPoint]]:
    """Spread ``total`` kill points over ``trials`` trials, categories taken in turn, at
    most one per cycle. One in three recovers at once ("now"), the others in the next
    planned cycle ("next"); a point in the cycle after a "next" one must not share its
    method and path with that cycle's writes left to redo (they come first and would be
    counted)."""
    candidates: dict[str, list[tuple[WriteSeen, str]]] = {
        "lost response": [], "between two actions": [], "inside one action": [],
        "before any effect": []}
    for w in writes:
        if w.action.endswith("(remote link)"):
            candidates["inside one action"].append((w, "before"))
            continue
        candidates["lost response"].append((w, "after"))
        candidates["between two actions" if w.position > 0 else "before any effect"].append(
            (w, "before"))
    rng = random.Random(PLAN_SEED)
    for pool in candidates.values():
        rng.shuffle(pool)
    chosen: list[dict[int, KillPoint]] = [{} for _ in range(trials)]
    order = list(candidates)
    picked = 0
    for turn in range(total * 40):  # bounded
        if picked >= total or not any(candidates.values()):
            break
        pool = candidates[order[turn % len(order)]]
        trial = chosen[picked % trials]
        recover = "now" if picked % 3 == 0 else "next"
        for index, (write, when) in enumerate(pool):
            point = KillPoint(write.cycle, write, when, order[turn % len(order)], recover)
            if _fits(point, trial, writes):
                trial[write.cycle] = point
                picked += 1
                pool.pop(index)
                break
            fallback = KillPoint(write.cycle, write, when, point.category, "now")
            if recover == "next" and _fits(fallback, trial, writes):
                trial[write.cycle] = fallback
                picked += 1
                pool.pop(index)
                break
    return [sorted(t.values(), key=lambda k: k.cycle) for t in chosen if t]


def _leftover(point: KillPoint, writes: list[WriteSeen]) -> set[tuple[str, str, str]]:
    """(tool, method, path) of the writes a "next" recovery redoes before its own."""
    return {(w.tool, w.method, w.path) for w in writes
            if w.cycle == point.cycle and w.order >= point.write.order}


def _fits(point: KillPoint, trial: dict[int, KillPoint], writes: list[WriteSeen]) -> bool:
    if point.cycle in trial:
        return False
    before, after = trial.get(point.cycle - 1), trial.get(point.cycle + 1)
    mine = (point.write.tool, point.write.method, point.write.path)
    if before is not None and before.recover == "next" and mine in _leftover(before, writes):
        return False
    return not (point.recover == "next" and after is not None and
                (after.write.tool, after.write.method, after.write.path)
                in _leftover(point, writes))

