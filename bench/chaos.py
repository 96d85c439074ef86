"""Chaos suite (issue 10): the same day of work gives the same result, whatever happens.

A fixed, seeded activity plan (new tickets with only a title and a user or an email, answers,
escalations, Jira resolutions, CSAT and NPS answers, hand-offs to the AM, manual closes) is
replayed through the sandbox's UI helpers (``sandbox.activity.StaffSimulator.act``) on a
fresh sandbox of the test world, with the sandbox clock frozen and moved by the harness.
Cycles are real `saeko-sync run` subprocesses (or `serve` replicas), so ``kill -9`` is real.
Every scenario's final sandbox state — Podio fields, tasks, comments, Gmail messages, Jira
issues and comments, Calendar events — and its action ledger are compared with the
fault-free baseline:

  a  baseline: a cycle after each step of the plan (the full run replays it twice: the
     repeat must match, or the harness itself is not deterministic)
  b  10 % and 30 % injected faults on every tool and endpoint (429/420 with Retry-After,
     5xx, timeouts, slow answers, dropped connections, lost responses), then fault-free
     cycles until quiescent
  c  kill -9 of `run` at chosen writes (before the tool does the work, or after it and
     before the ledger records it — a lost response), between two actions of one rule, and
     a few of `serve`; restarted until quiescent
  d  two `serve` replicas on PostgreSQL, one killed mid-work; the survivor finishes
  e  after the baseline, an EMPTY store on the same workspace: it must add no effect
  f  one cycle after all the changes instead of one after each

    .venv/bin/python bench/chaos.py                 # everything (see bench/README.md)
    .venv/bin/python bench/chaos.py --quick         # what tests/test_chaos.py runs
    .venv/bin/python bench/chaos.py --only a,c --kills 12 --seeds 1,2

Prints one row per scenario (trials, faults injected, kills, lost, duplicated, differing
fields) and what differed; exits 1 if any row is not 0/0/0. Only 127.0.0.1 traffic; every
wait and loop is bounded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import structlog  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from starlette.requests import ClientDisconnect  # noqa: E402

from sandbox.activity import AGENTS, StaffSimulator  # noqa: E402
from sandbox.core import DroppedConnection, JournalEntry  # noqa: E402
from sandbox.server import Sandbox, SandboxServer  # noqa: E402
from sandbox.world import _TITLES, JIRA_WORKFLOWS, World, build_world, podio_item_id  # noqa: E402
from store.db import Database  # noqa: E402
from store.models import ActionLedger, ChangeEvent, JobRun, WebhookInbox  # noqa: E402

# --- the world and the day ---------------------------------------------------------------

WORLD_NOW = datetime(2026, 11, 18, 20, 0, 0)  # as tests/conftest.py: Wednesday 12:00 Tijuana
WORLD_CLIENTS, WORLD_SEED = 6, 11
TIJUANA = ZoneInfo("America/Tijuana")
DAY_START = datetime(2026, 11, 19, 9, 0, tzinfo=TIJUANA)  # the planned day: Thursday
FULL_STEP = timedelta(minutes=6)
QUICK_STEP = timedelta(minutes=30)
PLAN_SEED = 20261119
SIMULATOR_SEED = 1
# Rules and config copied from config/ for every run (the shipped T1-T8 only).
CONFIG_FILES = ("calendar.yaml", "podio.yaml", "staff.yaml", "google.yaml")

# --- bounds --------------------------------------------------------------------------------

CYCLE_TIMEOUT_SECONDS = 180.0  # one `saeko-sync run`
SETTLE_CYCLES = 8  # fault-free cycles after a trial until quiescent
RECOVER_CYCLES = 5  # restarts after a kill until the ledger is clean
SERVE_START_SECONDS = 40.0
SERVE_SETTLE_SECONDS = 90.0
HELD_ELSEWHERE = 3  # `saeko-sync run` exit code: another process holds the rule lease
HELD_RETRIES = 10
# Client settings for every run: short backoffs (the sandbox answers at once) and timeouts
# shorter than the timeout fault's delay, so a "timeout" fault is a real client timeout.
CLIENT_TIMEOUT_SECONDS = 2.0
TIMEOUT_FAULT_SECONDS = 2.6
HARNESS_ENV = {
    "LOG_LEVEL": "WARNING", "LOG_FORMAT": "console",
    "RULES_RETRY_BASE_SECONDS": "0",  # failed effects are due again at the frozen "now"
    "PODIO_RETRY_BASE_SECONDS": "0.01", "PODIO_RATE_LIMIT_BACKOFF_SECONDS": "0.05",
    "PODIO_RATE_LIMIT_PER_HOUR": "1000000",
    "JIRA_RETRY_BASE_SECONDS": "0.01", "GOOGLE_RETRY_BASE_SECONDS": "0.01",
    "PODIO_TIMEOUT_SECONDS": str(CLIENT_TIMEOUT_SECONDS),
    "JIRA_TIMEOUT_SECONDS": str(CLIENT_TIMEOUT_SECONDS),
    "GOOGLE_TIMEOUT_SECONDS": str(CLIENT_TIMEOUT_SECONDS),
}
RAISED_QUOTA = 1_000_000
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

console = Console(width=150)


# --- the plan --------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewTicket:
    """The n-th ticket the plan creates (its Podio id is known once it exists)."""

    n: int


Target = int | str | NewTicket | None


@dataclass(frozen=True)
class Action:
    kind: str  # a StaffSimulator action
    target: Target = None
    details: tuple[tuple[str, Any], ...] = ()
    note: str = ""  # what the rules should do about it (for the plan printout)


@dataclass(frozen=True)
class Step:
    at: datetime  # the sandbox clock (naive UTC) when the step's actions happen
    actions: tuple[Action, ...]


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _act(kind: str, target: Target = None, note: str = "", **details: Any) -> Action:
    return Action(kind, target, tuple(sorted(details.items())), note)


def _profile(agent_email: str, world: World) -> int:
    key = agent_email.split("@")[0]
    return next(s.podio_profile_id for s in world.staff if s.key == key)


def _stories(world: World, rng: random.Random, quick: bool) -> list[list[Action]]:
    """Each story is the actions on one record, in order; the plan interleaves them."""
    school_client = {s.key: s.client_key for s in world.schools}
    with_am = {c.key for c in world.clients if c.am}
    burbuja = {c.key for c in world.clients if c.burbuja}
    users = [u for u in world.users if school_client[u.school_key] in with_am]
    open_escalated = [t for t in world.tickets if t.status == "Escalado" and t.escalation
                      and t.escalation.status != JIRA_WORKFLOWS[t.escalation.project][-1]]
    closed = [t for t in world.tickets if t.status == "Cerrado"]
    rng.shuffle(open_escalated)
    lifecycles = (["answer-csat+", "escalate", "handoff"] if quick else
                  ["answer", "escalate", "handoff", "close", "answer-csat+", "answer-csat-"] * 2)
    stories: list[list[Action]] = []
    for n, life in enumerate(lifecycles):
        user = rng.choice(users)
        module = rng.choice(sorted(_TITLES))
        title = rng.choice(_TITLES[module])
        agent = rng.choice(AGENTS)
        ticket = NewTicket(n)
        story = [_act("new_ticket", ticket, "T1 fills school, client, AM/CSM, product, module",
                      title=title, user=user.key, by_email=(n % 2 == 1), agent=agent)]
        if life.startswith("answer"):
            story.append(_act("answer", ticket, "T2 first response; T6 closes + CSAT survey",
                              agent=agent, responsible=_profile(agent, world)))
        if life == "answer-csat+":
            story.append(_act("csat", ticket, "T6 rating in the ticket; T7 comment + email",
                              score=5, comment="Muy rápida la atención, gracias",
                              email=user.email))
        if life == "answer-csat-":
            story.append(_act("csat", ticket, "T6 rating; T8 task to the desk lead",
                              score=2, comment="No me explicaron bien la solución",
                              email=user.email))
        if life == "escalate":
            story.append(_act("escalate", ticket, "T2; T3 Jira issue + key + comment",
                              agent=agent))
        if life in ("handoff", "close"):
            story.append(_act(life, ticket, "T2; T5 closing data (+ AM task on hand-off)",
                              agent=agent))
        stories.append(story)
    resolves = 1 if quick else 3
    for ticket in open_escalated[:resolves]:
        assert ticket.escalation is not None
        item = podio_item_id("tickets", ticket.key)
        story = [_act("resolve_jira", ticket.escalation.key,
                      "T4 'Por validar' + comment; T2 incident time",
                      resolution=rng.choice(["Corregido", "Configuración ajustada"]))]
        if not quick and ticket is open_escalated[0]:
            story.append(_act("close", item, "T5 closing data (issue already done)",
                              agent=rng.choice(AGENTS)))
        stories.append(story)
    for ticket, kind in zip(open_escalated[resolves:], ["close"] if quick else
                            ["close", "handoff"], strict=False):
        stories.append([_act(kind, podio_item_id("tickets", ticket.key),
                             "T5 closing data + Jira comment (issue still open)",
                             agent=rng.choice(AGENTS))])
    negative_burbuja = next(t for t in reversed(closed) if t.client_key in burbuja)
    stories.append([_act("csat", podio_item_id("tickets", negative_burbuja.key),
                         "T8 desk-lead task + COO task + COO email (burbuja)", score=1,
                         comment="Tardaron demasiado en responder")])
    if not quick:
        standard = [t for t in closed if t.client_key not in burbuja]
        stories.append([_act("csat", podio_item_id("tickets", standard[-1].key),
                             "T7 comment + email", score=4, comment="Excelente servicio")])
        stories.append([_act("csat", podio_item_id("tickets", standard[-2].key),
                             "T8 desk-lead task", score=2,
                             comment="El problema sigue sin resolverse")])
    directivos = [u for u in world.users if u.role == "Directivo"]
    burbuja_boss = next(u for u in directivos if school_client[u.school_key] in burbuja)
    stories.append([_act("nps", burbuja_boss.key, "T8 NPS: AM task + COO task + COO email",
                         score=3, reason="El soporte tarda demasiado")])
    if not quick:
        others = [u for u in directivos if school_client[u.school_key] in with_am - burbuja]
        stories.append([_act("nps", others[0].key, "T8 NPS: AM task", score=5,
                             reason="Muchas fallas en cobranza")])
        stories.append([_act("nps", others[1].key, "nothing (promoter)", score=10,
                             reason="Muy buen acompañamiento")])
    return stories


def make_plan(world: World, *, quick: bool, seed: int = PLAN_SEED) -> list[Step]:
    """The day: stories interleaved at random (seeded), one action per step (full) or up to
    two per step (quick); a story's next action always comes in a later step."""
    rng = random.Random(seed)
    stories = _stories(world, rng, quick)
    per_step, gap = (2, QUICK_STEP) if quick else (1, FULL_STEP)
    steps: list[Step] = []
    at = _utc(DAY_START)
    for _ in range(1000):  # bounded: every round takes at least one action
        if not any(stories):
            break
        ready = [s for s in stories if s]
        rng.shuffle(ready)
        actions = tuple(story.pop(0) for story in ready[:per_step])
        steps.append(Step(at, actions))
        at += gap
    return steps


