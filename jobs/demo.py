"""`saeko-sync demo`: the sandbox and SQLite, one full cycle, and what happened."""

from __future__ import annotations

import secrets
import shutil
import socket
import threading
import time
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from connectors.clients import ActionRuntime
from core.settings import Settings, load_settings
from jobs import kpis as kpis_job
from jobs import reports as reports_job
from jobs.console import RichProgress, progress_bars, sync_table, write_env_file
from jobs.cycle import configured_sources, long_lived_clients, run_sync
from jobs.demo_accounts import (
    escalations_line,
    first_scoring_line,
    meetings_line,
    schedules_moment,
    stage_accounts,
)
from jobs.demo_followup import followup_line
from jobs.demo_surveys import run_surveys
from jobs.failures import port_error
from jobs.writebacks import written
from rules.config import RulesConfig
from rules.engine import CycleReport, run_cycle
from sandbox.activity import StaffSimulator
from sandbox.server import Sandbox, SandboxServer
from store.db import Database, shifted_clock, utcnow
from store.entities import load_mapping
from store.models import (
    ActionLedger,
    Base,
    Client,
    DeadLetter,
    Incident,
    School,
    Staff,
    SurveyResponse,
    Ticket,
    UsageMetric,
)

# What the simulated desk does between switching the rules on and the cycle the demo shows:
# enough of each kind for every desk automation to have something to fire on.
DEMO_PLAN = (("new_ticket",) * 10 + ("escalate",) * 3 + ("answer",) * 5 + ("work",) * 6
             + ("resolve_jira",) * 4 + ("csat",) * 6)
# The tables fed by other tools than Podio (Podio's apps come from config/podio.yaml).
OTHER_TABLES: list[tuple[str, type[Base]]] = [
    ("incidencias Jira", Incident), ("encuestas", SurveyResponse), ("uso semanal", UsageMetric),
    ("cartas muertas", DeadLetter)]
# The account situations staged after the morning (jobs/demo_accounts.py), in Spanish:
# (one, several).
STAGED_LABELS = {
    "usage_drop": ("caída de uso en la hoja", "caídas de uso en la hoja"),
    "overdue_invoice": ("factura vencida", "facturas vencidas"),
    "nps": ("respuesta NPS de detractor", "respuestas NPS de detractores"),
    "decision_maker": ("cambio de decisor", "cambios de decisor"),
    "pay_invoice": ("factura pagada", "facturas pagadas"),
    "check_in": ("check-in registrado", "check-ins registrados"),
    "contract_due": ("contrato por vencer", "contratos por vencer"),
    "new_client": ("cliente nuevo sin AM", "clientes nuevos sin AM"),
    "critical_ticket": ("ticket crítico de un cliente TOP o burbuja",
                        "tickets críticos de clientes TOP o burbuja"),
    "reassign_am": ("cliente reasignado a otro AM", "clientes reasignados a otro AM"),
    "client_lost": ("cliente en «Baja»", "clientes en «Baja»"),
    "skipped": ("omitida", "omitidas")}
# What the simulated staff did (sandbox/activity.py's actions), in Spanish: (one, several).
ACTIVITY_LABELS = {
    "new_ticket": ("ticket nuevo", "tickets nuevos"),
    "escalate": ("ticket escalado a Jira", "tickets escalados a Jira"),
    "answer": ("respuesta de un agente", "respuestas de agentes"),
    "work": ("ticket atendido", "tickets atendidos"),
    "resolve_jira": ("incidencia resuelta en Jira", "incidencias resueltas en Jira"),
    "csat": ("encuesta CSAT contestada", "encuestas CSAT contestadas"),
    "skipped": ("acción omitida (nada a qué aplicarla)",
                "acciones omitidas (nada a qué aplicarlas)")}
# The demo's fixed clock: the world, the sandbox, the store and the rules start at this
# instant (naive UTC; a Wednesday, 10:00 in Tijuana) so that a seed gives the same demo on
# every run; `--reloj-real` anchors them at the current hour instead.
DEMO_START = datetime(2026, 11, 18, 18, 0)
HINTS_LATER = timedelta(hours=1)  # the rules' clock the pasted commands use: that morning


