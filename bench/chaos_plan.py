"""The chaos suite's planned day (``bench/chaos.py``): the test world's seeds and the day's
clock, the seeded plan of staff actions (new tickets, answers, escalations, Jira
resolutions, CSAT and NPS answers, hand-offs, manual closes, new accounts without AM) and
the player that replays it on a sandbox through ``StaffSimulator.act``.

Not a benchmark itself; ``bench/chaos.py`` and the other ``bench/chaos_*.py`` import it (it
puts the project root on ``sys.path``).
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sandbox.activity import AGENTS, StaffSimulator  # noqa: E402
from sandbox.server import Sandbox  # noqa: E402
from sandbox.world import _TITLES, JIRA_WORKFLOWS, World, podio_item_id  # noqa: E402

# --- the world and the day ---------------------------------------------------------------

WORLD_NOW = datetime(2026, 11, 18, 20, 0, 0)  # as tests/conftest.py: Wednesday 12:00 Tijuana
WORLD_CLIENTS, WORLD_SEED = 6, 11
TIJUANA = ZoneInfo("America/Tijuana")
DAY_START = datetime(2026, 11, 19, 9, 0, tzinfo=TIJUANA)  # the planned day: Thursday
OVERNIGHT_LEAD = timedelta(hours=1)  # the accounts' overnight data comes in at 08:00
FULL_STEP = timedelta(minutes=6)
QUICK_STEP = timedelta(minutes=30)
PLAN_SEED = 20261119
SIMULATOR_SEED = 1


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
    # M6: a ticket nobody takes: a reminder per threshold of its 2-hour first-response
    # target as the day goes on (the desk lead's email from the second). Compared only for
    # copies: which cycle crosses a threshold depends on the clock (chaos_state.CLOCK_DRIVEN).
    user = rng.choice(users)
    stories.append([_act("new_ticket", NewTicket(len(lifecycles)),
                         "T1; M6 reminders at 2 h, 4 h (+ desk lead) while unanswered",
                         title="No puedo entrar al portal de padres", user=user.key,
                         by_email=False, agent=rng.choice(AGENTS))])
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
    stories.append([_act("new_client", None, "M5 AM by load and region + hand-off task + "
                         "comment + CSM email", name="Colegio del Valle Verde", segment="TOP",
                         region="Tijuana")])
    if not quick:
        stories.append([_act("new_client", None, "M5 (a second account in the same region)",
                             name="Instituto Sierra Azul", segment="Estándar",
                             region="Tijuana", csm="csm-2@saeko.test")])
    # Account management (M1 signals; M1's task on entering risk, its COO escalation M7):
    # a client's usage falls and an invoice of it goes 70 days overdue; another client
    # gets a new decision maker; the AM of a third logs a check-in.
    accounts = sorted(with_am - burbuja)
    stories.append([_act("decision_maker", podio_item_id("clientes", accounts[1]),
                         "M1: a new decision maker → score and reasons", name="Lic. Andrea "
                         "Montaño")])
    if not quick:
        stories.append([_act("check_in", podio_item_id("clientes", accounts[2]),
                             "M1: a check-in → score up (no more «sin seguimiento»)")])
    # M8 needs no story of its own: switching on agenda every series' next meeting, and the
    # new account's check-in comes once M5 gives it an AM. (A reassignment or a «Baja» of a
    # client whose check-in falls within the day would make scenario (f) differ by design:
    # seen after the meeting took place, it is no longer moved or cancelled.)
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


def _overnight(world: World) -> tuple[Action, ...]:
    """What the accounts' data brings before the day starts (the weekly usage sheet, the
    invoices that fell due): one step at 08:00, before the schedules' 9:00 slots, so that
    they see the same data whether cycles run every step or once at the end."""
    client = podio_item_id("clientes", sorted(c.key for c in world.clients
                                              if c.am and not c.burbuja)[0])
    return (_act("usage_drop", client, "M1: usage -50 % → score, band and reasons in Podio; "
                 "AM task; M13 preventive task + AM digest at 9:00", factor=0.5),
            _act("overdue_invoice", None, "M1: 70 days overdue → score down; COO escalation "
                 "(M7) when it enters Crítica", client=client, days=70))


def make_plan(world: World, *, quick: bool, seed: int = PLAN_SEED) -> list[Step]:
    """The day: the accounts' overnight data, then stories interleaved at random (seeded),
    one action per step (full) or up to two per step (quick); a story's next action always
    comes in a later step."""
    rng = random.Random(seed)
    stories = _stories(world, rng, quick)
    per_step, gap = (2, QUICK_STEP) if quick else (1, FULL_STEP)
    steps: list[Step] = [Step(_utc(DAY_START - OVERNIGHT_LEAD), _overnight(world))]
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