def plan_lines(plan: list[Step]) -> list[str]:
    out = []
    for number, step in enumerate(plan):
        local = step.at.replace(tzinfo=UTC).astimezone(TIJUANA)
        for action in step.actions:
            target = (f"new#{action.target.n}" if isinstance(action.target, NewTicket)
                      else action.target)
            out.append(f"{number:>3} {local:%H:%M} {action.kind:<12} {target or '':<10} "
                       f"{action.note}")
    return out


class Player:
    """Replays the plan's steps on one sandbox through StaffSimulator.act."""

    def __init__(self, box: Sandbox) -> None:
        self.box = box
        self.simulator = StaffSimulator(box, seed=SIMULATOR_SEED)
        self.tickets: dict[NewTicket, int] = {}  # the plan's new tickets -> Podio item ids

    def resolve(self, target: Target) -> int | str | None:
        if isinstance(target, NewTicket):
            return self.tickets[target]
        return target

    def play(self, step: Step) -> None:
        self.box.clock.freeze(step.at)
        for action in step.actions:
            creates = action.kind == "new_ticket"
            target = None if creates else self.resolve(action.target)
            outcome = self.simulator.act(action.kind, target, **dict(action.details))
            if "skipped" in outcome:
                raise RuntimeError(f"the plan could not be replayed: {outcome}")
            if creates and isinstance(action.target, NewTicket):
                self.tickets[action.target] = self.simulator.created[-1]


# --- sandboxes, stores and cycles --------------------------------------------------------


