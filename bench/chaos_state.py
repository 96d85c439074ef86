"""What the chaos suite compares (``bench/chaos.py``): what the store says (the action
ledger's rows, done effects and statuses, row counts), what the tools hold (Podio fields,
tasks and comments, Jira issues and comments, Gmail messages, Calendar events, with
Saeko's markers masked) and the differences between a trial's state and the baseline's.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sandbox.server import Sandbox  # noqa: E402
from store.db import Database  # noqa: E402
from store.models import ActionLedger  # noqa: E402

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


# M3 (the KPI spreadsheet) runs in every trial but stays out of the comparison: it
# rewrites every tab from the model (idempotent: the same model gives the same cells), in the
# 15-minute slots where the model changed — which slots those are depends on how the cycles
# fell, not on what was done — and the model it reads is what the other effects compare.
# M6 (open-case follow-up) runs in every trial too, but its effects are checked only for
# copies (two of one reminder is a duplicate in any trial): a reminder belongs to the
# threshold a ticket's clock crossed, so which cycle makes it — and, in (f)'s single cycle
# or after a killed cycle, which threshold is the current one — depends on when the cycles
# fall, not on what was done; its daily digest lists the open cases as the cycle that sends
# it finds them. M7's first-response escalation shares M6's last-threshold key
# («sla:cliente:semana»): which of the two makes it is a matter of timing as well.
NOT_COMPARED_KEYS = ("m3-tablero-kpis|", "m6-", "m7|esc:sla:", "m7|esc:resolucion:")
CLOCK_DRIVEN = re.compile(
    r"^(comment on item \d+: Recordatorio para "
    r"|task on item \S+: (Responder al usuario|Resolver o cerrar): «"
    r"|email to [^:]*: (Mesa: «|Tus casos abiertos del )"
    r"|(task on item \S+|email to [^:]*): Escalamiento: .*(sin respuesta|abierto hace más "
    r"de|con un ticket abierto))")


def ledger_done(db: Database) -> Counter[str]:
    """Done effects per idempotency key, with change-event ids replaced by ``ev*`` (event
    ids depend on how syncs split the changes, not on what was done); M3's publications
    are left out (NOT_COMPARED_KEYS)."""
    return Counter(EVENT_ID.sub("ev*", key) for _id, key, _a, status, _n in ledger_rows(db)
                   if status == "done" and not key.startswith(NOT_COMPARED_KEYS))


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
                  attendees=event.get("attendees"), end=event.get("end"),
                  status=event.get("status"), meet=bool(event.get("hangoutLink")))


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
    have); M6's clock-driven effects only for copies within the trial (CLOCK_DRIVEN)."""
    out = Difference()
    for identity in sorted(set(base.effects) | set(trial.effects)):
        have, want = trial.effects[identity], base.effects[identity]
        if CLOCK_DRIVEN.match(identity):  # M6: only copies count (CLOCK_DRIVEN)
            if have > 1:
                out.duplicated += have - 1
                out.details.append(f"two copies of one effect: {have}× {identity}")
            continue
        if have < want:
            out.lost += want - have
            out.details.append(f"lost {want - have}× {identity}")
        elif have > want:
            out.duplicated += have - want
            out.details.append(f"extra {have - want}× {identity} (baseline {want})")
    for name in sorted(set(base.fields) | set(trial.fields)):
        if CLOCK_DRIVEN.match(name.split(" #")[0]):
            continue
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