def _staged(kind: str, count: int, labels: dict[str, tuple[str, str]] = STAGED_LABELS
            ) -> str:
    one, several = labels.get(kind, (kind, kind))
    return f"{count} {one if count == 1 else several}"


def activity_text(done: Counter[str]) -> str:
    """What the simulated staff did, as a Spanish list ("10 tickets nuevos, 3 …")."""
    return ", ".join(_staged(k, n, ACTIVITY_LABELS) for k, n in done.items()) or "nada aún"


def run_demo(console: Console, err_console: Console, *, clients: int, seed: int,
             folder: Path, keep: bool, serve: bool = False, port: int = 8080,
             real_clock: bool = False) -> None:
    """Start the sandbox, sync everything into a fresh SQLite file, and report. The
    world and every clock start at DEMO_START unless ``real_clock``."""
    if serve:  # say a busy port now, not after the demo's minute of work
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as exc:
                raise port_error("127.0.0.1", port, exc, "--port") from exc
    folder.mkdir(parents=True, exist_ok=True)
    db_file = folder / "saeko-demo.db"
    for stale in folder.glob("saeko-demo.db*"):
        stale.unlink()
    shutil.rmtree(folder / "informes", ignore_errors=True)  # the reports of an earlier run
    with ExitStack() as clock:
        if real_clock:
            box = Sandbox(clients=clients, seed=seed)
        else:
            offset = clock.enter_context(shifted_clock(DEMO_START))
            box = Sandbox(clients=clients, seed=seed, now=DEMO_START)
            box.clock.advance(offset)
        _run(console, box, seed=seed, folder=folder, db_file=db_file, keep=keep, serve=serve,
             port=port, real_clock=real_clock)