@contextmanager
def served_sandbox() -> Iterator[Sandbox]:
    """A fresh sandbox of the test world, clock frozen at WORLD_NOW, served on 127.0.0.1;
    the tools' own quotas raised so that only injected faults fail requests."""
    box = Sandbox(build_world(clients=WORLD_CLIENTS, seed=WORLD_SEED, now=WORLD_NOW))
    box.clock.freeze(WORLD_NOW)
    podio: Any = box.tools["podio"]
    podio.set_quota(RAISED_QUOTA, RAISED_QUOTA)
    google: Any = box.tools["google"]
    for bucket in ("sheets_read", "sheets_write", "forms_read", "forms_expensive",
                   "gmail_units", "calendar"):
        google.set_quota(bucket, RAISED_QUOTA)
    server = SandboxServer(box).start()
    try:
        yield box
    finally:
        server.stop()


def copy_config(folder: Path) -> Path:
    """config/ with the shipped rules T1-T8 only (as tests/test_automations_desk.py)."""
    config = folder / "config"
    (config / "rules").mkdir(parents=True, exist_ok=True)
    for name in CONFIG_FILES:
        shutil.copy(ROOT / "config" / name, config / name)
    shutil.copytree(ROOT / "config" / "plantillas", config / "plantillas", dirs_exist_ok=True)
    for rule in sorted((ROOT / "config" / "rules").glob("t[1-8]-*.yaml")):
        shutil.copy(rule, config / "rules" / rule.name)
    return config


@dataclass
class Workspace:
    """Where one harness run keeps its config copy, store files and process logs."""

    root: Path
    config: Path
    no_rules: Path

    @classmethod
    def create(cls, root: Path) -> Workspace:
        no_rules = root / "no-rules"
        no_rules.mkdir(parents=True, exist_ok=True)
        return cls(root, copy_config(root), no_rules)

    def folder(self, name: str) -> Path:
        path = self.root / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        path.mkdir(parents=True, exist_ok=True)
        return path


def base_env(box: Sandbox, url: str, workspace: Workspace) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PODIO_", "JIRA_", "GOOGLE_", "RULES_", "SERVE_", "SYNC_",
                                "INBOX_", "WEBHOOK_", "PUBLIC_", "DATABASE_", "CONFIG_"))}
    env |= box.env() | HARNESS_ENV
    env |= {"DATABASE_URL": url, "CONFIG_DIR": str(workspace.config), "PYTHONPATH": str(ROOT)}
    return env


@dataclass
class CycleResult:
    rc: int | None  # None: timed out (and killed by the harness)
    seconds: float
    killed: bool  # a kill fault killed it
    log: Path


class Cycles:
    """`saeko-sync run` as a subprocess against one sandbox and one store. The sandbox's
    kill faults target the running cycle (its pid is registered while it runs)."""

    def __init__(self, box: Sandbox, url: str, workspace: Workspace, folder: Path) -> None:
        self.box = box
        self.url = url
        self.workspace = workspace
        self.folder = folder
        self.count = 0
        self.held = 0

    def run(self, now: datetime, *, rules_dir: Path | None = None) -> CycleResult:
        for _ in range(HELD_RETRIES):
            result = self._once(now, rules_dir)
            if result.rc != HELD_ELSEWHERE:
                return result
            self.held += 1  # a lease left by a killed cycle: the next try takes it
            time.sleep(0.2)
        return result

    def _once(self, now: datetime, rules_dir: Path | None) -> CycleResult:
        self.count += 1
        env = base_env(self.box, self.url, self.workspace) | {
            "RULES_FROZEN_NOW": now.isoformat()}
        if rules_dir is not None:
            env["RULES_DIR"] = str(rules_dir)
        log = self.folder / f"cycle-{self.count:03d}.log"
        kills_before = len(self.box.faults.kills)
        started = time.monotonic()
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "saeko_sync", "run"],
                                    cwd=self.folder, env=env, stdout=out,
                                    stderr=subprocess.STDOUT)
            self.box.faults.kill_pid = proc.pid
            rc: int | None
            try:
                rc = proc.wait(timeout=CYCLE_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
                rc = None
            finally:
                self.box.faults.kill_pid = None
        killed = any(k.pid == proc.pid for k in self.box.faults.kills[kills_before:])
        return CycleResult(rc, time.monotonic() - started, killed, log)


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder}/store.db"


def copy_sqlite(source_url: str, folder: Path) -> str:
    """A consistent copy of a SQLite store (the backup API, WAL included)."""
    target = folder / "store.db"
    src = sqlite3.connect(source_url.removeprefix("sqlite:///"))
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return sqlite_url(folder)


@contextmanager
def postgres_schema(admin_url: str) -> Iterator[str]:
    """A fresh schema in the PostgreSQL database (dropped afterwards)."""
    from sqlalchemy import create_engine, text

    schema = f"chaos_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    joiner = "&" if "?" in admin_url else "?"
    try:
        yield f"{admin_url}{joiner}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def postgres_reason(admin_url: str) -> str | None:
    try:
        import psycopg

        with psycopg.connect("host=127.0.0.1 port=5432 dbname=test user=postgres",
                             connect_timeout=2):
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"PostgreSQL not reachable at 127.0.0.1:5432 ({type(exc).__name__})"


# --- what the store says --------------------------------------------------------------------

UNFINISHED = ("pending", "failed", "approved", "queued")
EVENT_ID = re.compile(r"\bev\d+\b")


def ledger_rows(db: Database) -> list[tuple[int, str, str, str, int]]:
    with db.session() as s:
        return [(r.id, r.idempotency_key, r.action, r.status, r.attempts or 0)
                for r in s.scalars(select(ActionLedger).order_by(ActionLedger.id))]


def unfinished(db: Database) -> list[tuple[str, str, str]]:
    with db.session() as s:
        return [(r.idempotency_key, r.action, r.status) for r in s.scalars(
            select(ActionLedger).where(ActionLedger.status.in_(UNFINISHED)))]


def ledger_done(db: Database) -> Counter[str]:
    """Done effects per idempotency key, with change-event ids replaced by ``ev*`` (event
    ids depend on how syncs split the changes, not on what was done)."""
    return Counter(EVENT_ID.sub("ev*", key) for _id, key, _a, status, _n in ledger_rows(db)
                   if status == "done")


def ledger_statuses(db: Database) -> Counter[str]:
    return Counter(status for *_x, status, _n in ledger_rows(db))


def count(db: Database, model: Any, *where: Any) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


# --- what the tools hold -------------------------------------------------------------------

# Markers derive from ledger keys, which name change events: the same effect made from
# another event (another split of the changes) carries another marker. Compared without.
MARKERS = [(re.compile(r"\s*\[saeko:[^\]]*\]"), ""), (re.compile(r"saekoref[0-9a-f]+"),
                                                   "saekoref…"),
           (re.compile(r"saeko-[0-9a-f]{24}"), "saeko-…")]


