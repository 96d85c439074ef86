"""Traces: what one evaluation saw and did, stored as JSON with each rule run, and shown to
admins in Spanish (``saeko-sync rules trace``). Every trace is built by ``new_trace``."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rules.actions.base import from_json
from rules.expr import Compiled, EvalError
from rules.ledger import STATUS_ES

if TYPE_CHECKING:
    from rules.runs import Candidate
    from rules.spec import Rule

RESULT_ES = {"coincide": "se cumplieron las condiciones",
             "no coincide": "no se cumplieron las condiciones: no se hizo nada",
             "error": "error al evaluar", "retenida": "retenida por el límite de efectos",
             "ignorada": "ignorada", "reanudada": "reanudada (reintento o aprobación)",
             "simulada": "simulación (no se escribió nada)"}


def label(record: Any) -> str:
    """'ticket #42 «No se guarda la inscripción»' for a record."""
    if not isinstance(record, dict) or "_entity" not in record:
        return str(record)
    text = f"{record['_entity']} #{record.get('id')}"
    name = record.get("nombre") or record.get("titulo") or record.get("clave") \
        or record.get("folio")
    return f"{text} «{name}»" if name else text


def jsonable(value: Any) -> Any:
    """A value as it can be stored in a trace and read by an admin."""
    if isinstance(value, dict):
        if "_entity" in value:
            return label(value)
        return {str(k): jsonable(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, str) and len(value) > 500:
        return value[:499] + "…"
    return value


def new_trace(rule: Rule, cand: Candidate, result: str, *, record: Any = None,
              conditions: list[dict[str, Any]] | None = None, note: str | None = None,
              dry_run: bool = False) -> dict[str, Any]:
    """The trace of one rule run: which rule and version, what triggered it on which
    record, the conditions as evaluated, the result; its actions are appended as they run."""
    trace: dict[str, Any] = {
        "regla": rule.id, "nombre": rule.name, "version": rule.hash, "respaldo": rule.fallback,
        "disparador": cand.trigger, "entidad": rule.entity,
        "registro": label(record) if record else None, "condiciones": conditions or [],
        "correlacion": cand.correlation_id, "resultado": result, "acciones": [],
        "simulacion": dry_run}
    if note is not None:
        trace["nota"] = note
    return trace


def condition_result(ok: bool, error: str | None) -> str:
    """The result of an evaluation: it matched, it did not, or a condition failed."""
    return "coincide" if ok else "error" if error else "no coincide"


def explain(compiled: Compiled, ctx: dict[str, Any]) -> dict[str, Any]:
    """One condition as the trace shows it: its source, result and the values it read."""
    try:
        result, seen = compiled.explain(ctx)
        return {"expresion": compiled.source, "resultado": bool(result),
                "valores": jsonable(seen)}
    except EvalError as exc:
        return {"expresion": compiled.source, "resultado": False, "valores": {},
                "error": str(exc)}


def _show(value: Any) -> str:
    if value is None:
        return "vacío"
    if isinstance(value, bool):
        return "sí" if value else "no"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


# How a dry-run shows an effect's arguments (the actions' payloads, rules/actions): label,
# or None to leave it out (ids the admin does not write).
ARG_LABELS: dict[str, str | None] = {
    "item_id": "item de Podio", "app_id": None, "entity": None, "columns": None,
    "kept": "ya tenían valor", "only_empty": None, "fields": "campos", "text": "texto",
    "description": "descripción", "responsible_user_id": "responsable (usuario de Podio)",
    "due_on": "vence", "labels": "etiquetas", "to": "para", "cc": "cc",
    "subject": "asunto", "html": "HTML", "project": "proyecto", "issue_type": "tipo",
    "summary": "resumen", "priority": "prioridad", "key": "incidencia", "body": "texto"}
SHOWN_TEXT = 1200  # characters of a long rendered text a dry-run shows


def format_arguments(payload: dict[str, Any], indent: str) -> list[str]:
    """An effect's rendered arguments, one per line («asunto: …», «vence: …»)."""
    lines = []
    for key, value in payload.items():
        name = ARG_LABELS.get(key, key)
        if name is None or value in (None, "", [], {}):
            continue
        if key == "html":
            lines.append(f"{indent}{name}: {len(str(value))} caracteres (saeko-sync plantillas "
                         "prueba NOMBRE --html archivo.html para verlo)")
            continue
        value = from_json(value)
        if isinstance(value, datetime):
            text = f"{value:%d/%m/%Y %H:%M} UTC"
        elif isinstance(value, date):
            text = f"{value:%d/%m/%Y}"
        elif isinstance(value, dict):
            text = "; ".join(f"{k} = {_show(v)}" for k, v in value.items())
        elif isinstance(value, list):
            text = ", ".join(str(v) for v in value)
        else:
            text = str(value)
        if len(text) > SHOWN_TEXT:
            text = text[:SHOWN_TEXT - 1] + "…"
        first, *rest = text.splitlines() or [""]
        lines.append(f"{indent}{name}: {first}")
        lines += [f"{indent}  {line}" for line in rest]
    return lines