def _run(console: Console, box: Sandbox, *, seed: int, folder: Path, db_file: Path,
         keep: bool, serve: bool, port: int, real_clock: bool) -> None:
    server = SandboxServer(box).start()
    try:
        env = box.env()
        write_env_file(folder / "demo.env", env)
        settings = load_settings(**{k.lower(): v for k, v in env.items()},
                                 database_url=f"sqlite:///{db_file}",
                                 reports_dir=folder / "informes")
        db = Database(settings.database_url)
        db.upgrade()
        console.rule("[bold]saeko-sync demo")
        console.print(f"Sandbox: {server.url}  ·  mundo demo (semilla {seed}): "
                      f"{box.world.summary_text()}")
        console.print("Reloj: el real (--reloj-real)" if real_clock else
                      f"Reloj del demo: empieza el {DEMO_START:%d/%m/%Y %H:%M} UTC, el mismo en "
                      "cada corrida (misma semilla, mismo demo); --reloj-real usa la hora "
                      "actual.")
        started = time.monotonic()
        runtime = ActionRuntime(settings)
        sync_clients = long_lived_clients(runtime, configured_sources(settings))
        with progress_bars() as progress:
            cycle = run_sync(settings, db, full=True, progress=RichProgress(progress),
                             clients=sync_clients)
        console.print(sync_table(cycle.reports, title=f"Primera sincronización completa "
                                 f"({time.monotonic() - started:.1f} s)"))
        for error in cycle.errors:
            console.print(f"[red]✗ {error}[/red]")
        again = run_sync(settings, db, clients=sync_clients)
        calls = sum(r.api_calls for r in again.reports)
        console.print(f"Segundo ciclo sin cambios: {calls} llamadas API en "
                      f"{len(again.reports)} colecciones (máximo 1 por colección).")
        switched = run_cycle(settings, db, runtime=runtime)
        console.print(f"Reglas activadas: {switched.remembered} eventos de lo que ya existía "
                      "quedan registrados sin disparar nada (como al encender un zap).")
        simulator = StaffSimulator(box, seed=seed)
        for action in DEMO_PLAN:
            simulator.act(action)
        console.print(f"Una mañana de trabajo simulada en las herramientas: "
                      f"{activity_text(simulator.done)}.")
        staged = stage_accounts(box, simulator, seed)
        console.print("Y en las cuentas (Podio y la hoja de uso, como lo hace el personal): "
                      + ", ".join(_staged(k, n) for k, n in staged.items())
                      + ".")
        run_sync(settings, db, clients=sync_clients)
        rules = run_cycle(settings, db, runtime=runtime)
        scoring = first_scoring_line(db, switched, rules.started_at)
        if scoring:
            console.print(scoring)
        if (planned := meetings_line(db, switched.started_at, rules.started_at)):
            console.print(planned)
        _print_automations(console, settings, db, rules, server.url,
                           scheduled_note="con horario: ver el ciclo del lunes, abajo")
        if (followup := followup_line(db, rules)):
            console.print(followup)
        console.print(escalations_line(db, rules))
        if (moved := meetings_line(db, rules.started_at, title="en este ciclo")):
            console.print(moved)
        # Read back what the automations wrote (recognised as our own: it fires nothing).
        after = run_sync(settings, db, clients=sync_clients)
        console.print(f"Sincronización tras las reglas: lo escrito por las automatizaciones "
                      f"ya estaba en el modelo; "
                      f"{sum(r.counts.updated for r in after.reports)} registros con cambios, "
                      f"{sum(r.api_calls for r in after.reports)} llamadas API.")
        kpis_job.demo_report(console, settings, db, runtime, server.url)  # M3
        monday = _run_schedules(console, settings, db, runtime, server.url)
        run_surveys(console, settings, db, runtime, simulator, monday)  # M4
        reports_job.demo_report(console, settings, monday)  # M10, M12
        _print_model(console, settings, db)
        console.rule("Dónde mirar")
        console.print(f"• Base SQLite: {db_file}  (sqlite3 {db_file} '.tables')")
        console.print(f"• Ajustes del sandbox: {folder / 'demo.env'}")
        _print_hints(console, db, db_file, real_clock)
        if serve:
            _serve_with_activity(console, settings, db, box, port)
        elif keep:
            console.print(f"Sandbox sigue en {server.url} — Ctrl-C para terminar.")
            while True:
                time.sleep(3600)
        else:
            console.print(f"[bold]El sandbox se detuvo al terminar el demo[/bold]: sus "
                          f"direcciones ({server.url}/…) ya no responden. Para mirarlo vivo: "
                          "`saeko-sync demo --keep` (lo deja corriendo), `saeko-sync demo "
                          "--serve` (con el servicio y personal simulado) o `saeko-sync "
                          "sandbox --write-env .env` (un sandbox nuevo para `saeko-sync "
                          "sync`).", soft_wrap=True)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


# What each kind of effect shows in the demo's automation summary.
SHOWN_REFS = 4  # ids listed per automation; the rest are counted
SCHEDULE_TRIGGERS = ("programa:", "cada:")  # how a schedule trigger describes itself


def _run_schedules(console: Console, settings: Settings, db: Database,
                   runtime: ActionRuntime, url: str) -> datetime:
    """One more cycle with the clock frozen at the next Monday 12:05 in Tijuana, so the
    schedules (M2 and M13 at 9:00 on weekdays, M11 on Mondays at 12:00) show what they do."""
    calendar = RulesConfig.from_settings(settings).calendar
    moment = schedules_moment(utcnow(), lambda at: calendar.is_business_time(
        at, "America/Tijuana"))
    local = moment.replace(tzinfo=UTC).astimezone(ZoneInfo("America/Tijuana"))
    console.rule(f"Los programas: el lunes {local:%d/%m/%Y} a las {local:%H:%M} (Tijuana)")
    console.print("Las reglas programadas corren a su hora (M2 y M13 cada día hábil a las "
                  "9:00, M11 los lunes a las 12:00 y el primer día hábil del mes, M6 cada 5 "
                  "minutos en horario hábil y su resumen por agente a las 9:00). Para verlas "
                  "sin esperar, este ciclo corre con el reloj de las reglas fijado en ese "
                  "lunes: simula la hora de los programas (las herramientas no cambian).")
    report = run_cycle(settings, db, now=moment, runtime=runtime)
    _print_automations(console, settings, db, report, url,
                       f"Automatizaciones: el ciclo del lunes {local:%d/%m} a las "
                       f"{local:%H:%M}", only_fired=True)
    if (followup := followup_line(db, report)):
        console.print(followup)
    console.print(escalations_line(db, report))
    return moment