def scrub(text: str) -> str:
    for pattern, replacement in MARKERS:
        text = pattern.sub(replacement, text)
    return text


@dataclass
class ToolState:
    """The workspace as the tools show it: logical effects (identity -> copies) and
    fields (name -> value; effects' attributes under "<identity> #k")."""

    effects: Counter[str] = field(default_factory=Counter)
    fields: dict[str, str] = field(default_factory=dict)

    def add(self, identity: str, **attributes: Any) -> None:
        identity = scrub(identity)
        self.effects[identity] += 1
        copy = self.effects[identity]
        for name, value in attributes.items():
            self.fields[f"{identity} #{copy} {name}"] = _canon(value)


def _canon(value: Any) -> str:
    return scrub(json.dumps(value, sort_keys=True, ensure_ascii=False, default=str))


def tool_state(box: Sandbox) -> ToolState:
    state = ToolState()
    _podio_state(box, state)
    _jira_state(box, state)
    _google_state(box, state)
    return state


def _podio_state(box: Sandbox, state: ToolState) -> None:
    podio: Any = box.tools["podio"]
    for app in ("tickets", "clientes"):
        for item in podio.items(app):
            for external_id, value in podio.values(item).items():
                state.fields[f"podio {app} {item} {external_id}"] = _canon(value)
    for task in sorted(podio.tasks(), key=lambda t: t["task_id"]):
        state.add(f"task on item {task.get('ref_id')}: {task['text']}",
                  responsible=(task.get("responsible") or {}).get("user_id"),
                  due=task.get("due_date"), description=task.get("description"),
                  status=task.get("status"))
    for app in ("tickets", "clientes"):
        for item in podio.items(app):
            for comment in podio.comments(item):
                state.add(f"comment on item {item}: {comment['value']}")


def _issue_identity(issue: dict[str, Any], seen: Counter[str]) -> str:
    ticket = issue["fields"].get("customfield_10050")
    base = f"ticket {str(ticket).split('.')[0]}" if ticket not in (None, "") else issue["key"]
    seen[base] += 1
    return f"jira issue of {base} #{seen[base]}"


def _jira_state(box: Sandbox, state: ToolState) -> None:
    jira: Any = box.tools["jira"]
    seen: Counter[str] = Counter()
    for key in jira.issues():  # in creation order
        issue = jira.issue(key)
        fields = issue["fields"]
        identity = _issue_identity(issue, seen)
        state.effects[identity] += 1
        for name, value in {
            "project": fields["project"]["key"], "summary": fields.get("summary"),
            "status": fields["status"]["name"],
            "resolution": (fields.get("resolution") or {}).get("name"),
            "priority": (fields.get("priority") or {}).get("name"),
            "type": (fields.get("issuetype") or {}).get("name"),
            "remote links": sorted(link["object"]["url"] for link in jira.remote_links(key)),
        }.items():
            state.fields[f"{identity} {name}"] = _canon(value)
        for comment in jira.comments(key):
            state.add(f"jira comment on {identity}: {str(comment.get('body')).strip()}")


def _google_state(box: Sandbox, state: ToolState) -> None:
    google: Any = box.tools["google"]
    for message in google.sent_messages():
        to = ", ".join(sorted(message.get("to") or []))
        state.add(f"email to {to}: {message['subject']}", cc=sorted(message.get("cc") or []),
                  text=message.get("text"))
    for event in google.events("primary"):
        state.add(f"calendar event {event.get('summary')} at {event.get('start')}",
                  attendees=event.get("attendees"), end=event.get("end"))


@dataclass
class Difference:
    lost: int = 0
    duplicated: int = 0
    differing: int = 0
    ledger_lost: int = 0
    ledger_extra: int = 0
    details: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.differing or self.ledger_lost
                    or self.ledger_extra)

    def merge(self, other: Difference, label: str) -> None:
        self.lost += other.lost
        self.duplicated += other.duplicated
        self.differing += other.differing
        self.ledger_lost += other.ledger_lost
        self.ledger_extra += other.ledger_extra
        self.details += [f"[{label}] {line}" for line in other.details]


def compare(base: ToolState, trial: ToolState) -> Difference:
    """Effects lost (in the baseline, missing in the trial), duplicated (more copies than
    the baseline) and differing fields (values, and the attributes of effect copies both
    have)."""
    out = Difference()
    for identity in sorted(set(base.effects) | set(trial.effects)):
        have, want = trial.effects[identity], base.effects[identity]
        if have < want:
            out.lost += want - have
            out.details.append(f"lost {want - have}× {identity}")
        elif have > want:
            out.duplicated += have - want
            out.details.append(f"extra {have - want}× {identity} (baseline {want})")
    for name in sorted(set(base.fields) | set(trial.fields)):
        if name.split(" #")[0] in base.effects and _copy_missing(name, base, trial):
            continue  # an attribute of a copy only one side has: counted as lost/extra
        if base.fields.get(name) != trial.fields.get(name):
            out.differing += 1
            out.details.append(f"field {name}: baseline {base.fields.get(name, '—')} "
                               f"≠ {trial.fields.get(name, '—')}")
    return out


def _copy_missing(name: str, base: ToolState, trial: ToolState) -> bool:
    match = re.match(r"(.*) #(\d+) ", name)
    if not match:
        return False
    identity, copy = match.group(1), int(match.group(2))
    return copy > min(base.effects[identity], trial.effects[identity])


def compare_ledger(base: Counter[str], trial: Counter[str], out: Difference) -> None:
    for key in sorted(set(base) | set(trial)):
        if trial[key] < base[key]:
            out.ledger_lost += base[key] - trial[key]
            out.details.append(f"ledger: not done {key}")
        elif trial[key] > base[key]:
            out.ledger_extra += trial[key] - base[key]
            out.details.append(f"ledger: extra done {key}")


def logical_duplicates(state: ToolState) -> list[str]:
    """Effects with more than one copy in one state (two emails with the same recipients
    and subject, two identical comments on one item...)."""
    return [f"{n}× {identity}" for identity, n in sorted(state.effects.items()) if n > 1]


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


# --- trials ------------------------------------------------------------------------------------


@dataclass
class Trial:
    scenario: str
    name: str
    state: ToolState | None = None
    ledger: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    faults: int = 0
    kills: int = 0
    cycles: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    compare_ledger: bool = True
    difference: Difference | None = None
    # Only the baseline keeps these (for kill points and the empty-store scenario).
    writes: list[WriteSeen] = field(default_factory=list)


