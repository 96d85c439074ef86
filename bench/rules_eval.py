"""Benchmark: rule-entity evaluations per second (SPEC section 9: >= 100,000 on one core).

Two figures:
1. evaluation: compiled rules (the shapes of T1-T8/M-rules conditions) run over records
   already in memory, exactly as the engine's bulk phases do (one context per record, the
   rule's conditions in order, stop at the first false);
2. bulk load + evaluation: the same rules over tickets read from a SQLite store with their
   relations (one query per relation and rule), i.e. what one cycle pays per rule.

    .venv/bin/python bench/rules_eval.py [--tickets 20000] [--seconds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.settings import PROJECT_ROOT, load_settings  # noqa: E402
from rules.config import RulesConfig  # noqa: E402
from rules.data import Loader, relation_tree  # noqa: E402
from rules.executor import Executor  # noqa: E402
from rules.ruleset import parse_text  # noqa: E402
from store.db import Database  # noqa: E402
from store.models import Client, School, Staff, Ticket  # noqa: E402

NOW = datetime(2026, 11, 18, 20, 0)
RULES = """
- id: b-escalar
  nombre: Escalar
  entidad: ticket
  disparadores: [{evento: cambio, campo: estatus, a: Escalado}]
  condiciones:
    - ticket.jira is none
    - ticket.prioridad in ["Alta", "Crítica"]
  acciones: [{podio.comentario: {texto: x}}]
- id: b-autocompletar
  nombre: Autocompletar
  entidad: ticket
  disparadores: [{evento: creado}]
  condiciones:
    - ticket.am is none or ticket.csm is none or ticket.producto is none
    - ticket.cliente is not none
  acciones: [{podio.comentario: {texto: x}}]
- id: b-vip
  nombre: Cliente TOP o burbuja con ticket crítico
  entidad: ticket
  disparadores: [{evento: creado}]
  condiciones:
    - ticket.cliente.segmento == "TOP" or ticket.cliente.cliente_burbuja
    - ticket.prioridad == "Crítica" and ticket.estatus != "Cerrado"
  acciones: [{podio.comentario: {texto: x}}]
- id: b-sla
  nombre: Sin primera respuesta
  entidad: ticket
  disparadores: [{cada: 15m}]
  condiciones:
    - ticket.fecha_primera_respuesta is none
    - ticket.estatus in ["Nuevo", "En atención"]
    - horas_desde(ticket.fecha_apertura) > 2
  acciones: [{podio.comentario: {texto: x}}]
- id: b-calificacion
  nombre: Calificación baja
  entidad: ticket
  disparadores: [{evento: cambio, campo: calificacion}]
  condiciones:
    - ticket.calificacion is not none and ticket.calificacion <= 2
    - not contiene(ticket.titulo, ["prueba"])
  acciones: [{podio.comentario: {texto: x}}]
"""
STATUSES = ["Nuevo", "En atención", "Escalado", "Por validar", "Enviado a AM", "Cerrado"]
PRIORITIES = ["Baja", "Media", "Alta", "Crítica"]


def _config(tmp: Path) -> RulesConfig:
    settings = load_settings(config_dir=PROJECT_ROOT / "config",
                             database_url=f"sqlite:///{tmp}/bench.db")
    return RulesConfig.from_settings(settings)


def _populate(db: Database, tickets: int) -> None:
    with db.session() as s:
        staff = [Staff(key=f"p{i}", name=f"Persona {i}", email=f"p{i}@saeko.test", role="am")
                 for i in range(10)]
        s.add_all(staff)
        s.flush()
        clients = [Client(source="podio", source_id=str(1_000_000 + i), name=f"Cliente {i}",
                          segment="TOP" if i % 7 == 0 else "Estándar", burbuja=i % 20 == 0,
                          am_id=staff[i % 10].id) for i in range(max(1, tickets // 30))]
        s.add_all(clients)
        s.flush()
        schools = [School(source="podio", source_id=str(2_000_000 + i), name=f"Escuela {i}",
                          client_id=c.id) for i, c in enumerate(clients)]
        s.add_all(schools)
        s.flush()
        s.add_all(Ticket(
            source="podio", source_id=str(4_000_000 + i), title=f"Ticket {i}",
            status=STATUSES[i % 6], priority=PRIORITIES[i % 4],
            client_id=clients[i % len(clients)].id, school_id=schools[i % len(schools)].id,
            am_id=staff[i % 10].id if i % 3 else None, csm_id=staff[(i + 1) % 10].id,
            jira_key=None if i % 5 else f"SOP-{i}", rating=float(i % 5 + 1),
            opened_at=NOW - timedelta(hours=i % 72),
            first_response_at=None if i % 4 == 0 else NOW - timedelta(hours=1))
            for i in range(tickets))


def _evaluate(executor: Executor, rules: list[Any], records: dict[int, dict[str, Any]]
              ) -> tuple[int, int]:
    evaluations = matches = 0
    for rule in rules:
        base = executor.base_ctx(rule)
        conditions = rule.conditions
        for record in records.values():
            ctx = dict(base)
            ctx["ticket"] = record
            evaluations += 1
            if all(c.run(ctx) for c in conditions):
                matches += 1
    return evaluations, matches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        config = _config(tmp)
        parsed = parse_text(RULES, "bench.yaml", config)
        assert not parsed.problems, parsed.problems
        rules = parsed.rules
        db = Database(f"sqlite:///{tmp}/bench.db")
        db.upgrade()
        _populate(db, args.tickets)
        paths = set().union(*(r.relation_paths for r in rules))
        with db.sessions() as session:
            executor = Executor(session, config, None, NOW, {}, dry_run=True)
            started = time.perf_counter()
            loader = Loader(session)
            records = loader.load("ticket", None, relation_tree("ticket", paths))
            evaluations, _ = _evaluate(executor, rules, records)
            load_and_eval = time.perf_counter() - started
            total, rounds, started = 0, 0, time.perf_counter()
            while time.perf_counter() - started < args.seconds:
                n, matches = _evaluate(executor, rules, records)
                total += n
                rounds += 1
            elapsed = time.perf_counter() - started
        db.dispose()
    print(f"rules: {len(rules)}  tickets: {len(records)}  relations loaded: "
          f"{relation_tree('ticket', paths)}")
    print(f"evaluation: {total / elapsed:,.0f} rule-entity evaluations/s "
          f"({rounds} rounds, {matches} matches per round; target >= 100,000/s)")
    print(f"bulk load + evaluation: {evaluations / load_and_eval:,.0f} evaluations/s "
          f"({loader.queries} queries for {len(records)} tickets and their relations)")


if __name__ == "__main__":
    main()