def _print_automations(console: Console, settings: Settings, db: Database,
                       report: CycleReport, url: str,
                       title: str = "Automatizaciones: el ciclo tras la mañana simulada", *,
                       only_fired: bool = False, scheduled_note: str | None = None) -> None:
    """Per automation (T1…T8, M1…, one or more rules each, grouped by the id's prefix):
    what fired in this cycle and what was written back, with the ids to look up in the
    sandbox; ``only_fired`` leaves out the automations that matched nothing, and
    ``scheduled_note`` is shown for those that only run on a schedule and did nothing."""
    from rules.api import list_rules

    with db.session() as s:
        rows = list(s.scalars(select(ActionLedger).where(
            ActionLedger.created_at >= report.started_at).order_by(ActionLedger.id)))
    table = Table(title=title)
    for column in ("automatización", "coinciden", "qué se escribió", "dónde mirar"):
        table.add_column(column)
    groups: dict[str, list[tuple[str, str]]] = {}
    scheduled: dict[str, bool] = {}
    for rule in list_rules(settings, db):
        if rule.enabled:
            group = rule.id.split("-")[0].upper()
            groups.setdefault(group, []).append((rule.id, rule.name))
            scheduled[group] = scheduled.get(group, True) and bool(rule.triggers) and all(
                t.startswith(SCHEDULE_TRIGGERS) for t in rule.triggers)
    for automation, rules in sorted(groups.items(), key=lambda g: (len(g[0]), g[0])):
        rule_ids = [r for r, _name in rules]
        outcomes = [report.rules[r] for r in rule_ids if r in report.rules]
        mine = [r for r in rows if r.rule_id in rule_ids and r.status == "done"]
        names = " / ".join(name.split("·", 1)[-1].strip() for _r, name in rules)
        fired = sum(o.matched for o in outcomes)
        if only_fired and not fired and not mine:
            continue
        notes = [f"{sum(getattr(o, k) for o in outcomes)} {w}" for k, w in
                 (("held", "retenidos"), ("failed", "por reintentar"), ("dead", "muertos"))
                 if any(getattr(o, k) for o in outcomes)]
        if scheduled_note and scheduled[automation] and not fired and not mine:
            table.add_row(f"{automation} · {names}", f"— ({scheduled_note})", "—", "—")
            continue
        table.add_row(f"{automation} · {names}", f"{fired} registros" +
                      (f" ({', '.join(notes)})" if notes else ""),
                      written(mine), _where(mine))
    console.print(table)
    console.print(f"Inspección del sandbox (mientras el demo corre; `--keep` lo deja vivo "
                  f"al final): {url}/_sandbox/podio/items/ID · "
                  f"{url}/_sandbox/jira/issues/CLAVE · {url}/_sandbox/google/messages · "
                  "trazas: ver «Dónde mirar», abajo")


def _where(rows: list[ActionLedger]) -> str:
    refs: list[str] = []
    for row in rows:
        args = (row.payload or {}).get("args") or {}
        ref = (row.external_ref if row.action.startswith("jira.crear")
               else f"item {args['item_id']}" if args.get("item_id")
               else args.get("key") and f"Jira {args['key']}"
               or row.action == "podio.tarea" and row.external_ref)  # a task on no item
        if ref and ref not in refs:
            refs.append(str(ref))
    shown = ", ".join(refs[:SHOWN_REFS])
    return shown + (f" (+{len(refs) - SHOWN_REFS})" if len(refs) > SHOWN_REFS else "") or "—"


