"""The ticket desk of tests/test_automations_desk.py and tests/test_automations_order.py: the
sandbox, a store and the shipped rules T1–T8 (``Desk``), and the week at the desk that the
scenario plays (``play_scenario``), with what it leaves behind (``state_of``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from connectors.clients import ActionRuntime
from core.settings import Settings, copy_config, load_settings
from jobs.cycle import configured_sources, long_lived_clients, run_sync
from rules.engine import CycleReport, run_cycle
from sandbox.server import Sandbox, SandboxServer
from sandbox.world import build_world, podio_item_id
from store.db import Database
from store.models import ActionLedger, ChangeEvent, Ticket
from tests.conftest import _PG_SKIP, WORLD_NOW, _postgres_schema

TIJUANA = ZoneInfo("America/Tijuana")
AGENT = "agente-2@saeko.test"  # Karla Nava, a support agent
AGENT_PROFILE = 5010
DEV = "agente-3"  # the person who resolves issues in Jira
LEAD_USER = 1009  # agente-1, the desk lead named in t8's datos
COO_USER = 1001
# Copied with the shipped rules into each scenario's config folder.
TICKETS = "tickets"


def local(text: str) -> datetime:
    """'2026-11-20 17:30' in Tijuana -> naive UTC (what the sandbox clock holds)."""
    moment = datetime.fromisoformat(text).replace(tzinfo=TIJUANA)
    return moment.astimezone(UTC).replace(tzinfo=None)


def user_of(world: Any, client_key: int, role: str | None = None) -> Any:
    """The first user (of ``role``) of a world client."""
    school_client = {s.key: s.client_key for s in world.schools}
    return next(u for u in world.users if school_client[u.school_key] == client_key
                and (role is None or u.role == role))


@dataclass
class Desk:
    """The sandbox, the store and the rules of one scenario, plus what it observed."""

    sandbox: Sandbox
    db: Database
    settings: Settings
    runtime: ActionRuntime
    clients: dict[str, Any]
    seen: dict[str, Any] = field(default_factory=dict)
    reports: list[CycleReport] = field(default_factory=list)

    @property
    def podio(self) -> Any:
        return self.sandbox.tools["podio"]

    @property
    def jira(self) -> Any:
        return self.sandbox.tools["jira"]

    @property
    def google(self) -> Any:
        return self.sandbox.tools["google"]

    def at(self, when: str) -> None:
        moment = local(when)
        assert moment >= self.sandbox.clock.now(), "the scenario's clock only moves forward"
        self.sandbox.clock.freeze(moment)

    def cycle(self) -> CycleReport:
        """`saeko-sync run`: sync every source, then one rule cycle, at the sandbox's now."""
        synced = run_sync(self.settings, self.db, clients=self.clients)
        assert synced.ok, synced.errors + [r.error for r in synced.reports if r.error]
        report = run_cycle(self.settings, self.db, now=self.sandbox.clock.now(),
                           runtime=self.runtime)
        assert not report.problems, report.problems
        self.reports.append(report)
        return report

    def new_ticket(self, title: str, **fields: Any) -> int:
        return int(self.podio.create_item_as(AGENT, TICKETS, {"titulo": title, **fields}))

    def edit(self, item: int, **fields: Any) -> None:
        self.podio.update_item_as(AGENT, item, fields)

    def values(self, item: int) -> dict[str, Any]:
        return dict(self.podio.values(item))

    def ticket(self, item: int) -> Ticket:
        with self.db.session() as s:
            return s.scalars(select(Ticket).where(Ticket.source_id == str(item))).one()

    def issues_for(self, item: int) -> list[str]:
        """Jira issues whose Podio ticket field holds this item."""
        out = []
        for key in self.jira.issues():
            value = self.jira.issue(key)["fields"].get("customfield_10050")
            if value is not None and str(value).split(".")[0] == str(item):
                out.append(key)
        return out

    def messages_to(self, address: str) -> list[dict[str, Any]]:
        return [m for m in self.google.sent_messages()
                if address in " ".join(m.get("to") or [])]



ANSWER = "Te enviamos un enlace para restablecer tu contraseña."


def answered_ticket(desk: Desk) -> tuple[int, str]:
    """A new ticket (T1 done in its own cycle at 11:00), answered by the agent at 12:00 (T2
    and T6 will react); returns the item and the user's email."""
    user = user_of(desk.sandbox.world, 1)
    desk.at("2026-11-19 11:00")
    item = desk.new_ticket("No recuerdo mi contraseña", estatus="Nuevo",
                           responsable=[AGENT_PROFILE],
                           usuario=[podio_item_id("usuarios", user.key)])
    desk.cycle()
    desk.at("2026-11-19 12:00")
    desk.edit(item, respuesta=ANSWER)
    return item, user.email


