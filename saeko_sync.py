"""saeko-sync command line (installed as ``saeko-sync``)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from core.errors import ConfigError
from core.logging import configure_logging
from core.settings import Settings, load_settings
from jobs.console import (
    RichProgress,
    console,
    err_console,
    progress_bars,
    sync_table,
    write_env_file,
)
from jobs.failures import EXIT_FIX_AND_RETRY, explain, port_error, safe_url
from store.db import Database

app = typer.Typer(help="Integración y automatizaciones de Postventa Saeko (Podio, Jira, Google).",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Base de datos (modelo normalizado).", no_args_is_help=True)
app.add_typer(db_app, name="db")
hooks_app = typer.Typer(help="Webhooks de Podio y Jira.", no_args_is_help=True)
app.add_typer(hooks_app, name="hooks")
rules_app = typer.Typer(help="Reglas de automatización (config/rules/*.yaml).",
                        no_args_is_help=True)
app.add_typer(rules_app, name="rules")
# `run` exits with this when the rules were not evaluated because another process (a `serve`
# replica or another `run`) holds the rule cycle's lease: distinct from 1 (errors) so cron
# jobs and operators see that this run did not evaluate the rules.
EXIT_RULES_HELD_ELSEWHERE = 3


def _settings(**overrides: Any) -> Settings:
    try:
        settings = load_settings(**overrides)
    except ConfigError as exc:
        err_console.print(Text(str(exc), style="red"), soft_wrap=True)
        raise typer.Exit(2) from exc
    configure_logging(settings.log_level, settings.log_format, settings.secret_values())
    return settings


def _say_failed_sources(cycle: Any) -> None:
    """After a whole `run`: which sources could not sync, and that the rest was done."""
    failed = [error.split(":", 1)[0] for error in cycle.errors] + [
        f"{r.source}/{r.stream}" for r in cycle.reports if r.error]
    if not failed:
        return
    for error in cycle.errors:
        err_console.print(f"[red]✗ {error}[/red]")
    err_console.print(f"[red]Sincronización incompleta: falló {', '.join(failed)}.[/red] Las "
                      "demás fuentes se sincronizaron y las reglas se evaluaron con sus datos; "
                      "lo que falló se vuelve a leer en el próximo ciclo.")


@app.command()
def sync(
    source: Annotated[list[str] | None, typer.Option(
        "--source", "-s", help="podio, jira, forms o sheets (repetible); por omisión todas")] = None,
    full: Annotated[bool, typer.Option(help="Re-sincroniza todo, ignorando cursores")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Salida JSON para scripts")] = False,
) -> None:
    """Sincroniza las fuentes configuradas con el modelo normalizado."""
    from jobs.cycle import run_sync

    settings = _settings()
    db = Database(settings.database_url)
    db.upgrade()
    with progress_bars() as progress:
        cycle = run_sync(settings, db, source, full=full, progress=RichProgress(progress))
    if as_json:
        print(json.dumps({"reports": [r.as_dict() for r in cycle.reports],
                          "errors": cycle.errors}, ensure_ascii=False))
    else:
        console.print(sync_table(cycle.reports))
        for error in cycle.errors:
            err_console.print(f"[red]✗ {error}[/red]")
        if not cycle.reports and not cycle.errors:
            err_console.print("No hay fuentes configuradas: revisa .env (o usa "
                              "`saeko-sync sandbox --write-env .env`).")
    if not cycle.ok:
        raise typer.Exit(1)


@app.command()
def run(
    full: Annotated[bool, typer.Option(help="Sincronización completa antes de las reglas")]
    = False,
) -> None:
    """Un ciclo: sincroniza todo y evalúa las reglas (lo que el servicio hace periódicamente).

    Sale con 1 si hubo errores y con 3 si otro proceso estaba ejecutando las reglas.
    """
    from connectors.clients import ActionRuntime
    from jobs import quota
    from jobs.cycle import configured_sources, long_lived_clients, run_sync
    from rules.engine import run_cycle
    from store.retention import CHEAP_BATCHES, prune_traces

    settings = _settings()
    db = Database(settings.database_url)
    db.upgrade()
    runtime = ActionRuntime(settings)
    try:
        with progress_bars() as progress:
            cycle = run_sync(settings, db, full=full, progress=RichProgress(progress),
                             clients=long_lived_clients(runtime, configured_sources(settings)))
        console.print(sync_table(cycle.reports))
        report = run_cycle(settings, db, now=settings.rules_frozen_now, runtime=runtime)
        quota.persist(db, quota.current(settings, runtime.built()), f"run-{os.getpid()}")
        prune_traces(settings, db, max_batches=CHEAP_BATCHES)
    finally:
        runtime.close()
    for line in report.lines():
        console.print(line)
    _say_failed_sources(cycle)
    if not cycle.ok or report.problems:
        raise typer.Exit(1)
    if report.skipped:
        console.print("[yellow]Las reglas no se evaluaron: otro proceso tiene el turno del ciclo "
                      "de reglas. Se evaluarán en su próximo ciclo.[/yellow]")
        raise typer.Exit(EXIT_RULES_HELD_ELSEWHERE)


@rules_app.command("validate")
def rules_validate(path: Annotated[Path | None, typer.Argument(
        help="Archivo o carpeta; por omisión la carpeta de reglas")] = None) -> None:
    """Revisa las reglas y reporta cada error con archivo:línea."""
    from rules import api

    problems = api.validate(_settings(), path)
    console.print(api.format_problems(problems), markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(api.exit_code(problems))


@rules_app.command("list")
def rules_list() -> None:
    """Cada regla con su disparador, estado, última ejecución y conteos."""
    from rules import api

    settings = _settings()
    db = Database(settings.database_url)
    db.upgrade()
    console.print(api.format_rule_list(api.list_rules(settings, db)), markup=False,
                  highlight=False)


ENTITY_HELP = ("El registro como lo ves en las herramientas: id del item de Podio, clave de "
               "Jira (SOP-12) o id del modelo")


@rules_app.command("dry-run")
def rules_dry_run(
    rule: Annotated[str | None, typer.Argument(
        help="Id de la regla (por omisión, todas las activas)")] = None,
    entity: Annotated[str | None, typer.Option(help=ENTITY_HELP)] = None,
    desde: Annotated[str | None, typer.Option(
        help="Backtest: lo que la regla, como está ahora, habría hecho desde esta fecha "
        "(AAAA-MM-DD)")] = None,
) -> None:
    """Muestra qué haría cada regla, como está escrita ahora, con los datos actuales (o
    desde una fecha), con cada efecto ya llenado; no escribe nada."""
    from datetime import datetime

    from rules import api
    from rules.data import UnknownRecord
    from rules.preview import UnknownRule

    settings = _settings()
    db = Database(settings.database_url)
    db.upgrade()
    try:
        since = datetime.fromisoformat(desde) if desde else None
    except ValueError:
        err_console.print(f"«{desde}» no es una fecha: escríbela como AAAA-MM-DD, p. ej. "
                          "2026-11-01.", markup=False)
        raise typer.Exit(2) from None
    try:
        result = api.dry_run(settings, db, rule, entity, since=since)
    except (UnknownRule, UnknownRecord, ValueError) as exc:
        err_console.print(str(exc.args[0]), markup=False, highlight=False)
        raise typer.Exit(1) from exc
    console.print(api.format_dry_run(result), markup=False, highlight=False, soft_wrap=True)


@rules_app.command("trace")
def rules_trace(
    rule: Annotated[str | None, typer.Argument(help="Id de la regla")] = None,
    entity: Annotated[str | None, typer.Option(help=ENTITY_HELP)] = None,
    correlation: Annotated[str | None, typer.Option(
        help="Id de correlación: todo lo que causó un mismo evento")] = None,
    limit: int = 10,
) -> None:
    """Las últimas ejecuciones guardadas de una regla (o de un evento de negocio)."""
    from rules import api
    from rules.data import UnknownRecord
    from rules.preview import UnknownRule

    settings = _settings()
    db = Database(settings.database_url)
    db.upgrade()
    if correlation:
        runs = api.traces_by_correlation(db, correlation)
    elif rule:
        try:
            api.check_rule(settings, db, rule)
            entity_id = None if entity is None else api.entity_of(settings, db, rule, entity)
        except (UnknownRule, UnknownRecord) as exc:
            err_console.print(str(exc.args[0]), markup=False, highlight=False)
            raise typer.Exit(1) from exc
        runs = api.traces(db, rule, entity_id, limit)
        if not runs and not api.recent_runs(db):
            err_console.print(_no_runs_here(settings, f"rules trace {rule}"), markup=False,
                              highlight=False, soft_wrap=True)
            raise typer.Exit(1)
    else:
        err_console.print("Uso: saeko-sync rules trace REGLA [--entity ID] | --correlation ID",
                          markup=False)
        recent = api.recent_runs(db)
        if recent:
            err_console.print("Reglas con ejecuciones guardadas (la más reciente primero):")
            for rule_id, count, last in recent:
                when = f", la última el {last:%d/%m/%Y %H:%M} UTC" if last else ""
                err_console.print(f"  {rule_id}: {count} ejecuciones{when}", markup=False,
                                  highlight=False)
        else:
            err_console.print(_no_runs_here(settings, "rules trace REGLA"), markup=False,
                              highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    console.print(api.format_traces(runs), markup=False, highlight=False, soft_wrap=True)


def _no_runs_here(settings: Settings, command: str) -> str:
    """A store without any rule run yet: which one it is, and where the demo's runs are."""
    text = (f"Esta base de datos ({safe_url(settings.database_url)}) no tiene ninguna "
            "ejecución de reglas guardada todavía: corre `saeko-sync run` (o `saeko-sync "
            "serve`) con este DATABASE_URL.")
    demo_db = (Path("var/demo") / "saeko-demo.db").resolve()
    if demo_db.exists() and f"sqlite:///{demo_db}" != settings.database_url:
        text += (" El demo guarda las suyas en su propia base: DATABASE_URL=sqlite:///"
                 f"{demo_db} saeko-sync {command} (el demo imprime la orden completa).")
    return text


