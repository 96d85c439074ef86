"""Simulated staff activity in the sandbox: what the desk does on a working day.

Drives the emulated tools the way people do (through the tools' UI helpers, so revisions,
changelogs and webhooks happen as in the real tools): users open tickets with only a title
and their user, agents answer, escalate, hand off and close tickets, Support resolves Jira
issues, users answer CSAT and NPS surveys. Used by `saeko-sync demo --serve`, the quota
benchmark and the chaos suite (bench/chaos.py), which replays a planned day: each
``act(action, target, **details)`` names what to act on instead of picking at random.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

from sandbox.world import _TITLES, JIRA_WORKFLOWS, podio_item_id

if TYPE_CHECKING:
    from sandbox.server import Sandbox

AGENTS = [f"agente-{n}@saeko.test" for n in range(1, 6)]
# What a person can do: ``step()`` draws among the first five; the others are for planned
# days: ``work`` (an agent moves an open ticket along or re-prioritises it,
# bench/quota_budget.py), ``nps`` (a Directivo answers the NPS survey), ``handoff`` (a ticket
# sent to the AM: "Enviado a AM"), ``close`` (closed by hand: "Cerrado") and
# ``new_client`` (a CSM records a new account, onboarding done, without AM), bench/chaos.py.
ACTIONS = ("new_ticket", "answer", "escalate", "resolve_jira", "csat", "work", "nps",
           "handoff", "close", "new_client")
ANSWER_TEXT = "Hola, ya revisamos tu caso: sigue estos pasos en la plataforma."
# Next status an agent gives a ticket it works on (None: it re-prioritises it instead).
WORK_NEXT = {"Nuevo": "En atención", "En atención": "Enviado a AM", "Por validar": "Cerrado"}


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
        ``resolution``; new_client ``name``, ``segment``, ``region``, ``csm`` (email);
        any action ``agent``. Returns "<action>: <what happened>", or
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