def format_trace(run: dict[str, Any], *, details: bool = False) -> str:
    """One stored run, as a readable Spanish text; ``details`` adds each effect's rendered
    arguments (a dry-run: what would be written)."""
    trace = run.get("trace") or {}
    lines = [f"Regla {run.get('rule_id')} (versión {run.get('rule_hash')}"
             f"{', última versión buena' if trace.get('respaldo') else ''}) · "
             f"{trace.get('registro') or 'sin registro'} · {run.get('started_at')}"
             + (" UTC" if isinstance(run.get("started_at"), datetime) else "")]
    if run.get("correlation_id"):
        lines.append(f"  Correlación: {run['correlation_id']}")
    trigger = trace.get("disparador") or {}
    lines.append(f"  Disparador: {trigger.get('descripcion', '—')}")
    for name, change in (trigger.get("cambios") or {}).items():
        if isinstance(change, list) and len(change) == 2:
            lines.append(f"    {name}: {_show(change[0])} → {_show(change[1])}")
    conditions = trace.get("condiciones") or []
    if conditions:
        lines.append("  Condiciones:")
    for cond in conditions:
        mark = "✔" if cond.get("resultado") else "✘"
        values = ", ".join(f"{k} = {_show(v)}" for k, v in (cond.get("valores") or {}).items())
        error = f" — error: {cond['error']}" if cond.get("error") else ""
        lines.append(f"    {mark} {cond.get('expresion')}"
                     + (f"   ({values})" if values else "") + error)
    result = trace.get("resultado", "")
    lines.append(f"  Resultado: {RESULT_ES.get(result, result)}"
                 + (f" — {trace['nota']}" if trace.get("nota") else ""))
    for action in trace.get("acciones") or []:
        status = STATUS_ES.get(action.get("estado", ""), action.get("estado", ""))
        ref = f" → {action['ref']}" if action.get("ref") else ""
        if details and action.get("ahora") is not None:
            status = f"ya {status}"
        note = f" — {action['nota']}" if details and action.get("nota") else ""
        lines.append(f"    • {action.get('accion')}: {action.get('resumen') or ''} "
                     f"[{status}{ref}]{note}")
        if action.get("error"):
            lines.append(f"      error: {action['error']}")
        if details:
            lines += format_arguments(action.get("argumentos") or {}, "        ")
            lines += _format_now(action.get("ahora"))
    return "\n".join(lines)


def _format_now(now: dict[str, Any] | None) -> list[str]:
    """What the rule as edited now would write for an effect the ledger already has."""
    if now is None:
        return []
    head = "      con la regla como está ahora"
    if now.get("error") or now.get("nota"):
        return [f"{head}: {now.get('error') or now.get('nota')}"]
    return [f"{head} escribiría: {now.get('resumen') or ''}",
            *format_arguments(now.get("argumentos") or {}, "        ")]


def format_simulated(trace: dict[str, Any], *, details: bool = False) -> str:
    """One dry-run trace (a dry-run stores no run), as a readable Spanish text."""
    return format_trace({"rule_id": trace.get("regla"), "rule_hash": trace.get("version"),
                         "started_at": "simulación", "trace": trace, "correlation_id": None},
                        details=details)