@rules_app.command("approve")
def rules_approve(
    rule: Annotated[str | None, typer.Argument(help="Id de la regla (todas si se omite)")]
    = None,
    discard: Annotated[bool, typer.Option(help="Descarta en lugar de aprobar")] = False,
) -> None:
    """Aprueba (o descarta) los efectos retenidos por el freno de tormentas."""
    from rules import api

    settings = _settings()
    db = Database(settings.database_url)
    pending = api.held(db, rule)
    for item in pending:
        console.print(f"{item['rule_id']}: {item['action']} → {item['target']}",
                      markup=False)
    count = api.discard(db, rule) if discard else api.approve(db, rule)
    console.print(f"{count} efecto(s) {'descartados' if discard else 'aprobados'}.")


plantillas_app = typer.Typer(help="Plantillas de correo (config/plantillas/): M9.",
                             no_args_is_help=True)
app.add_typer(plantillas_app, name="plantillas")


@plantillas_app.command("lista")
def plantillas_lista() -> None:
    """Cada plantilla con las variables que usa y las reglas que la envían."""
    from rules import plantillas

    settings = _settings()
    db = Database(settings.database_url)
    db.upgrade()
    console.print(plantillas.format_templates(plantillas.list_templates(settings, db)),
                  markup=False, highlight=False, soft_wrap=True)