def _print_model(console: Console, settings: Settings, db: Database) -> None:
    with db.session() as s:
        counts = Table(title="Modelo normalizado")
        counts.add_column("tabla")
        counts.add_column("filas", justify="right")
        podio: list[tuple[str, type[Base]]] = [
            (name, app.model) for name, app in load_mapping(settings.config_dir).apps.items()]
        for label, model in [*podio, *OTHER_TABLES]:
            counts.add_row(label, str(s.scalar(select(func.count()).select_from(model))))
        console.print(counts)
        sample = Table(title="Tickets recientes (muestra)")
        for column in ("ticket", "título", "escuela", "cliente", "AM", "estatus", "jira"):
            sample.add_column(column)
        rows = s.execute(
            select(Ticket, School.name, Client.name, Staff.name)
            .outerjoin(School, Ticket.school_id == School.id)
            .outerjoin(Client, Ticket.client_id == Client.id)
            .outerjoin(Staff, Ticket.am_id == Staff.id)
            .order_by(Ticket.opened_at.desc()).limit(8)).all()
        for ticket, school, client, am in rows:
            sample.add_row(ticket.source_id, (ticket.title or "")[:40], school or "—",
                           client or "—", am or "—", ticket.status or "—",
                           ticket.jira_key or "")
        console.print(sample)


def _print_hints(console: Console, db: Database, db_file: Path, real_clock: bool) -> None:
    """Commands to paste that read the demo's own store (not the .env's): the traces of a
    ticket an automation wrote on, by the Podio item id shown above, and its dry-run."""
    rule, item = "t1-acuse-recibo", "ITEM"
    with db.session() as s:
        for done in s.scalars(select(ActionLedger).where(
                ActionLedger.status == "done", ActionLedger.rule_id.like("t%"),
                ActionLedger.target.like("ticket:%")).order_by(ActionLedger.id).limit(1)):
            ticket = s.get(Ticket, int(str(done.target).split(":", 1)[1]))
            if ticket is not None:
                rule, item = str(done.rule_id), ticket.source_id
    clock = "" if real_clock else f"RULES_FROZEN_NOW={DEMO_START + HINTS_LATER:%Y-%m-%dT%H:%M} "
    prefix = f"DATABASE_URL=sqlite:///{db_file.resolve()} {clock}saeko-sync"
    console.print("• Trazas y simulaciones de este demo (su base, no la de .env" +
                  ("" if real_clock else "; y el reloj del demo") + "); pégalas tal cual:",
                  soft_wrap=True)
    for command in (f"rules trace {rule} --entity {item}", f"rules dry-run {rule} --entity "
                    f"{item}", "rules dry-run", "rules list"):
        console.print(f"    {prefix} {command}", soft_wrap=True, markup=False,
                      highlight=False)


def _serve_with_activity(console: Console, settings: Settings, db: Database, box: Sandbox,
                         port: int) -> None:
    """Run `serve` against the sandbox with simulated staff until Ctrl-C."""
    from jobs.hooks import register_hooks
    from jobs.service import Service
    token = secrets.token_urlsafe(24)
    live = settings.model_copy(update={"webhook_token": SecretStr(token),
                                       "public_url": f"http://127.0.0.1:{port}",
                                       "sync_interval_seconds": 60.0})
    service = Service(live, db, port=port)
    try:
        service.listen()
    except OSError as exc:
        raise port_error("127.0.0.1", port, exc, "--port") from exc
    service.start()
    simulator = StaffSimulator(box)
    worker = threading.Thread(target=simulator.run, kwargs={"interval": 3.0}, daemon=True)
    try:
        register_hooks(live, service.runtime)
        worker.start()
        console.rule("Servicio en marcha")
        console.print(f"Página de estado: http://127.0.0.1:{port}/  ·  salud /healthz")
        console.print("Personal simulado: abre tickets, responde, escala, resuelve en Jira y "
                      "contesta encuestas cada ~3 s. Ctrl-C para terminar.")
        while True:
            time.sleep(10)
            console.print(f"Actividad del personal simulado: {activity_text(simulator.done)}.")
    finally:
        simulator.stop()
        service.shutdown()