@dataclass
class Context:
    """What every trial shares: the plan, the workspace, the switched-on store."""

    plan: list[Step]
    workspace: Workspace
    switched_on: str  # URL of a SQLite store after the first sync with no rules
    verbose: bool = False
    log: Callable[[str], None] = console.print

    @property
    def end(self) -> datetime:
        return self.plan[-1].at


def switch_on(workspace: Workspace) -> str:
    """The world as it was when the automations were switched on: one `saeko-sync run` with
    no rules (the first sync's events go to an empty rule set), kept as a store template."""
    folder = workspace.folder("switched-on")
    with served_sandbox() as box:
        db_url = sqlite_url(folder)
        result = Cycles(box, db_url, workspace, folder).run(WORLD_NOW,
                                                            rules_dir=workspace.no_rules)
        if result.rc != 0:
            raise SystemExit(f"the switch-on cycle failed (exit {result.rc}); see {result.log}")
    return db_url


def settle(cycles: Cycles, db: Database, now: datetime, trial: Trial,
           limit: int = SETTLE_CYCLES) -> bool:
    """Fault-free cycles until one ends well, changes nothing in the ledger and leaves
    nothing unfinished (quiescent). False if ``limit`` cycles did not get there."""
    for _ in range(limit):
        before = ledger_rows(db)
        result = cycles.run(now)
        trial.cycles += 1
        if result.rc == 0 and not unfinished(db) and ledger_rows(db) == before:
            return True
    left = unfinished(db)
    trial.notes.append(f"not quiescent after {limit} settling cycles: {len(left)} unfinished "
                       f"ledger rows {left[:3]}")
    return False


def finish(trial: Trial, box: Sandbox, db: Database, started: float) -> Trial:
    trial.state = tool_state(box)
    trial.ledger = ledger_done(db)
    trial.statuses = ledger_statuses(db)
    trial.seconds = time.monotonic() - started
    dead = trial.statuses.get("dead", 0)
    if dead:
        trial.notes.append(f"{dead} dead ledger rows")
    return trial


def run_baseline(ctx: Context, name: str = "baseline") -> tuple[Trial, Any]:
    """(a) a cycle after each step; returns the trial and a keeper for the sandbox, which
    the empty-store scenario reuses."""
    started = time.monotonic()
    trial = Trial("a", name)
    folder = ctx.workspace.folder(name)
    url = copy_sqlite(ctx.switched_on, folder)
    keeper = served_sandbox()
    box = keeper.__enter__()
    db = Database(url)
    try:
        cycles = Cycles(box, url, ctx.workspace, folder)
        player = Player(box)
        for number, step in enumerate(ctx.plan):
            player.play(step)
            mark, rows_before = box.calls.mark(), len(ledger_rows(db))
            result = cycles.run(step.at)
            trial.cycles += 1
            if result.rc != 0:
                trial.notes.append(f"step {number}: exit {result.rc} ({result.log})")
            writes = [e for e in box.calls.journal(mark) if is_write(e)]
            trial.writes += align_writes(number, writes, ledger_rows(db)[rows_before:])
        settle(cycles, db, ctx.end, trial)
        finish(trial, box, db, started)
        duplicates = logical_duplicates(trial.state or ToolState())
        trial.difference = Difference(duplicated=len(duplicates),
                                      details=[f"two copies of one effect: {d}"
                                               for d in duplicates])
        return trial, (keeper, box, db)
    except BaseException:
        db.dispose()
        keeper.__exit__(None, None, None)
        raise


def run_repeat(ctx: Context) -> Trial:
    trial, (keeper, _box, db) = run_baseline(ctx, "baseline-repeat")
    db.dispose()
    keeper.__exit__(None, None, None)
    trial.difference = None
    return trial


def add_rate_faults(box: Sandbox, rate: float, seed: int) -> None:
    """``rate`` of all requests fail, split evenly over the fault kinds, on every tool and
    endpoint (OAuth and token endpoints included)."""
    box.faults.reseed(seed)
    share = rate / 8
    for tool, status in (("podio", 420), ("jira", 429), ("google", 429)):
        box.faults.add(kind="status", tool=tool, status=status, retry_after=1, rate=share)
    box.faults.add(kind="status", status=503, rate=share)
    box.faults.add(kind="status", status=500, rate=share)
    # Timeouts: the client gives up; the tool either never does it, or does it late.
    box.faults.add(kind="latency", delay=TIMEOUT_FAULT_SECONDS, rate=share)
    box.faults.add(kind="latency", delay=TIMEOUT_FAULT_SECONDS, late=True, rate=share)
    box.faults.add(kind="latency", delay=0.3, rate=share)  # slow
    box.faults.add(kind="drop", rate=share)
    box.faults.add(kind="drop_after", rate=share)


def run_faults(ctx: Context, rate: float, seed: int) -> Trial:
    """(b) faults at ``rate`` during the plan's cycles, then fault-free until quiescent."""
    started = time.monotonic()
    trial = Trial("b", f"faults {rate:.0%} seed {seed}")
    folder = ctx.workspace.folder(f"faults-{int(rate * 100)}-{seed}")
    url = copy_sqlite(ctx.switched_on, folder)
    with served_sandbox() as box:
        db = Database(url)
        try:
            cycles = Cycles(box, url, ctx.workspace, folder)
            player = Player(box)
            add_rate_faults(box, rate, seed)
            failed = 0
            for step in ctx.plan:
                player.play(step)
                failed += cycles.run(step.at).rc != 0
                trial.cycles += 1
            box.faults.clear()
            trial.faults = sum(box.faults.fired.values())
            trial.notes.append(f"{failed} of {len(ctx.plan)} faulty cycles exited non-zero; "
                               f"faults by kind {dict(box.faults.fired)}")
            settle(cycles, db, ctx.end, trial)
            return finish(trial, box, db, started)
        finally:
            db.dispose()


def kill_fault(box: Sandbox, point: KillPoint) -> Any:
    w = point.write
    return box.faults.add(kind="kill", tool=w.tool, method=w.method,
                          path="^" + re.escape(w.path) + "$", skip=w.occurrence, count=1,
                          when=point.when)


def recover(cycles: Cycles, db: Database, now: datetime, trial: Trial) -> None:
    for _ in range(RECOVER_CYCLES):
        result = cycles.run(now)
        trial.cycles += 1
        if result.rc == 0 and not unfinished(db):
            return
    trial.notes.append(f"still unfinished after {RECOVER_CYCLES} restarts: {unfinished(db)}")