@plantillas_app.command("prueba")
def plantillas_prueba(
    nombre: Annotated[str, typer.Argument(help="Nombre de la plantilla, sin extensión")],
    entidad: Annotated[str | None, typer.Option(
        help="El registro: id del item de Podio (o id del modelo; correo para personal)")]
    = None,
    regla: Annotated[str | None, typer.Option(help="La regla, si varias la usan")] = None,
    html: Annotated[Path | None, typer.Option(help="Guarda aquí el HTML")] = None,
) -> None:
    """Muestra una plantilla con datos reales (asunto, destinatarios, texto), sin enviar."""
    from rules import plantillas

    settings = _settings()
    db = Database(settings.database_url)
    db.upgrade()
    try:
        result = plantillas.preview(settings, db, nombre, entidad, rule_id=regla)
    except ValueError as exc:
        err_console.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(1) from exc
    console.print(plantillas.format_preview(result, html), markup=False, highlight=False,
                  soft_wrap=True)


@app.command()
def salud(
    cliente: Annotated[str | None, typer.Argument(
        help="Cliente: id en el modelo, id del item de Podio o parte del nombre")] = None,
) -> None:
    """El puntaje de salud (M1): sin cliente, los 20 más bajos; con cliente, señal por señal."""
    from rules import health, health_store

    settings = _settings()
    config = health.load(settings.config_dir)
    today = settings_today(settings)
    db = Database(settings.database_url)
    with db.session() as s:
        if cliente is None:
            scores = health_store.scores(s, config, today)
            names = {row.id: row.name for row in health_store.find_clients(s, "")}
            table = Table(title=f"Salud de los clientes al {today:%d/%m/%Y} (los 20 más bajos)")
            for column in ("cliente", "puntaje", "banda", "motivos"):
                table.add_column(column)
            worst = sorted(scores.items(), key=lambda kv: (kv[1].score, kv[0]))[:20]
            for cid, each in worst:
                table.add_row(names.get(cid) or f"#{cid}", f"{each.score:g}", each.band,
                              each.text)
            console.print(table)
            return
        found = health_store.find_clients(s, cliente)
        if len(found) != 1:
            err_console.print(f"Ningún cliente es «{cliente}»." if not found else
                              "Varios clientes coinciden: " + ", ".join(
                                  f"{r.name} (#{r.id})" for r in found[:10]))
            raise typer.Exit(1)
        row = found[0]
        value = health_store.scores(s, config, today, [row.id]).get(row.id)
        if value is None:
            console.print(f"{row.name} no se califica (está en «Baja»).")
            return
        console.print(f"{row.name} (#{row.id}, item de Podio {row.source_id}) · al "
                      f"{today:%d/%m/%Y}: [bold]{value.score:g}[/bold] puntos, {value.band}",
                      highlight=False)
        podio = ("sin calificar" if row.health_score is None
                 else f"{row.health_score:g} ({row.health_band or '—'})")
        console.print(f"En Podio: {podio}", highlight=False)
        console.print("Señales (config/salud.yaml):", markup=False)
        for line in health.explain(config, value):
            console.print(line, markup=False, highlight=False)
        past = health_store.history(s, row.id)
        if past:
            console.print("Historial (lo que M1 escribió en Podio):", markup=False)
        for at, score, band in past:
            console.print(f"  {at:%d/%m/%Y %H:%M} UTC: {score:g} ({band})", markup=False,
                          highlight=False)