def scenario_config(tmp: Path) -> Path:
    """A config folder with the shipped rules T1–T8 (and an empty ``no-rules`` beside it)."""
    (tmp / "no-rules").mkdir()
    return copy_config(tmp, "t[1-8]-*.yaml")


def rules_config(tmp: Path, *patterns: str) -> Path:
    """A scenario's config folder with only the shipped rules matching ``patterns``
    (``"m11-*.yaml"``, a file name…)."""
    (tmp / "no-rules").mkdir()
    return copy_config(tmp, *patterns)


@contextmanager
def account_desk(tmp: Path, *patterns: str, kind: str = "sqlite") -> Iterator[Desk]:
    """The small world of the account-management tests (6 clients, seed 11) served, and a
    store of ``kind`` switched on with only the shipped rules matching ``patterns``."""
    box = Sandbox(build_world(clients=6, seed=11, now=WORLD_NOW))
    box.clock.freeze(WORLD_NOW)
    with store(kind, tmp) as url, SandboxServer(box), \
            open_desk(box, url, rules_config(tmp, *patterns)) as desk:
        yield desk


# Podio's two ways to authenticate (README): the integration user, or one app token per
# app (PODIO_APP_<APP>_TOKEN) with no user at all.
AUTH_MODES = ("user", "app_tokens")


def auth_env(env: dict[str, str], auth: str) -> dict[str, str]:
    """The sandbox's settings for ``auth``: without the integration user's credentials in
    app-token mode (each app then authenticates with its own token)."""
    assert auth in AUTH_MODES, auth
    if auth == "user":
        return env
    return {k: v for k, v in env.items()
            if k.lower() not in ("podio_username", "podio_password")}


def stores() -> list[Any]:
    """The stores a scenario runs on: SQLite, and PostgreSQL when reachable."""
    pg = pytest.param("postgresql", marks=pytest.mark.skipif(bool(_PG_SKIP),
                                                              reason=_PG_SKIP or ""))
    return ["sqlite", pg]


@contextmanager
def store(kind: str, folder: Path) -> Iterator[str]:
    """The URL of an empty store of that kind (SQLite in ``folder``)."""
    if kind == "sqlite":
        yield f"sqlite:///{folder}/store.db"
    else:
        yield from _postgres_schema()



# --- the scenario ------------------------------------------------------------------------


@contextmanager
def open_desk(box: Sandbox, url: str, config: Path) -> Iterator[Desk]:
    """A store on ``url`` for the served sandbox ``box`` and the config folder ``config``:
    migrated, synced in full with long-lived clients (as `serve` has them) and switched on
    (its first rule cycle remembers what exists), at the sandbox's frozen now."""
    db = Database(url)
    db.upgrade()
    env = {k.lower(): v for k, v in box.env().items()
           if k.startswith(("PODIO_", "JIRA_", "GOOGLE_"))}
    settings = load_settings(database_url=url, config_dir=config,
                             podio_retry_base_seconds=0.01, google_retry_base_seconds=0.01,
                             google_max_retry_seconds=2.0,
                             **env)
    runtime = ActionRuntime(settings)
    try:
        clients = long_lived_clients(runtime, configured_sources(settings))
        assert run_sync(settings, db, full=True, clients=clients).ok
        run_cycle(settings, db, now=box.clock.now(), runtime=runtime)  # switched on
        yield Desk(box, db, settings, runtime, clients)
    finally:
        runtime.close()
        db.dispose()