def run_kills(ctx: Context, points: list[KillPoint], number: int) -> Trial:
    """(c) `run` killed at each point (at most one per cycle); restarted at once or left to
    the next planned cycle; fault-free cycles until quiescent at the end."""
    started = time.monotonic()
    trial = Trial("c", f"kill -9 run #{number}")
    folder = ctx.workspace.folder(f"kills-{number}")
    url = copy_sqlite(ctx.switched_on, folder)
    by_cycle = {p.cycle: p for p in points}
    with served_sandbox() as box:
        db = Database(url)
        try:
            cycles = Cycles(box, url, ctx.workspace, folder)
            player = Player(box)
            for index, step in enumerate(ctx.plan):
                player.play(step)
                point = by_cycle.get(index)
                fault = kill_fault(box, point) if point else None
                result = cycles.run(step.at)
                trial.cycles += 1
                if fault is not None:
                    box.faults.remove(fault)
                if point is None:
                    continue
                if not result.killed:
                    trial.notes.append(f"not reached: {point.label()} (exit {result.rc})")
                    continue
                trial.kills += 1
                pending = [f"{key.split('|')[0]} {action} {status}"
                           for key, action, status in unfinished(db)]
                trial.notes.append(f"killed {point.label()}; left {pending or 'nothing'}")
                if point.recover == "now":
                    recover(cycles, db, step.at, trial)
            settle(cycles, db, ctx.end, trial)
            return finish(trial, box, db, started)
        finally:
            db.dispose()


def run_once(ctx: Context) -> Trial:
    """(f) every step played, then cycles until quiescent (the first sees everything)."""
    started = time.monotonic()
    trial = Trial("f", "one cycle after all changes", compare_ledger=False)
    folder = ctx.workspace.folder("once")
    url = copy_sqlite(ctx.switched_on, folder)
    with served_sandbox() as box:
        db = Database(url)
        try:
            player = Player(box)
            for step in ctx.plan:
                player.play(step)
            settle(Cycles(box, url, ctx.workspace, folder), db, ctx.end, trial)
            return finish(trial, box, db, started)
        finally:
            db.dispose()


def run_fresh_store(ctx: Context, base: Trial, box: Sandbox) -> Trial:
    """(e) an empty store on the workspace the baseline left: cycles until quiescent must
    add no effect. Compared with the baseline's final state."""
    started = time.monotonic()
    trial = Trial("e", "empty store on the same workspace", compare_ledger=False)
    folder = ctx.workspace.folder("fresh-store")
    url = sqlite_url(folder)
    Database(url).upgrade()
    db = Database(url)
    try:
        mark = box.calls.mark()
        settle(Cycles(box, url, ctx.workspace, folder), db, ctx.end, trial)
        writes = [e for e in box.calls.journal(mark) if is_write(e)]
        finish(trial, box, db, started)
        done = sum(trial.ledger.values())
        trial.notes.append(f"{len(writes)} writes to the tools; {done} effects done by the "
                           f"new store's ledger ({dict(Counter(action_of(w) for w in writes))})")
        return trial
    finally:
        db.dispose()


# --- serve -------------------------------------------------------------------------------------