@app.command()
def reuniones(
    mes: Annotated[str | None, typer.Option(
        help="Mes del KPI, AAAA-MM (por omisión, el mes en curso)")] = None,
) -> None:
    """Check-ins por AM (M8): planeados y realizados en el mes, y las próximas reuniones."""
    from datetime import date

    from jobs.meetings_report import render

    settings = _settings()
    today = settings_today(settings)
    try:
        month = date.fromisoformat(f"{mes}-01") if mes else today.replace(day=1)
    except ValueError:
        err_console.print(f"«{mes}» no es un mes: escríbelo como AAAA-MM, p. ej. 2026-12.")
        raise typer.Exit(1) from None
    db = Database(settings.database_url)
    with db.session() as s:
        for table in render(s, settings, month):
            console.print(table)


@app.command()
def kpis(
    grano: Annotated[str, typer.Option(help="dia | semana | mes | trimestre (el en curso)")]
    = "mes",
    por: Annotated[str, typer.Option(
        help="total | equipo | am | segmento | region | cliente")] = "total",
    desde: Annotated[str | None, typer.Option(help="Inicio de un periodo libre (AAAA-MM-DD)")]
    = None,
    hasta: Annotated[str | None, typer.Option(help="Fin de un periodo libre (AAAA-MM-DD)")]
    = None,
    kpi: Annotated[list[str] | None, typer.Option(help="Solo estos KPIs (id; repetible)")]
    = None,
    publicar: Annotated[bool, typer.Option("--publicar", help="Publica la hoja de KPIs ahora")]
    = False,
    looker: Annotated[bool, typer.Option("--looker", help="El enlace de Looker Studio")]
    = False,
) -> None:
    """Los KPIs de postventa (config/kpis.yaml, docs/kpis.md): las cifras de ahora."""
    from datetime import date

    from jobs import kpis as kpis_job

    settings = _settings()
    db = Database(settings.database_url)
    if looker:
        link = kpis_job.looker_link(settings, db)
        if link is None:
            err_console.print("La hoja de KPIs aún no se ha publicado: corre "
                              "`saeko-sync kpis --publicar` (o espera a la regla M3).")
            raise typer.Exit(1)
        console.print(link, soft_wrap=True, markup=False, highlight=False)
        return
    if publicar:
        kpis_job.publish(console, settings, db)
        return
    try:
        start = date.fromisoformat(desde) if desde else None
        end = date.fromisoformat(hasta) if hasta else None
        kpis_job.show(console, settings, db, grain=grano, dimension=por, start=start,
                      end=end, only=kpi or ())
    except ValueError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


