"""Simulated staff activity in the sandbox: what the desk does on a working day.

Drives the emulated tools the way people do (through the tools' UI helpers, so revisions,
changelogs and webhooks happen as in the real tools): users open tickets with only a title
and their user, agents answer and escalate, Support resolves Jira issues, users answer
CSAT surveys. Used by `saeko-sync demo --serve` and the quota benchmark.
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
# What a person can do: ``step()`` draws among the first five; ``work`` (an agent moves an
# open ticket along or re-prioritises it) is for planned days (bench/quota_budget.py).
ACTIONS = ("new_ticket", "answer", "escalate", "resolve_jira", "csat", "work")
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

    def act(self, action: str) -> str:
        """Do one named action (one of ACTIONS), e.g. to replay a planned day."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
        try:
            outcome = getattr(self, f"_{action}")()
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

    def _new_ticket(self) -> str:
        world = self.sandbox.world
        user = self.rng.choice(world.users)
        module = self.rng.choice(list(_TITLES))
        title = self.rng.choice(_TITLES[module])
        item = self.podio.create_item_as(self.rng.choice(AGENTS), "tickets", {
            "titulo": title, "descripcion": f"<p>{title}. Reportado por {user.name}.</p>",
            "email-reportante": user.email, "usuario": [podio_item_id("usuarios", user.key)],
            "canal": self.rng.choice(["WhatsApp", "Correo", "Teléfono", "Portal"]),
            "prioridad": self.rng.choice(["Baja", "Media", "Media", "Alta"]), "estatus": "Nuevo"})
        self.created.append(item)
        return f"ticket {item} «{title}»"

    def _pick(self, status: str) -> int:
        candidates = [i for i in self.created[-200:]
                      if self.podio.values(i).get("estatus") == status]
        if not candidates:
            raise LookupError(f"no ticket in {status}")
        return int(self.rng.choice(candidates))

    def _answer(self) -> str:
        item = self._pick("Nuevo")
        self.podio.update_item_as(self.rng.choice(AGENTS), item, {
            "estatus": "En atención",
            "respuesta": "Hola, ya revisamos tu caso: sigue estos pasos en la plataforma."})
        return f"ticket {item} answered"

    def _escalate(self) -> str:
        item = self._pick("Nuevo")
        self.podio.update_item_as(self.rng.choice(AGENTS), item, {"estatus": "Escalado"})
        return f"ticket {item} escalated"

    def _work(self) -> str:
        """An agent works an open ticket: moves its status along, or changes its priority."""
        if self._open is None:
            self._open = [podio_item_id("tickets", t.key) for t in self.sandbox.world.tickets
                          if t.status != "Cerrado"]
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
        self.podio.update_item_as(self.rng.choice(AGENTS), item, fields)
        return f"ticket {item}: {fields}"

    def _resolve_jira(self) -> str:
        jira: Any = self.sandbox.tools.get("jira")
        if jira is None:
            raise LookupError("no Jira in this sandbox")
        for key in self.rng.sample(jira.issues(), k=min(30, len(jira.issues()))):
            issue = jira.issue(key)
            category = issue["fields"]["status"]["statusCategory"]["key"]
            if category != "done":
                done = JIRA_WORKFLOWS[key.split("-")[0]][-1]
                try:
                    jira.transition_as("agente-3", key, done, resolution="Corregido")
                except ValueError:
                    continue
                return f"{key} resolved"
        raise LookupError("no open Jira issue")

    def _csat(self) -> str:
        google: Any = self.sandbox.tools.get("google")
        if google is None:
            raise LookupError("no Google in this sandbox")
        ticket = self.rng.choice(self.sandbox.world.tickets)
        score = self.rng.choices([5, 4, 3, 2, 1], weights=[55, 30, 7, 4, 4])[0]
        user = next(u for u in self.sandbox.world.users if u.key == ticket.user_key)
        return "csat " + google.submit_response(google.ids["csat"], {
            "score": score, "comment": "Gracias" if score >= 4 else "Tardaron mucho",
            "ticket": str(podio_item_id("tickets", ticket.key)), "email": user.email})