WEBHOOK_TOKEN = "chaos-" + "w" * 26
PRIMARY_WRITES = r"^/(item/\d+/?|task/.*|comment/.*|rest/api/\w+/issue(/[^/]+/comment)?/?|" \
                 r"gmail/v1/users/[^/]+/messages/send)$"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Replica:
    """One `saeko-sync serve` subprocess on 127.0.0.1:port."""

    def __init__(self, box: Sandbox, url: str, workspace: Workspace, folder: Path,
                 port: int, name: str, frozen_now: datetime) -> None:
        self.box, self.url, self.port, self.name = box, url, port, name
        self.env = base_env(box, url, workspace) | {
            "WEBHOOK_TOKEN": WEBHOOK_TOKEN, "PUBLIC_URL": f"http://127.0.0.1:{port}",
            "SYNC_INTERVAL_SECONDS": "2", "RULES_INTERVAL_SECONDS": "3600",
            "INBOX_CLAIM_SECONDS": "3", "RULES_FROZEN_NOW": frozen_now.isoformat()}
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> Replica:
        self.starts += 1
        log = (self.folder / f"{self.name}-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "saeko_sync", "serve", "--port", str(self.port)],
            cwd=self.folder, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + SERVE_START_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start (see {self.folder})")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz",
                             timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not start within {SERVE_START_SECONDS:.0f} s")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def register_hooks(box: Sandbox, replica: Replica, timeout: float = 30.0) -> None:
    """Podio hooks pointing at ``replica`` (as `saeko-sync hooks register` does), verified by
    its worker."""
    from connectors.podio.client import PodioClient
    from core.settings import load_settings
    from jobs.hooks import register_podio_hooks

    env = {k.lower(): v for k, v in replica.env.items()
           if k.startswith(("PODIO_", "WEBHOOK_", "PUBLIC_"))}
    settings = load_settings(_env_file=None, **env)
    client = PodioClient.from_settings(settings)
    try:
        register_podio_hooks(settings, client)
    finally:
        client.close()
    podio: Any = box.tools["podio"]
    wait_until(lambda: all(h["status"] == "active" for h in podio.hooks()), timeout,
               "Podio hooks verified")


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    console.print(f"[yellow]gave up waiting for {what} after {timeout:.0f} s[/yellow]")
    return False


def serve_idle(db: Database, box: Sandbox, since: datetime) -> bool:
    """The service caught up: deliveries handled, a sync started after ``since`` finished,
    every change event evaluated, nothing unfinished in the ledger."""
    if not box.webhooks.wait_idle(0.5):
        return False
    synced = count(db, JobRun, JobRun.job == "sync", JobRun.started_at >= since,
                   JobRun.finished_at.is_not(None)) > 0
    return (synced and count(db, WebhookInbox, WebhookInbox.status == "pending") == 0
            and count(db, ChangeEvent, ChangeEvent.processed_at.is_(None)) == 0
            and not unfinished(db))


def settle_serve(db: Database, box: Sandbox, trial: Trial, what: str,
                 replicas: list[Replica]) -> None:
    """Wait until the service caught up (twice in a row), or until the only replica died."""
    since = datetime.now(UTC).replace(tzinfo=None)  # a sync must start after the changes
    stable = [0]

    def twice() -> bool:
        if not any(r.alive for r in replicas):
            return True
        stable[0] = stable[0] + 1 if serve_idle(db, box, since) else 0
        return stable[0] >= 2

    if not wait_until(twice, SERVE_SETTLE_SECONDS, what):
        trial.notes.append(f"did not settle: {what}; unfinished {unfinished(db)[:3]}")


def serve_kill_fault(box: Sandbox, replica: Replica, when: str, skip: int = 0,
                     method: str = "POST,PUT") -> Any:
    """Kill ``replica`` at its write number ``skip`` + 1 from now (writes of other processes
    do not count)."""
    return box.faults.add(kind="kill", method=method, path=PRIMARY_WRITES, count=1,
                          skip=skip, when=when, pid=replica.pid, from_pid=True)


@dataclass(frozen=True)
class ServeKill:
    when: str  # before | after
    skip: int = 0  # writes of the replica to let through first
    method: str = "POST,PUT"


def run_serve(ctx: Context, trial: Trial, url: str, folder: Path,
              kill_at: dict[int, ServeKill], replicas: int) -> Trial:
    """The plan with `serve` replicas doing the work (Podio hooks to the first one, polling
    every 2 s on all); from each step of ``kill_at`` on, the first replica is killed at one
    of its writes. With one replica it is restarted at once; with two, the survivor
    finishes the day."""
    started = time.monotonic()
    with served_sandbox() as box:
        db = Database(url)
        group: list[Replica] = []
        try:
            Cycles(box, url, ctx.workspace, folder).run(WORLD_NOW,
                                                        rules_dir=ctx.workspace.no_rules)
            group = [Replica(box, url, ctx.workspace, folder, free_port(), f"replica-{n}",
                             ctx.end).start() for n in range(replicas)]
            register_hooks(box, group[0])
            player = Player(box)
            fault = None
            for index, step in enumerate(ctx.plan):
                if index in kill_at and group[0].alive and fault is None:
                    kill = kill_at[index]
                    fault = serve_kill_fault(box, group[0], kill.when, kill.skip, kill.method)
                player.play(step)
                settle_serve(db, box, trial, f"step {index}", group)
                if fault is not None and fault.hits:
                    box.faults.remove(fault)
                    fault = None
                    trial.kills += 1
                    kill = box.faults.kills[-1]
                    trial.notes.append(f"killed {group[0].name} at step {index} {kill.when} "
                                       f"{kill.method} {kill.tool}{kill.path}")
                    if replicas == 1:
                        group[0].start()
                        settle_serve(db, box, trial, f"restart after step {index}", group)
            if fault is not None:
                box.faults.remove(fault)
                trial.notes.append("a kill point was never reached")
            settle_serve(db, box, trial, "the end of the day", group)
            return finish(trial, box, db, started)
        finally:
            for replica in group:
                replica.stop()
            db.dispose()


def run_serve_kills(ctx: Context, points: int) -> Trial:
    """(c) a few kill points of one `serve` replica on SQLite, restarted after each."""
    trial = Trial("c", "kill -9 serve")
    folder = ctx.workspace.folder("serve-kills")
    steps = _busy_steps(ctx, points)
    kill_at = {step: ServeKill("after" if n % 2 == 0 else "before", skip=n % 3)
               for n, step in enumerate(steps)}
    return run_serve(ctx, trial, sqlite_url(folder), folder, kill_at, replicas=1)


def run_replicas(ctx: Context, admin_url: str) -> Trial:
    """(d) two `serve` replicas on PostgreSQL; the first is killed mid-work (after a tool
    accepted a create, before its ledger knows) and the survivor finishes."""
    trial = Trial("d", "two serve replicas on PostgreSQL, one killed")
    folder = ctx.workspace.folder("replicas")
    kill = {_busy_steps(ctx, 1)[0]: ServeKill("after", method="POST")}
    with postgres_schema(admin_url) as url:
        return run_serve(ctx, trial, url, folder, kill, replicas=2)


def _busy_steps(ctx: Context, points: int) -> list[int]:
    """Steps spread over the day whose actions make the rules write (not surveys only)."""
    busy = [n for n, step in enumerate(ctx.plan)
            if any(a.kind in ("escalate", "answer", "handoff", "close", "resolve_jira")
                   for a in step.actions)]
    stride = max(1, len(busy) // max(1, points))
    return busy[stride // 2::stride][:points]


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Options:
    quick: bool
    only: set[str]
    seeds: list[int]
    rates: list[float]
    kills: int
    kill_trials: int
    serve_kills: int
    jobs: int
    database_url: str
    verbose: bool
    keep: Path | None


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="the short version tests/test_chaos.py runs (a, b 10 %% one seed, "
                             "c 6 kill points, e, f)")
    parser.add_argument("--only", default="", help="scenarios to run, e.g. a,c,e")
    parser.add_argument("--seeds", default="", help="fault seeds (default 1,2,3; quick: 1)")
    parser.add_argument("--rates", default="", help="fault rates (default 0.1,0.3; quick: 0.1)")
    parser.add_argument("--kills", type=int, default=None,
                        help="kill points of `run` (default 36; quick: 6)")
    parser.add_argument("--serve-kills", type=int, default=None,
                        help="kill points of `serve` (default 3; quick: 0)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="trials run side by side after the baseline (default 1; "
                             "quick: 2)")
    parser.add_argument("--database-url", default=PG_URL,
                        help="PostgreSQL database for (d) (a temporary schema in it)")
    parser.add_argument("--verbose", action="store_true", help="every difference, the plan")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep stores and process logs in this folder")
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    only = set(filter(None, args.only.split(","))) or (
        {"a", "b", "c", "e", "f"} if quick else set("abcdef"))
    seeds = [int(s) for s in args.seeds.split(",") if s] or ([1] if quick else [1, 2, 3])
    rates = [float(r) for r in args.rates.split(",") if r] or ([0.1] if quick else [0.1, 0.3])
    kills = args.kills if args.kills is not None else (6 if quick else 36)
    serve_kills = args.serve_kills if args.serve_kills is not None else (0 if quick else 3)
    jobs = args.jobs if args.jobs is not None else (2 if quick else 1)
    return Options(quick, only, seeds, rates, kills, 1 if quick else 3, serve_kills,
                   max(1, jobs), args.database_url, bool(args.verbose), args.keep)


@dataclass
class Row:
    scenario: str
    what: str
    trials: int = 0
    faults: int = 0
    kills: int = 0
    lost: int = 0
    duplicated: int = 0
    differing: int = 0
    ledger: str = "—"
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.differing) and \
            self.ledger in ("—", "0/0")


SCENARIOS = {"a": "fault-free baseline (a cycle after each step)",
             "b": "injected faults, then fault-free until quiescent",
             "c": "kill -9, restarted until quiescent",
             "d": "two serve replicas on PostgreSQL, one killed",
             "e": "empty store on the same workspace: adds nothing",
             "f": "one cycle after all changes vs one after each"}


def evaluate(trial: Trial, base: Trial) -> Difference:
    if trial.difference is not None:  # the baseline's own check
        return trial.difference
    assert trial.state is not None and base.state is not None
    difference = compare(base.state, trial.state)
    if trial.compare_ledger:
        compare_ledger(base.ledger, trial.ledger, difference)
    else:
        shadow = Difference()
        compare_ledger(base.ledger, trial.ledger, shadow)
        why = "another store" if trial.scenario == "e" else "events coalesce"
        trial.notes.append(f"ledger (not compared: {why}): {shadow.ledger_lost} not done, "
                           f"{shadow.ledger_extra} extra")
    return difference


def rows_of(trials: list[Trial], base: Trial) -> list[Row]:
    rows: dict[str, Row] = {}
    for trial in trials:
        difference = evaluate(trial, base)
        trial.difference = difference
        row = rows.setdefault(trial.scenario, Row(trial.scenario, SCENARIOS[trial.scenario]))
        row.trials += 1
        row.faults += trial.faults
        row.kills += trial.kills
        row.lost += difference.lost
        row.duplicated += difference.duplicated
        row.differing += difference.differing
        row.seconds += trial.seconds
        if trial.compare_ledger and trial.scenario != "a" or trial.name == "baseline-repeat":
            lost, extra = (int(x) for x in (row.ledger if row.ledger != "—" else "0/0")
                           .split("/"))
            row.ledger = f"{lost + difference.ledger_lost}/{extra + difference.ledger_extra}"
    return [rows[s] for s in sorted(rows)]


def print_report(rows: list[Row], trials: list[Trial], verbose: bool, seconds: float) -> None:
    table = Table(title="Chaos suite: the final state against the fault-free baseline")
    for column in ("scenario", "trials", "faults injected", "kills", "lost", "duplicated",
                   "differing fields", "ledger not done/extra", "seconds"):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for row in rows:
        style = "" if row.ok else "red"
        table.add_row(f"({row.scenario}) {row.what}", str(row.trials), str(row.faults),
                      str(row.kills), str(row.lost), str(row.duplicated), str(row.differing),
                      row.ledger, f"{row.seconds:.0f}", style=style)
    console.print(table)
    for trial in trials:
        difference = trial.difference or Difference()
        mark = "ok" if difference.clean else "DIFFERS"
        console.print(f"\n[bold]({trial.scenario}) {trial.name}[/bold]: {mark} · "
                      f"{trial.cycles} cycles, {trial.seconds:.0f} s · ledger "
                      f"{dict(trial.statuses)}")
        for note in trial.notes:
            console.print(f"  · {note}", markup=False, highlight=False)
        shown = difference.details if verbose else difference.details[:12]
        for line in shown:
            console.print(f"  - {line}", markup=False, highlight=False)
        if len(difference.details) > len(shown):
            console.print(f"  … {len(difference.details) - len(shown)} more (--verbose)")
    console.print(f"\ntotal {seconds:.0f} s")


def run_all(options: Options, root: Path) -> tuple[list[Row], list[Trial]]:
    workspace = Workspace.create(root)
    world = build_world(clients=WORLD_CLIENTS, seed=WORLD_SEED, now=WORLD_NOW)
    plan = make_plan(world, quick=options.quick)
    ctx = Context(plan, workspace, "", options.verbose)
    console.print(f"plan: {len(plan)} steps, {sum(len(s.actions) for s in plan)} actions "
                  f"({'quick' if options.quick else 'full'}); workspace {root}")
    if options.verbose:
        for line in plan_lines(plan):
            console.print(line, markup=False, highlight=False)
    ctx.switched_on = switch_on(workspace)
    base, (keeper, base_box, base_db) = run_baseline(ctx)
    console.print(f"baseline: {base.cycles} cycles in {base.seconds:.0f} s, "
                  f"{len(base.writes)} writes, ledger {dict(base.statuses)}")
    trials = [base]
    try:
        if "e" in options.only:
            trials.append(run_fresh_store(ctx, base, base_box))
    finally:
        base_db.dispose()
        keeper.__exit__(None, None, None)
    jobs: list[Callable[[], Trial]] = []
    if "a" in options.only and not options.quick:
        jobs.append(lambda: run_repeat(ctx))
    if "b" in options.only:
        jobs += [lambda r=rate, s=seed: run_faults(ctx, r, s)
                 for rate in options.rates for seed in options.seeds]
    if "c" in options.only and options.kills:
        plans = choose_kill_points(base.writes, options.kills, options.kill_trials)
        jobs += [lambda p=points, n=number: run_kills(ctx, p, n)
                 for number, points in enumerate(plans, 1)]
    if "c" in options.only and options.serve_kills:
        jobs.append(lambda: run_serve_kills(ctx, options.serve_kills))
    if "d" in options.only:
        reason = postgres_reason(options.database_url)
        if reason:
            console.print(f"[yellow](d) skipped: {reason}[/yellow]")
        else:
            jobs.append(lambda: run_replicas(ctx, options.database_url))
    if "f" in options.only:
        jobs.append(lambda: run_once(ctx))
    with ThreadPoolExecutor(max_workers=options.jobs) as pool:
        for trial in pool.map(lambda job: job(), jobs):
            console.print(f"done: ({trial.scenario}) {trial.name} in {trial.seconds:.0f} s")
            trials.append(trial)
    if "a" not in options.only:
        trials = [t for t in trials if t is not base]
    return rows_of(trials, base), trials


class _NoDroppedConnections(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        # A dropped connection is a fault; a client that gave up during a timeout fault
        # leaves its request body unread (ClientDisconnect): both on purpose.
        return not isinstance(error, DroppedConnection | ClientDisconnect)


def quiet_sandbox_logs() -> None:
    """The sandbox's dropped connections are faults on purpose: no tracebacks for them (a
    filter on uvicorn's logger survives each sandbox server's logging set-up); the
    sandbox's own log lines only from warnings up."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _NoDroppedConnections) for f in logger.filters):
        logger.addFilter(_NoDroppedConnections())


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    quiet_sandbox_logs()
    started = time.monotonic()
    if options.keep is not None:
        options.keep.mkdir(parents=True, exist_ok=True)
        rows, trials = run_all(options, options.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="saeko-chaos-") as folder:
            rows, trials = run_all(options, Path(folder))
    print_report(rows, trials, options.verbose, time.monotonic() - started)
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