@app.command()
def report(
    informe: Annotated[str, typer.Argument(help="semanal | mensual | comisiones")],
    am: Annotated[str | None, typer.Option("--am", help="Email del AM (semanal de un AM, o "
                                                        "sus comisiones)")] = None,
    periodo: Annotated[str | None, typer.Option(
        help="2026-S48 (semana) o 2026-11 (mes); por omisión el último completo")] = None,
    enviar: Annotated[bool, typer.Option("--enviar", help="Envíalo ahora por correo (y "
                                                          "escribe su pestaña)")] = False,
) -> None:
    """Un informe de M10 (o las comisiones de M12) ahora: lo guarda en REPORTS_DIR (HTML y
    PDF) y dice dónde; con --enviar también lo envía (docs/informes.md)."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from jobs import reports as reports_job

    settings = _settings()
    now = settings.rules_frozen_now or datetime.now(UTC).replace(tzinfo=None)
    local = now.replace(tzinfo=UTC).astimezone(ZoneInfo(settings.timezone))
    done = reports_job.run(settings, informe, am_email=am, period=periodo, send=enviar,
                           now=now, today_local=local)
    console.print(f"Informe {done.kind} {done.period}:")
    for path in done.files:
        console.print(f"  {path}", soft_wrap=True, markup=False, highlight=False)
    if done.sent_to:
        console.print(f"Enviado a {', '.join(done.sent_to)}"
                      + (f"; pestaña «{done.tab}» escrita." if done.tab else "."))
    elif not enviar:
        console.print("No se envió (usa --enviar para enviarlo por correo).")


def settings_today(settings: Settings) -> Any:
    """Today in the deployment's time zone, as the rules see it (RULES_FROZEN_NOW too)."""
    from datetime import UTC, datetime

    from rules.calendar import BusinessCalendar

    calendar = BusinessCalendar.load(settings.config_dir)
    now = settings.rules_frozen_now or datetime.now(UTC).replace(tzinfo=None)
    return calendar.local_date(now, settings.timezone)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Aplica las migraciones pendientes (Alembic)."""
    settings = _settings()
    Database(settings.database_url).upgrade()
    console.print(f"Base de datos al día: {safe_url(settings.database_url)}")


@app.command()
def doctor() -> None:
    """Revisa configuración, credenciales y que cada servicio responda."""
    from jobs.doctor import run_checks

    settings = _settings()
    configure_logging("ERROR", settings.log_format, settings.secret_values())  # the table says it
    results = run_checks(settings)
    table = Table(title="saeko-sync doctor")
    table.add_column("revisión")
    table.add_column("estado")
    table.add_column("detalle")
    for name, ok, detail in results:
        table.add_row(name, "[green]✓[/green]" if ok else "[red]✗[/red]", detail)
    console.print(table)
    if not all(ok for _n, ok, _d in results):
        raise typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Por omisión SERVE_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="Por omisión SERVE_PORT")] = None,
) -> None:
    """Servicio: webhooks, programador, página de estado (/), salud (/healthz, /readyz)."""
    from jobs.service import Service

    settings = _settings()
    host, port = host or settings.serve_host, port or settings.serve_port
    service = Service(settings, Database(settings.database_url), host=host, port=port)
    try:
        service.listen()  # before the URL is printed or anything runs
    except OSError as exc:
        raise port_error(host, port, exc, "--port (o SERVE_PORT en .env)") from exc
    err_console.print(f"saeko-sync serve en http://{host}:{port}/ (réplica {service.holder})")
    service.run()


@hooks_app.command("register")
def hooks_register() -> None:
    """Crea los hooks de Podio que faltan, borra los nuestros viejos (otra PUBLIC_URL o
    WEBHOOK_TOKEN) e indica qué registrar en Jira."""
    from connectors.clients import ActionRuntime
    from jobs.hooks import INACTIVE_HELP, instructions, receiver_url, register_hooks, status_text

    settings = _settings()
    try:
        receiver_url(settings, "podio")  # the settings' problems before any call
    except ConfigError as exc:
        err_console.print(f"[red]{exc}[/red]", soft_wrap=True)
        raise typer.Exit(2) from exc
    runtime = ActionRuntime(settings)
    try:
        plans = register_hooks(settings, runtime)
    finally:
        runtime.close()
    table = Table(title="Hooks de Podio")
    for column in ("app", "evento", "estado"):
        table.add_column(column)
    for plan in plans:
        table.add_row(plan.app, plan.type, status_text(plan))
    console.print(table)
    if any(plan.status != "deleted" and not plan.active for plan in plans):
        console.print(INACTIVE_HELP)
    for text in instructions(settings):
        console.print(text)


@app.command()
def sandbox(
    host: str = "127.0.0.1",
    port: int = 8765,
    clients: Annotated[int, typer.Option(help="Tamaño del mundo demo (clientes)")] = 20,
    seed: int = 7,
    write_env: Annotated[Path | None, typer.Option(
        help="Escribe un .env que apunta saeko-sync a este sandbox")] = None,
) -> None:
    """Arranca el sandbox local (Podio, Jira, Google emulados) en primer plano."""
    from sandbox.server import Sandbox, SandboxServer

    configure_logging("WARNING", "console")
    box = Sandbox(clients=clients, seed=seed)
    try:
        server = SandboxServer(box, host=host, port=port)
    except OSError as exc:
        raise port_error(host, port, exc, "--port") from exc
    if "google" in box.tools:  # a key file that outlives this run (it only works with it)
        google: Any = box.tools["google"]
        google.key_dir = Path("var/sandbox").resolve()
    env = box.env()
    console.print(f"Sandbox en [bold]{server.url}[/bold] — mundo demo: {box.world.summary_text()}")
    for tool in box.tools:
        console.print(f"  {tool:6} {box.url(tool)}")
    console.print(f"  inspección {server.url}/_sandbox/ (docs/sandbox.md)")
    console.print("Credenciales demo: Podio admin@saeko.test / demo (todo el personal: "
                  "<clave>@saeko.test / demo); Jira integracion@saeko.test / token "
                  "demo-jira-token; Google: la llave de cuenta de servicio de --write-env")
    if write_env:
        write_env_file(write_env, env)
        console.print(f".env escrito en {write_env}: `saeko-sync sync` ya apunta aquí.")
    console.print("Ctrl-C para detener.")
    server.serve_forever()


@app.command()
def demo(
    clients: Annotated[int, typer.Option(help="Tamaño del mundo demo (clientes)")] = 20,
    seed: int = 7,
    folder: Annotated[Path, typer.Option(help="Dónde dejar la base SQLite del demo")] =
    Path("var/demo"),
    keep: Annotated[bool, typer.Option(help="Deja el sandbox corriendo al final")] = False,
    serve: Annotated[bool, typer.Option(
        help="Al final corre el servicio con personal simulado (página de estado en vivo)")]
    = False,
    port: Annotated[int, typer.Option(help="Puerto del servicio con --serve")] = 8080,
    reloj_real: Annotated[bool, typer.Option(
        "--reloj-real", help="El mundo y las reglas a la hora actual (por omisión, un reloj "
        "fijo: misma semilla, mismo demo)")] = False,
) -> None:
    """Demo completo: sandbox + SQLite, un ciclo entero, y qué pasó."""
    from jobs.demo import run_demo

    configure_logging("WARNING", "console")
    run_demo(console, err_console, clients=clients, seed=seed, folder=folder, keep=keep,
             serve=serve, port=port, real_clock=reloj_real)


def _database_url() -> str | None:
    """The DATABASE_URL of these settings (for the message of a database failure)."""
    try:
        return load_settings().database_url
    except ConfigError:
        return None


def main() -> None:
    """Console-script entry point. The one place where an anticipated failure (the errors
    of ``core.errors``, a database that cannot be used, a port in use) becomes one line
    with its cause and its fix (``jobs.failures``) instead of a traceback; exit code 2."""
    try:
        app()
    except Exception as exc:
        line = explain(exc, _database_url)
        if line is None:
            raise
        err_console.print(Text(line, style="red"), soft_wrap=True)
        sys.exit(EXIT_FIX_AND_RETRY)


if __name__ == "__main__":
    main()