def play_scenario(desk: Desk) -> None:
    """A week at the desk; ``desk.seen`` keeps what the tests look at later."""
    world, seen = desk.sandbox.world, desk.seen
    mirador = user_of(world, 1)  # client 1: Centro Educativo Mirador (AM, CSM)
    aurora = user_of(world, 2)  # client 2: Academia Aurora, a burbuja client
    seen["mirador_user"], seen["aurora_user"] = mirador, aurora

    # T1 — Wednesday 12:10: a ticket with only its title and the reporter's email…
    desk.at("2026-11-18 12:10")
    t1 = desk.new_ticket("No puedo generar la referencia de pago", **{
        "email-reportante": mirador.email.upper()})
    desk.sandbox.calls.reset()
    seen["t1_report"] = desk.cycle()
    seen["t1_puts"] = desk.sandbox.calls.total("podio", "PUT /item/")
    seen["t1"] = t1
    # …one where a person already chose the user and the module, and one with a title only
    # whose user is set later.
    desk.at("2026-11-18 12:20")
    kept = desk.new_ticket("Boleta con promedio incorrecto", **{
        "usuario": [podio_item_id("usuarios", mirador.key)], "modulo": "Otro",
        "prioridad": "Alta"})
    later = desk.new_ticket("Alta masiva de alumnos falla")
    desk.cycle()
    desk.at("2026-11-18 12:30")
    desk.edit(later, usuario=[podio_item_id("usuarios", aurora.key)])
    desk.cycle()
    seen.update(t1_kept=kept, t1_later=later)

    # T2 — opened Friday 17:30, answered Monday 09:30 (Tijuana).
    desk.at("2026-11-20 17:30")
    timing = desk.new_ticket("Duda sobre permisos de usuario", estatus="Nuevo", **{
        "usuario": [podio_item_id("usuarios", mirador.key)]})
    desk.cycle()
    desk.at("2026-11-23 09:30")
    desk.edit(timing, estatus="En atención")
    desk.cycle()
    seen["t2"] = timing

    # T3 — a migration problem escalated Monday 10:05 (goes to DEV).
    desk.at("2026-11-23 10:00")
    escalated = desk.new_ticket("Faltan alumnos tras la migración", estatus="Nuevo",
                                prioridad="Alta", responsable=[AGENT_PROFILE], **{
                                    "usuario": [podio_item_id("usuarios", mirador.key)]})
    closed_by_hand = desk.new_ticket("Pago no reflejado en estado de cuenta", estatus="Nuevo",
                                     **{"usuario": [podio_item_id("usuarios", aurora.key)]})
    desk.cycle()
    desk.at("2026-11-23 10:05")
    desk.edit(escalated, estatus="Escalado")
    desk.edit(closed_by_hand, estatus="Escalado")
    seen["t3_report"] = desk.cycle()
    seen.update(t3=escalated, t5_closed=closed_by_hand)
    seen["t3_issues_first"] = desk.issues_for(escalated)
    # Escalated a second time, and the very same events evaluated again (as after a crash
    # before they were marked processed): still one issue.
    desk.at("2026-11-23 10:20")
    desk.edit(escalated, estatus="En atención")
    desk.cycle()
    desk.at("2026-11-23 10:25")
    desk.edit(escalated, estatus="Escalado")
    desk.cycle()
    with desk.db.session() as s:
        for event in s.scalars(select(ChangeEvent).where(ChangeEvent.entity == "ticket")):
            event.processed_at = None
    desk.cycle()

    # Development works on it; Support's issue for the other ticket stays open.
    key = desk.values(escalated)["jira"]
    seen["t3_key"] = key
    desk.at("2026-11-23 10:30")
    desk.jira.transition_as(DEV, key, "En desarrollo")
    desk.cycle()

    # T5 — the other escalated ticket is closed by hand while its Jira issue is open, and a
    # third one is sent to the AM.
    desk.at("2026-11-23 16:00")
    handoff = desk.new_ticket("Solicitud de capacitación", estatus="En atención", **{
        "usuario": [podio_item_id("usuarios", mirador.key)]})
    desk.cycle()
    desk.at("2026-11-23 17:00")
    desk.edit(closed_by_hand, estatus="Cerrado")
    desk.edit(handoff, estatus="Enviado a AM")
    seen["t5_report"] = desk.cycle()
    seen["t5_handoff"] = handoff

    # T4 — Tuesday 11:00 Development approves the fix: the ticket goes to "Por validar";
    # Support also resolves the closed ticket's issue, which must stay closed.
    desk.at("2026-11-24 10:00")
    desk.jira.transition_as(DEV, key, "En pruebas")
    desk.cycle()
    desk.at("2026-11-24 11:00")
    desk.jira.transition_as(DEV, key, "Listo", resolution="Corregido")
    desk.jira.transition_as(DEV, desk.values(closed_by_hand)["jira"], "Resuelto",
                            resolution="Configuración ajustada")
    seen["t4_report"] = desk.cycle()

    # T6 — Tuesday 12:00 the agent records the answer: closed, one survey email.
    desk.at("2026-11-24 11:30")
    answered = desk.new_ticket("No recuerdo mi contraseña", estatus="Nuevo",
                               responsable=[AGENT_PROFILE], **{
                                   "usuario": [podio_item_id("usuarios", mirador.key)]})
    desk.cycle()
    desk.at("2026-11-24 12:00")
    desk.edit(answered, respuesta="Te enviamos un enlace para restablecer tu contraseña.")
    seen["t6_report"] = desk.cycle()
    desk.at("2026-11-24 12:10")
    desk.edit(answered, respuesta="Te enviamos un enlace para restablecer tu contraseña "
                                  "(revisa también tu carpeta de spam).")
    desk.cycle()
    seen["t6"] = answered
    # The answer written, synced, corrected and synced again before the next rule cycle
    # (two change events in one batch): still one close and one survey.
    desk.at("2026-11-24 12:20")
    twice = desk.new_ticket("Error al capturar datos de inscripción", estatus="En atención",
                            **{"usuario": [podio_item_id("usuarios", aurora.key)]})
    desk.cycle()
    desk.at("2026-11-24 12:40")
    desk.edit(twice, respuesta="Ya quedó corregida la captura.")
    assert run_sync(desk.settings, desk.db, clients=desk.clients).ok
    desk.edit(twice, respuesta="Ya quedó corregida la captura del alumno.")
    desk.cycle()
    seen["t6_twice"] = twice

    # T6/T7 — the user opens the survey link and rates 5.
    desk.at("2026-11-24 15:00")
    survey_mail = desk.messages_to(mirador.email)[-1]
    ticket_field = parse_qs(urlparse(_link(survey_mail["text"])).query)
    seen["t6_link_values"] = ticket_field
    prefilled = ticket_field[f"entry.{int('7b3c9e12', 16)}"][0]
    desk.google.submit_response(desk.google.ids["csat"], {
        "score": 5, "comment": "Muy rápida la atención, gracias", "ticket": prefilled,
        "email": mirador.email})
    seen["t7_report"] = desk.cycle()

    # T8 — Wednesday 09:15: a burbuja client's user rates 1, a standard client's user
    # rates 2, and a Directivo answers the NPS survey with a 3.
    desk.at("2026-11-25 09:15")
    desk.google.submit_response(desk.google.ids["csat"], {
        "score": 1, "comment": "Tardaron demasiado en responder",
        "ticket": str(later), "email": aurora.email})
    desk.google.submit_response(desk.google.ids["csat"], {
        "score": 2, "comment": "No me explicaron bien la solución",
        "ticket": str(timing), "email": mirador.email})
    director = user_of(world, 1, "Directivo")
    seen["t8_director"] = director
    desk.google.submit_response(desk.google.ids["nps"], {
        "score": 3, "reason": "El soporte tarda demasiado", "email": director.email,
        "client": world.clients[0].name})
    seen["t8_report"] = desk.cycle()

    # T2 over a public holiday: opened Thursday 24 December 17:30, answered Monday 28 at
    # 09:30; Christmas (Friday) is not a business day.
    desk.at("2026-12-24 17:30")
    holiday = desk.new_ticket("Duda sobre permisos de usuario", estatus="Nuevo", **{
        "usuario": [podio_item_id("usuarios", mirador.key)]})
    desk.cycle()
    desk.at("2026-12-28 09:30")
    desk.edit(holiday, estatus="En atención")
    desk.cycle()
    seen["t2_holiday"] = holiday

    # Everything again: nothing may change.
    desk.at("2026-12-28 09:45")
    seen["before_rerun"] = state_of(desk)
    seen["rerun_report"] = desk.cycle()
    seen["after_rerun"] = state_of(desk)


def _link(text: str) -> str:
    match = re.search(r"https://docs\.google\.com/\S+", text)
    assert match, text
    return match.group(0)


def state_of(desk: Desk) -> dict[str, Any]:
    """Everything an automation could have changed: the ledger and the tools' state."""
    with desk.db.session() as s:
        ledger = [(r.idempotency_key, r.status, r.external_ref, r.attempts)
                  for r in s.scalars(select(ActionLedger).order_by(ActionLedger.id))]
    podio = desk.podio
    items = {i: podio.values(i) for i in podio.items(TICKETS) + podio.items("clientes")}
    return {"ledger": ledger, "items": items, "tasks": podio.tasks(),
            "comments": {i: podio.comments(i) for i in podio.items(TICKETS)},
            "jira": {k: (desk.jira.issue(k)["fields"]["status"]["name"],
                         len(desk.jira.comments(k)), len(desk.jira.remote_links(k)))
                     for k in desk.jira.issues()},
            "mail": [(m["subject"], tuple(m["to"])) for m in desk.google.sent_messages()]}
