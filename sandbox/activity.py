"""Simulated staff activity in the sandbox: what the desk does on a working day.

Drives the emulated tools the way people do (through the tools' UI helpers, so revisions,
changelogs and webhooks happen as in the real tools): users open tickets with only a title
and their user, agents answer, escalate, hand off and close tickets, Support resolves Jira
issues, users answer CSAT and NPS surveys; on the accounts side, cobranza marks invoices
overdue or paid, AMs record decision makers, check-ins and contract dates, and the usage
sheet shows a client's drop. Used by `saeko-sync demo --serve`, the quota
benchmark and the chaos suite (bench/chaos.py), which replays a planned day: each
``act(action, target, **details)`` names what to act on instead of picking at random.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from sandbox.google.a1 import format_range
from sandbox.world import _FIRST, _LAST, _TITLES, JIRA_WORKFLOWS, podio_item_id

if TYPE_CHECKING:
    from sandbox.server import Sandbox

AGENTS = [f"agente-{n}@saeko.test" for n in range(1, 6)]
# What a person can do: ``step()`` draws among the first five; the others are for planned
# days: ``work`` (an agent moves an open ticket along or re-prioritises it,
# bench/quota_budget.py), ``nps`` (a Directivo answers the NPS survey), ``handoff`` (a ticket
# sent to the AM: "Enviado a AM"), ``close`` (closed by hand: "Cerrado") and
# ``new_client`` (a CSM records a new account, onboarding done, without AM), bench/chaos.py;
# the account situations of `saeko-sync demo` (jobs/demo_accounts.py): ``overdue_invoice``
# (cobranza marks an unpaid invoice «Vencida», due in the past), ``pay_invoice`` (cobranza
# records the payment), ``decision_maker`` (an AM records the client's new decision maker),
# ``usage_drop`` (a client's recent weeks fall in the usage sheet, edited as a person does),
# ``contract_due`` (a contract's end date set N days ahead, «Vigente»), ``check_in`` (an
# AM logs a check-in in the app Seguimientos) and ``critical_ticket`` (an agent raises an
# open ticket of a client to priority «Crítica»); for M8, ``reassign_am`` (the COO gives a
# client to another AM) and ``client_lost`` (the client leaves: estatus «Baja»).
ACTIONS = ("new_ticket", "answer", "escalate", "resolve_jira", "csat", "work", "nps",
           "handoff", "close", "new_client", "overdue_invoice", "pay_invoice",
           "decision_maker", "usage_drop", "contract_due", "check_in", "critical_ticket",
           "reassign_am", "client_lost", "micro", "opt_out")
# M4: ``micro`` (a user answers the monthly micro-survey, 1-5, with the email its prefilled
# link fills in) and ``opt_out`` (an AM ticks «no-encuestar» on a user who asked not to be
# surveyed); both take a world user key as ``target``, micro also ``score``, ``comment``.
ANSWER_TEXT = "Hola, ya revisamos tu caso: sigue estos pasos en la plataforma."
# Next status an agent gives a ticket it works on (None: it re-prioritises it instead).
WORK_NEXT = {"Nuevo": "En atención", "En atención": "Enviado a AM", "Por validar": "Cerrado"}
# Who keeps the invoices in Podio: the seeded ones are the COO's (sandbox/podio/seed.py).
COBRANZA = "coo@saeko.test"
USAGE_COLUMNS = ("usuarios_activos", "inicios_sesion", "funciones_clave")  # what falls


class StaffSimulator:
    """One ``step()`` = one action by one person; ``run()`` steps until stopped."""

    def __init__(self, sandbox: Sandbox, seed: int = 1) -> None:
        self.sandbox = sandbox
        self.rng = random.Random(seed)
        self.done: Counter[str] = Counter()
        self.created: list[int] = []
        self._open: list[int] | None = None
        self._stop = threading.Event()

    def step(self) -> str:
        action = self.rng.choices(
            ["new_ticket", "answer", "escalate", "resolve_jira", "csat"],
            weights=[40, 25, 10, 15, 10])[0]
        return self.act(action)

    def act(self, action: str, target: int | str | None = None, **details: Any) -> str:
        """Do one named action (one of ACTIONS), e.g. to replay a planned day.

        ``target`` is what to act on instead of a random pick: a Podio ticket item id
        (answer, escalate, work, csat, handoff, close), a Jira issue key (resolve_jira) or a
        world user key (nps: a Directivo). ``details`` fix what would otherwise be drawn:
        new_ticket ``title``, ``user`` (world user key), ``by_email`` (only the title and the
        reporter's email, else only the title and the user); answer ``text``, ``agent``
        (email), ``responsible`` (Podio profile id); csat ``score``, ``comment``, ``email``
        (needed for a ticket not in the world); nps ``score``, ``reason``; resolve_jira
        ``resolution``; new_client ``name``, ``segment``, ``region``, ``csm`` (email).
        Account actions take a Podio item id as ``target``: an invoice (overdue_invoice,
        pay_invoice; or ``client``: one of that client's), a client (decision_maker,
        usage_drop, check_in) or a contract (contract_due; or ``client``: its latest);
        overdue_invoice ``days`` (overdue for, default 10-75); decision_maker ``name``;
        usage_drop ``factor`` (what remains, default 0.5) and ``weeks`` (the latest N rows,
        default 4); contract_due ``days`` (default 10-80) and ``status`` (default
        «Vigente»); check_in ``kind`` («Check-in»), ``outcome`` («Realizado»), ``day``
        (ISO date, default today), ``notes``; reassign_am ``am`` (the new AM's email,
        default another AM, of the client's region when there is one); all of them
        ``by`` (who edits, an email:
        default the client's AM, else its CSM; cobranza for invoices). Any action
        ``agent``. Returns "<action>: <what happened>", or
        "<action>: skipped: <why>" when there was nothing to act on.
        """
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
        try:
            outcome = getattr(self, f"_{action}")(target, **details)
        except (ValueError, KeyError, LookupError) as exc:  # nothing suitable right now
            outcome = f"skipped: {exc}"
        self.done[action if not outcome.startswith("skipped") else "skipped"] += 1
        return f"{action}: {outcome}"

    def run(self, interval: float = 2.0, steps: int | None = None) -> None:
        count = 0
        while not self._stop.wait(interval) and (steps is None or count < steps):
            self.step()
            count += 1

    def stop(self) -> None:
        self._stop.set()

    # --- actions ------------------------------------------------------------------------

    @property
    def podio(self) -> Any:
        return self.sandbox.tools["podio"]

    def _agent(self, details: dict[str, Any]) -> str:
        return str(details.get("agent") or self.rng.choice(AGENTS))

    def _new_ticket(self, _target: Any = None, **details: Any) -> str:
        world = self.sandbox.world
        if "user" in details:
            user = next(u for u in world.users if u.key == details["user"])
        else:
            user = self.rng.choice(world.users)
        if "title" in details:
            title = str(details["title"])
        else:
            module = self.rng.choice(list(_TITLES))
            title = self.rng.choice(_TITLES[module])
        if "title" in details or "user" in details:  # as people do: a title and who asks
            fields: dict[str, Any] = {"titulo": title}
            if details.get("by_email"):
                fields["email-reportante"] = user.email
            else:
                fields["usuario"] = [podio_item_id("usuarios", user.key)]
            item = self.podio.create_item_as(self._agent(details), "tickets", fields)
        else:
            item = self.podio.create_item_as(self.rng.choice(AGENTS), "tickets", {
                "titulo": title, "descripcion": f"<p>{title}. Reportado por {user.name}.</p>",
                "email-reportante": user.email,
                "usuario": [podio_item_id("usuarios", user.key)],
                "canal": self.rng.choice(["WhatsApp", "Correo", "Teléfono", "Portal"]),
                "prioridad": self.rng.choice(["Baja", "Media", "Media", "Alta"]),
                "estatus": "Nuevo"})
        self.created.append(item)
        return f"ticket {item} «{title}»"

    def _pick(self, status: str) -> int:
        candidates = [i for i in self.created[-200:]
                      if self.podio.values(i).get("estatus") == status]
        if not candidates:
            raise LookupError(f"no ticket in {status}")
        return int(self.rng.choice(candidates))

    def _answer(self, target: int | None = None, **details: Any) -> str:
        item = int(target) if target is not None else self._pick("Nuevo")
        fields: dict[str, Any] = {"estatus": "En atención",
                                  "respuesta": str(details.get("text") or ANSWER_TEXT)}
        if details.get("responsible") is not None:
            fields["responsable"] = [int(details["responsible"])]
        self.podio.update_item_as(self._agent(details), item, fields)
        return f"ticket {item} answered"

    def _escalate(self, target: int | None = None, **details: Any) -> str:
        item = int(target) if target is not None else self._pick("Nuevo")
        self.podio.update_item_as(self._agent(details), item, {"estatus": "Escalado"})
        return f"ticket {item} escalated"

    def _set_status(self, target: int | None, status: str, details: dict[str, Any]) -> str:
        item = int(target) if target is not None else self._pick("En atención")
        self.podio.update_item_as(self._agent(details), item, {"estatus": status})
        return f"ticket {item} -> {status}"

    def _handoff(self, target: int | None = None, **details: Any) -> str:
        """An agent sends the ticket to the AM's space ("Enviado a AM")."""
        return self._set_status(target, "Enviado a AM", details)

    def _close(self, target: int | None = None, **details: Any) -> str:
        """An agent closes the ticket by hand ("Cerrado")."""
        return self._set_status(target, "Cerrado", details)

    def _work(self, target: int | None = None, **details: Any) -> str:
        """An agent works an open ticket: moves its status along, or changes its priority."""
        if target is not None:
            item = int(target)
        else:
            if self._open is None:
                self._open = [podio_item_id("tickets", t.key)
                              for t in self.sandbox.world.tickets if t.status != "Cerrado"]
            candidates = self._open + self.created[-200:]
            if not candidates:
                raise LookupError("no open ticket")
            item = int(self.rng.choice(candidates))
        status = self.podio.values(item).get("estatus")
        following = WORK_NEXT.get(str(status))
        if following is not None and self.rng.random() < 0.7:
            fields: dict[str, Any] = {"estatus": following}
        else:
            fields = {"prioridad": self.rng.choice(["Media", "Alta"])}
        self.podio.update_item_as(self._agent(details), item, fields)
        return f"ticket {item}: {fields}"

    def _critical_ticket(self, target: int | None = None, **details: Any) -> str:
        """An agent raises a ticket to priority «Crítica»: ``target``, else an open ticket of
        the client ``client`` (a Podio item id), else any open ticket."""
        if target is not None:
            item = int(target)
        else:
            client = details.get("client")
            tickets = [i for i in self.podio.items("tickets")
                       if self.podio.values(i).get("estatus") not in ("Cerrado", "Por validar")
                       and (client is None or self._client_of_ticket(i) == int(client))]
            if not tickets:
                raise LookupError("no open ticket" + (f" of client {client}" if client else ""))
            item = int(self.rng.choice(sorted(tickets)))
        self.podio.update_item_as(self._agent(details), item, {"prioridad": "Crítica"})
        return f"ticket {item}: prioridad Crítica"

    def _client_of_ticket(self, item: int) -> int | None:
        schools = self.podio.values(item).get("escuela") or []
        if not schools:
            return None
        clients = self.podio.values(int(schools[0])).get("cliente") or []
        return int(clients[0]) if clients else None

    def _resolve_jira(self, target: str | None = None, **details: Any) -> str:
        jira: Any = self.sandbox.tools.get("jira")
        if jira is None:
            raise LookupError("no Jira in this sandbox")
        resolution = str(details.get("resolution") or "Corregido")
        if target is not None:
            done = JIRA_WORKFLOWS[str(target).split("-")[0]][-1]
            jira.transition_as(str(details.get("by") or "agente-3"), str(target), done,
                               resolution=resolution)
            return f"{target} resolved"
        for key in self.rng.sample(jira.issues(), k=min(30, len(jira.issues()))):
            issue = jira.issue(key)
            category = issue["fields"]["status"]["statusCategory"]["key"]
            if category != "done":
                done = JIRA_WORKFLOWS[key.split("-")[0]][-1]
                try:
                    jira.transition_as("agente-3", key, done, resolution=resolution)
                except ValueError:
                    continue
                return f"{key} resolved"
        raise LookupError("no open Jira issue")

    def _google(self) -> Any:
        google: Any = self.sandbox.tools.get("google")
        if google is None:
            raise LookupError("no Google in this sandbox")
        return google

    def _csat(self, target: int | None = None, **details: Any) -> str:
        google = self._google()
        world = self.sandbox.world
        if target is not None:
            item = int(target)
            ticket = next((t for t in world.tickets
                           if podio_item_id("tickets", t.key) == item), None)
        else:
            ticket = self.rng.choice(world.tickets)
            item = podio_item_id("tickets", ticket.key)
        if "score" in details:
            score = int(details["score"])
        else:
            score = self.rng.choices([5, 4, 3, 2, 1], weights=[55, 30, 7, 4, 4])[0]
        email = details.get("email")
        if email is None:
            if ticket is None:
                raise LookupError(f"ticket {item} is not in the world: give the email")
            email = next(u for u in world.users if u.key == ticket.user_key).email
        comment = details.get("comment") or ("Gracias" if score >= 4 else "Tardaron mucho")
        return "csat " + google.submit_response(google.ids["csat"], {
            "score": score, "comment": comment, "ticket": str(item), "email": email})

    def _new_client(self, _target: Any = None, **details: Any) -> str:
        """A CSM records a new account whose onboarding is done and that has no AM yet."""
        csm = next(p for p in self.sandbox.world.staff
                   if p.email == str(details.get("csm") or "csm-1@saeko.test"))
        name = str(details.get("name") or f"Colegio Nuevo {self.rng.randint(100, 999)}")
        today = self.sandbox.clock.now().date().isoformat()
        item = self.podio.create_item_as(csm.email, "clientes", {
            "nombre": name, "segmento": str(details.get("segment") or "Estándar"),
            "region": str(details.get("region") or "Tijuana"), "estatus": "Activo",
            "fecha-alta": {"start_date": today}, "onboarding-finalizado": {"start_date": today},
            "csm": [csm.podio_profile_id]})
        return f"client {item} «{name}»"

    def _nps(self, target: int | None = None, **details: Any) -> str:
        """A Directivo answers the quarterly NPS survey (0-10; 0-6 is a detractor)."""
        google = self._google()
        world = self.sandbox.world
        if target is not None:
            user = next(u for u in world.users if u.key == int(target))
        else:
            user = self.rng.choice([u for u in world.users if u.role == "Directivo"])
        school = next(s for s in world.schools if s.key == user.school_key)
        client = next(c for c in world.clients if c.key == school.client_key)
        score = int(details["score"]) if "score" in details else self.rng.randint(0, 10)
        reason = str(details.get("reason") or ("Muy buen acompañamiento" if score >= 9
                                                else "El soporte tarda demasiado"))
        return "nps " + google.submit_response(google.ids["nps"], {
            "score": score, "reason": reason, "email": user.email, "client": client.name})

    def _micro(self, target: int | None = None, **details: Any) -> str:
        """A user answers M4's monthly micro-survey (1-5) through its prefilled link."""
        google = self._google()
        world = self.sandbox.world
        user = next(u for u in world.users if u.key == int(target)) if target is not None \
            else self.rng.choice([u for u in world.users if u.role == "Operativo"])
        score = int(details["score"]) if "score" in details else self.rng.randint(1, 5)
        comment = str(details.get("comment") or ("Todo bien este mes" if score >= 4
                                                  else "Los reportes tardan en cargar"))
        return "micro " + google.submit_response(google.ids["micro"], {
            "score": score, "comment": comment, "email": user.email})

    def _opt_out(self, target: int | None = None, **details: Any) -> str:
        """An AM records that a user asked not to be surveyed (Podio «no-encuestar»)."""
        world = self.sandbox.world
        user = next(u for u in world.users if u.key == int(target)) if target is not None \
            else self.rng.choice([u for u in world.users if not u.no_survey])
        item = podio_item_id("usuarios", user.key)
        by = str(details.get("by") or "coo@saeko.test")
        self.podio.update_item_as(by, item, {"no-encuestar": "Sí"})
        return f"user {item} «no-encuestar»"

    # --- account management -------------------------------------------------------------

    def _today(self) -> date:
        return self.sandbox.clock.now().date()

    def _client_item(self, target: int | str | None) -> int:
        if target is not None:
            return int(target)
        clients = [i for i in self.podio.items("clientes")
                   if self.podio.values(i).get("estatus") != "Baja"]
        if not clients:
            raise LookupError("no client")
        return int(self.rng.choice(clients))

    def _person(self, client: int, details: dict[str, Any], default: str | None = None
                ) -> Any:
        """Who edits a client's account: ``by``, else its AM, else its CSM (else
        ``default``, else the COO), as a world staff member."""
        staff = self.sandbox.world.staff
        email = details.get("by") or default
        if email is None:
            values = self.podio.values(client)
            profiles = [p for field in ("am", "csm") for p in values.get(field) or []]
            person = next((s for p in profiles for s in staff if s.podio_profile_id == p), None)
            email = person.email if person else COBRANZA
        return next(s for s in staff if s.email == str(email))

    def _of_client(self, app: str, client: int) -> list[int]:
        """The items of ``app`` whose «cliente» is ``client``, ascending."""
        return [i for i in self.podio.items(app) if self.podio.values(i).get("cliente")
                == [client]]

    def _invoice(self, target: int | str | None, details: dict[str, Any],
                 wanted: Any) -> int:
        if target is not None:
            return int(target)
        if details.get("client") is not None:
            invoices = self._of_client("facturas", int(details["client"]))
        else:
            invoices = self.podio.items("facturas")
        candidates = [i for i in invoices if wanted(self.podio.values(i))]
        if not candidates:
            raise LookupError("no such invoice")
        return int(self.rng.choice(candidates))

    def _overdue_invoice(self, target: int | str | None = None, **details: Any) -> str:
        """Cobranza marks an unpaid invoice overdue: «vencimiento» ``days`` ago, «pagada»
        empty, estatus «Vencida». The unpaid invoices (of ``client``) first; when all are
        paid, the client's latest one (a payment that did not go through)."""
        def unpaid(values: dict[str, Any]) -> bool:
            return not values.get("pagada") and values.get("estatus") != "Vencida"
        try:
            item = self._invoice(target, details, unpaid)
        except LookupError:
            client = self._client_item(details.get("client"))
            invoices = self._of_client("facturas", client)
            if not invoices:
                raise LookupError(f"client {client} has no invoice") from None
            item = invoices[-1]
        days = int(details["days"]) if "days" in details else self.rng.randint(10, 75)
        due = self._today() - timedelta(days=days)
        self.podio.update_item_as(str(details.get("by") or COBRANZA), item, {
            "vencimiento": {"start_date": due.isoformat()}, "pagada": None,
            "estatus": "Vencida"})
        return f"invoice {item} overdue since {due.isoformat()}"

    def _pay_invoice(self, target: int | str | None = None, **details: Any) -> str:
        """Cobranza records the payment of an invoice (an overdue one unless ``target``):
        «pagada» today, estatus «Pagada»."""
        item = self._invoice(target, details, lambda v: v.get("estatus") == "Vencida"
                             and not v.get("pagada"))
        today = self._today().isoformat()
        self.podio.update_item_as(str(details.get("by") or COBRANZA), item, {
            "pagada": {"start_date": today}, "estatus": "Pagada"})
        return f"invoice {item} paid on {today}"

    def _decision_maker(self, target: int | str | None = None, **details: Any) -> str:
        """The AM records the client's new decision maker (field «decisor»)."""
        client = self._client_item(target)
        old = self.podio.values(client).get("decisor")
        name = str(details.get("name") or "")
        while not name or name == old:
            name = (f"{self.rng.choice(_FIRST)} {self.rng.choice(_LAST)} "
                    f"{self.rng.choice(_LAST)}")
        self.podio.update_item_as(self._person(client, details).email, client,
                                  {"decisor": name})
        return f"client {client}: decisor {old or '—'} -> {name}"

    def _usage_drop(self, target: int | str | None = None, **details: Any) -> str:
        """The client's latest ``weeks`` rows of the usage sheet fall to ``factor`` of what
        they were (active users, logins, key features), typed into the sheet."""
        google = self._google()
        client = self._client_item(target)
        factor = float(details.get("factor", 0.5))
        weeks = int(details.get("weeks", 4))
        sheet, tab = google.ids["usage"], google.usage_tab
        rows = google.sheet_values(sheet, tab)
        header = [str(h) for h in rows[0]]
        key, week = header.index("cliente_id"), header.index("semana")
        columns = [header.index(c) for c in USAGE_COLUMNS]
        mine = sorted(((str(row[week]), n) for n, row in enumerate(rows) if n and row
                       and str(row[key]) == str(client)), reverse=True)[:weeks]
        if not mine:
            raise LookupError(f"client {client} has no usage rows")
        for _week, n in mine:
            fallen = [max(1, int(float(rows[n][c]) * factor)) for c in columns]
            google.set_cells(sheet, format_range(tab, n, n + 1, min(columns),
                                                 max(columns) + 1), [fallen])
        return (f"client {client}: usage x{factor:g} in {len(mine)} weeks since "
                f"{min(w for w, _n in mine)[:10]}")

    def _contract_due(self, target: int | str | None = None, **details: Any) -> str:
        """The AM sets a contract's end («fin») ``days`` ahead, estatus ``status``."""
        if target is not None:
            contract = int(target)
        elif details.get("client") is not None:
            contracts = self._of_client("contratos", int(details["client"]))
            if not contracts:
                raise LookupError(f"client {details['client']} has no contract")
            contract = contracts[-1]
        else:
            contract = int(self.rng.choice(self.podio.items("contratos")))
        days = int(details["days"]) if "days" in details else self.rng.randint(10, 80)
        ends = (self._today() + timedelta(days=days)).isoformat()
        status = str(details.get("status") or "Vigente")
        client = (self.podio.values(contract).get("cliente") or [None])[0]
        who = (self._person(int(client), details) if client is not None
               else self._person(contract, details, COBRANZA))
        self.podio.update_item_as(who.email, contract, {"fin": {"start_date": ends},
                                                        "estatus": status})
        return f"contract {contract} ends {ends} ({status})"

    def _check_in(self, target: int | str | None = None, **details: Any) -> str:
        """The AM logs a follow-up in the app Seguimientos (a «Check-in», «Realizado»)."""
        client = self._client_item(target)
        person = self._person(client, details)
        name = self.podio.values(client).get("nombre") or f"cliente {client}"
        kind = str(details.get("kind") or "Check-in")
        item = self.podio.create_item_as(person.email, "seguimientos", {
            "titulo": f"{kind} con {name}", "cliente": [client],
            "fecha": {"start_date": str(details.get("day") or self._today().isoformat())},
            "tipo": kind, "resultado": str(details.get("outcome") or "Realizado"),
            "am": [person.podio_profile_id],
            "notas": str(details.get("notes") or "Revisión de uso y pendientes del ciclo.")})
        return f"check-in {item} on client {client} by {person.email}"

    # --- M8: the plan of a client's check-ins changes ------------------------------------

    def _reassign_am(self, target: int | str | None = None, **details: Any) -> str:
        """The COO gives a client (one with an AM unless ``target``) to another AM (``am``,
        default an AM other than its own, of its region when there is one)."""
        staff = self.sandbox.world.staff
        if target is None:
            with_am = [i for i in self.podio.items("clientes")
                       if self.podio.values(i).get("am")
                       and self.podio.values(i).get("estatus") != "Baja"]
            if not with_am:
                raise LookupError("no client with an AM")
            target = self.rng.choice(with_am)
        client = int(target)
        values = self.podio.values(client)
        current = (values.get("am") or [None])[0]
        if details.get("am"):
            new = next(s for s in staff if s.email == str(details["am"]))
        else:
            others = [s for s in staff if s.role == "am" and s.podio_profile_id != current]
            local = [s for s in others if s.region and s.region == values.get("region")]
            if not others:
                raise LookupError("no other AM")
            new = (local or others)[0]
        self.podio.update_item_as(str(details.get("by") or COBRANZA), client,
                                  {"am": [new.podio_profile_id]})
        return f"client {client}: AM -> {new.email}"

    def _client_lost(self, target: int | str | None = None, **details: Any) -> str:
        """The client leaves: the AM (or ``by``) sets its estatus to «Baja»."""
        client = self._client_item(target)
        self.podio.update_item_as(self._person(client, details).email, client,
                                  {"estatus": "Baja"})
        return f"client {client}: estatus Baja"
