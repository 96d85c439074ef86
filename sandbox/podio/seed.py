"""Seeds the six apps from the demo ``World`` (no validation path: values are built directly
in their internal form, so 2,000 clients / 60,000 tickets seed in seconds)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.podio.model import PODIO_UI, Actor, PodioUser
from sandbox.podio.schema import AppDef
from sandbox.podio.store import ItemStore
from sandbox.world import WORK_END, WORK_START, Client, Ticket, World, podio_item_id

ADMIN_USER_ID = 1000  # the integration user (brief: podio user id 1000, profile 5000)
ADMIN_PROFILE_ID = 5000
ADMIN_EMAIL = "admin@saeko.test"
SEED_HOUR_UTC = 17  # records dated by day are created at 17:00 UTC (09:00/10:00 in Mexico)


def directory(world: World, timezone: str) -> list[PodioUser]:
    """Workspace members: the integration user and every staff member of the world."""
    admin = PodioUser(ADMIN_USER_ID, ADMIN_PROFILE_ID, "Integración Saeko", ADMIN_EMAIL,
                      timezone)
    return [admin] + [PodioUser(s.podio_user_id, s.podio_profile_id, s.name, s.email, timezone)
                      for s in world.staff]


def business_hours(start: datetime, end: datetime, tz: ZoneInfo) -> float:
    """Working hours (Mon-Fri, world business hours, local) between two naive-UTC instants."""
    if end <= start:
        return 0.0
    utc = ZoneInfo("UTC")
    lo = start.replace(tzinfo=utc).astimezone(tz).replace(tzinfo=None)
    hi = end.replace(tzinfo=utc).astimezone(tz).replace(tzinfo=None)
    seconds, day = 0.0, lo.date()
    while day <= hi.date():
        if day.weekday() < 5:
            begin = max(lo, datetime.combine(day, time(WORK_START)))
            finish = min(hi, datetime.combine(day, time(WORK_END)))
            seconds += max(0.0, (finish - begin).total_seconds())
        day += timedelta(days=1)
    return seconds / 3600


class Seeder:
    """Builds items with their revisions; every time is capped at ``world.now``."""

    def __init__(self, store: ItemStore, world: World) -> None:
        self.store = store
        self.world = world
        self.apps = store.apps
        self._actors: dict[int, Actor] = {}
        self._ones: dict[int, tuple[int]] = {}
        self.staff_user = {s.key: s.podio_user_id for s in world.staff}
        self.staff_profile = {s.key: s.podio_profile_id for s in world.staff}
        self.coo = self.staff_user.get("coo", ADMIN_USER_ID)

    def run(self) -> None:
        for client in self.world.clients:
            self._client(client)
        clients = {c.key: c for c in self.world.clients}
        created = {c.key: self._at(c.signed_on) for c in self.world.clients}
        for school in self.world.schools:
            self._item("escuelas", school.key, created[school.client_key], self.coo, {
                "nombre": school.name, "cliente": self._ref("clientes", school.client_key),
                "nivel": self._opt("escuelas", "nivel", school.level), "ciudad": school.city})
        school_client = {s.key: s.client_key for s in self.world.schools}
        for user in self.world.users:
            self._item("usuarios", user.key, created[school_client[user.school_key]], self.coo, {
                "nombre": user.name, "email": (("work", user.email),),
                "telefono": (("mobile", user.phone),),
                "escuela": self._ref("escuelas", user.school_key),
                "rol": self._opt("usuarios", "rol", user.role),
                **({"no-encuestar": self._opt("usuarios", "no-encuestar", "Sí")}
                   if user.no_survey else {})})
        for contract in self.world.contracts:
            client = clients[contract.client_key]
            self._item("contratos", contract.key, self._at(contract.starts_on), self.coo, {
                "titulo": f"Contrato {client.name} {contract.starts_on:%Y}",
                "cliente": self._ref("clientes", client.key),
                "tipo": self._opt("contratos", "tipo", contract.kind),
                "inicio": (contract.starts_on, None), "fin": (contract.ends_on, None),
                "monto": (f"{contract.amount}.0000", "MXN"),
                "estatus": self._opt("contratos", "estatus", contract.status)})
        for invoice in self.world.invoices:
            self._invoice(invoice)
        users = {u.key: u for u in self.world.users}
        csat = {s.ticket_key: s for s in self.world.surveys if s.kind == "csat" and s.ticket_key}
        for ticket in self.world.tickets:
            self._ticket(ticket, clients[ticket.client_key], users[ticket.user_key].email, csat)

    # --- helpers ------------------------------------------------------------------------

    def _actor(self, user_id: int) -> Actor:
        if user_id not in self._actors:
            self._actors[user_id] = Actor("user", user_id, PODIO_UI)
        return self._actors[user_id]

    def _one(self, value: int) -> tuple[int]:
        if value not in self._ones:
            self._ones[value] = (value,)
        return self._ones[value]

    def _ref(self, app: str, key: int) -> tuple[int]:
        """A shared one-item reference tuple (many tickets point at the same user)."""
        return self._one(podio_item_id(app, key))

    def _opt(self, app: str, ext: str, text: str) -> tuple[int]:
        return self._one(self.apps[app].by_key[ext].option_id(text))

    def _at(self, day: date) -> datetime:
        return min(datetime.combine(day, time(SEED_HOUR_UTC)), self.world.now)

    def _cap(self, moment: datetime) -> datetime:
        return min(moment, self.world.now)

    def _values(self, app: AppDef, values: dict[str, Any]) -> tuple[Any, ...]:
        out: list[Any] = [None] * len(app.fields)
        for ext, value in values.items():
            if value is not None:
                out[app.by_key[ext].pos] = value
        return tuple(out)

    def _item(self, app_name: str, key: int, when: datetime, user_id: int,
              values: dict[str, Any],
              later: Sequence[tuple[datetime, int, dict[str, Any]]] = ()) -> None:
        """One item: a creation revision, then updates (time, user, changed values)."""
        app = self.apps[app_name]
        current = self._values(app, values)
        first = self.store.new_revision(0, when, self._actor(user_id), current, "creation")
        item = self.store.add(app, podio_item_id(app_name, key), key, first, indexed=False)
        merged = dict(values)
        for at, editor, changes in later:
            merged.update(changes)
            new = self._values(app, merged)
            if new == current:
                continue
            at = max(self._cap(at), item.last_edit_on)
            item.revisions.append(self.store.new_revision(
                len(item.revisions), at, self._actor(editor), new, "update"))
            item.last_event_on = at
            current = new

    # --- records ------------------------------------------------------------------------

    def _client(self, client: Client) -> None:
        changes = sorted(client.decision_maker_changes)
        first_decisor = changes[0][1] if changes else client.decision_maker
        editor = self.staff_user.get(client.am or "", self.coo)
        self._item("clientes", client.key, self._at(client.signed_on), self.coo, {
            "nombre": client.name, "segmento": self._opt("clientes", "segmento", client.segment),
            "cliente-burbuja": self._opt("clientes", "cliente-burbuja",
                                         "Sí" if client.burbuja else "No"),
            "am": self._one(self.staff_profile[client.am]) if client.am else None,
            "csm": self._one(self.staff_profile[client.csm]) if client.csm else None,
            "producto": self._opt("clientes", "producto", client.product),
            "estatus": self._opt("clientes", "estatus", client.status),
            "region": self._opt("clientes", "region", client.region),
            "fecha-alta": (client.signed_on, None),
            "onboarding-finalizado": (client.onboarding_done_on, None)
            if client.onboarding_done_on else None,
            "decisor": first_decisor, "mrr": (f"{client.mrr}.0000", "MXN"),
        }, [(at, editor, {"decisor": new}) for at, _old, new in changes])

    def _invoice(self, invoice: Any) -> None:
        issued = self._at(invoice.due_on - timedelta(days=14))
        later = []
        if invoice.paid_on is not None:
            later.append((self._at(invoice.paid_on), self.coo, {
                "pagada": (invoice.paid_on, None),
                "estatus": self._opt("facturas", "estatus", "Pagada")}))
        elif invoice.status == "Vencida":
            later.append((self._at(invoice.due_on + timedelta(days=1)), self.coo, {
                "estatus": self._opt("facturas", "estatus", "Vencida")}))
        self._item("facturas", invoice.key, issued, self.coo, {
            "folio": invoice.folio, "cliente": self._ref("clientes", invoice.client_key),
            "monto": (f"{invoice.amount}.0000", "MXN"), "vencimiento": (invoice.due_on, None),
            "estatus": self._opt("facturas", "estatus", "Pendiente")}, later)

    def _ticket(self, ticket: Ticket, client: Client, email: str, csat: dict[int, Any]) -> None:
        agent = self.staff_user[ticket.responsible]
        tz = client.tz
        base: dict[str, Any] = {
            "titulo": ticket.title,
            "descripcion": f"<p>{html.escape(ticket.description, quote=False)}</p>",
            "email-reportante": email, "usuario": self._ref("usuarios", ticket.user_key),
            "canal": self._opt("tickets", "canal", ticket.channel),
            "prioridad": self._opt("tickets", "prioridad", ticket.priority),
            "estatus": self._opt("tickets", "estatus", "Nuevo"),
            "responsable": self._one(self.staff_profile[ticket.responsible]),
            "fecha-apertura": (ticket.opened_at, None),
        }
        if ticket.complete:  # historic tickets: T1's fields already filled
            base.update({
                "escuela": self._ref("escuelas", ticket.school_key),
                "cliente-burbuja": self._opt("tickets", "cliente-burbuja",
                                             "Sí" if client.burbuja else "No"),
                "csm": self._one(self.staff_profile[client.csm]) if client.csm else None,
                "am": self._one(self.staff_profile[client.am]) if client.am else None,
                "producto": self._opt("tickets", "producto", client.product),
                "modulo": self._opt("tickets", "modulo", ticket.module)})
        final: dict[str, Any] = {"estatus": self._opt("tickets", "estatus", ticket.status)}
        events = [ticket.opened_at]
        escalation = ticket.escalation
        if escalation is not None:
            # Also on recent tickets: the Jira issue exists, so the key must be there
            # (otherwise T3 would escalate the ticket a second time).
            final["jira"] = escalation.key
            events.append(escalation.created_at)
        if ticket.complete:
            final.update(self._ticket_times(ticket, tz, csat, events))
        self._item("tickets", ticket.key, ticket.opened_at, agent, base,
                   [(max(events), agent, final)])

    def _ticket_times(self, ticket: Ticket, tz: ZoneInfo, csat: dict[int, Any],
                      events: list[datetime]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if ticket.first_response_at is not None:
            events.append(ticket.first_response_at)
            out["fecha-primera-respuesta"] = (ticket.first_response_at, None)
            out["tiempo-primera-respuesta"] = _hours(
                business_hours(ticket.opened_at, ticket.first_response_at, tz))
        escalation = ticket.escalation
        if escalation is not None and escalation.resolved_at is not None:
            events.append(escalation.resolved_at)
            out["tiempo-incidencia"] = _hours(
                business_hours(escalation.created_at, escalation.resolved_at, tz))
        if ticket.closed_at is not None:
            events.append(ticket.closed_at)
            out["fecha-cierre"] = (ticket.closed_at, None)
            out["tiempo-cierre"] = _hours(business_hours(ticket.opened_at, ticket.closed_at, tz))
        if ticket.answer:
            out["respuesta"] = ticket.answer
        answer = csat.get(ticket.key)
        if answer is not None and answer.submitted_at <= self.world.now:
            events.append(answer.submitted_at)
            out["calificacion"] = f"{answer.score}.0000"
        return out


def _hours(value: float) -> str:
    return f"{value:.4f}"
