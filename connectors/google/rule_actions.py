"""Google's rule actions: thin adapters over ``connectors.google.actions`` (Gmail message,
Calendar event and Sheets table; the creating ones carry the ledger's marker), loaded into
``rules.actions.REGISTRY`` through ``connectors.registry``. Google's libraries are slow to
import: the primitives are imported when an action is sent."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from connectors.clients import ActionRuntime
from rules.actions.base import (
    BOOLEAN,
    DATE,
    INTEGER,
    PEOPLE,
    TEMPLATE_FILE,
    TEXT,
    VALUE,
    ActionSkipped,
    ActionType,
    Param,
    PrepareContext,
    Prepared,
    from_json,
    short,
    to_json,
)

# Calendar events without an explicit length last half an hour.
DEFAULT_EVENT_MINUTES = 30


def emails(value: Any) -> list[str]:
    """People, users or texts -> email addresses."""
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, dict):
            address = item.get("email")
            if address:
                out.append(str(address))
        elif isinstance(item, str) and item.strip():
            out.extend(part.strip() for part in item.split(",") if part.strip())
    return out


def _prepare_email(values: dict[str, Any], _ctx: PrepareContext) -> Prepared:
    to = emails(values.get("para"))
    if not to:
        raise ActionSkipped(f"el correo no tiene destinatario (para = {short(values.get('para'))})")
    body = values.get("plantilla") or {}
    text = values.get("cuerpo") or body.get("texto") or ""
    html = body.get("html")
    payload = {"to": to, "cc": emails(values.get("cc")), "subject": values["asunto"],
               "text": text, "html": html}
    return Prepared(payload, "gmail:" + ",".join(to),
                    f"correo a {', '.join(to)}: «{short(values['asunto'], 60)}»")


def _send_email(rt: ActionRuntime, payload: dict[str, Any], marker: str) -> str:
    from connectors.google import actions

    return str(actions.send_email(rt.client("google"), marker=marker, **payload))


def _find_email(rt: ActionRuntime, _payload: dict[str, Any], marker: str) -> str | None:
    from connectors.google import actions

    found = actions.find_email_by_marker(rt.client("google"), marker)
    return None if found is None else str(found)


def _prepare_event(values: dict[str, Any], _ctx: PrepareContext) -> Prepared:
    start = values["inicio"]
    minutes = int(values.get("duracion_minutos") or DEFAULT_EVENT_MINUTES)
    payload = {"title": values["titulo"], "start": to_json(start),
               "end": to_json(start + timedelta(minutes=minutes)),
               "attendees": emails(values.get("invitados")),
               "description": values.get("descripcion") or "", "meet": bool(values.get("meet"))}
    return Prepared(payload, "calendar:" + values["titulo"],
                    f"evento «{short(values['titulo'], 50)}» el {short(start)}")


def _send_event(rt: ActionRuntime, payload: dict[str, Any], marker: str) -> str:
    from connectors.google import actions

    args = {k: from_json(v) for k, v in payload.items()}
    return str(actions.upsert_event(rt.client("google"), marker=marker, **args))


def _find_event(rt: ActionRuntime, _payload: dict[str, Any], marker: str) -> str | None:
    from connectors.google import actions

    found = actions.find_event(rt.client("google"), marker)
    return None if found is None else str(found)


def _prepare_table(values: dict[str, Any], _ctx: PrepareContext) -> Prepared:
    rows = values["filas"]
    if not isinstance(rows, list):
        raise ActionSkipped("filas debe ser una lista de filas")
    payload = {"tab": values["pestana"], "rows": to_json(rows)}
    return Prepared(payload, "sheets:" + values["pestana"],
                    f"tabla «{values['pestana']}» con {len(rows)} filas")


def _send_table(rt: ActionRuntime, payload: dict[str, Any], _marker: str) -> str:
    from connectors.google import actions

    rows = from_json(payload["rows"])
    header = list(rows[0]) if rows and isinstance(rows[0], dict) else []
    values = [[row.get(h) for h in header] if isinstance(row, dict) else list(row)
              for row in rows]
    actions.write_table(rt.client("google"), rt.settings.google_kpi_spreadsheet_id,
                        payload["tab"], header, values)
    return f"pestaña {payload['tab']} ({len(values)} filas)"


def _prepare_kpis(values: dict[str, Any], _ctx: PrepareContext) -> Prepared:
    moment = values.get("ahora")
    payload = {"huella": values.get("huella") or "", "ahora": to_json(moment)}
    return Prepared(payload, "sheets:kpis",
                    f"hoja de KPIs (datos {short(values.get('huella') or '—', 12)})")


def _send_kpis(rt: ActionRuntime, payload: dict[str, Any], _marker: str) -> str:
    from connectors.google import kpi_sheet

    moment = from_json(payload.get("ahora"))
    if not isinstance(moment, datetime):
        raise ValueError("sheets.kpis necesita «ahora» (una fecha y hora)")
    published = kpi_sheet.publish_from_store(rt.client("google"), rt.settings, moment,
                                             fingerprint=str(payload.get("huella") or ""))
    return f"hoja de KPIs: {len(published.tabs)} pestañas, {published.rows} filas"


ACTIONS = [
    ActionType("gmail.enviar", "Envía un correo (una sola vez) desde el buzón del servicio.",
               {"para": Param(PEOPLE, required=True, doc="personas, usuarios o emails"),
                "cc": Param(PEOPLE), "asunto": Param(TEXT, required=True),
                "plantilla": Param(TEMPLATE_FILE, doc="nombre en config/plantillas/"),
                "cuerpo": Param(TEXT, doc="texto del correo si no hay plantilla")},
               _prepare_email, _send_email, _find_email, settings=("GOOGLE_DELEGATED_USER",)),
    ActionType("calendario.evento", "Crea o actualiza un evento de Calendar (una vez).",
               {"titulo": Param(TEXT, required=True), "inicio": Param(DATE, required=True),
                "duracion_minutos": Param(INTEGER, default=DEFAULT_EVENT_MINUTES),
                "invitados": Param(PEOPLE), "descripcion": Param(TEXT),
                "meet": Param(BOOLEAN, default=False)},
               _prepare_event, _send_event, _find_event, settings=("GOOGLE_DELEGATED_USER",)),
    ActionType("sheets.tabla", "Escribe una tabla completa en una pestaña de la hoja de KPIs.",
               {"pestana": Param(TEXT, required=True), "filas": Param(VALUE, required=True)},
               _prepare_table, _send_table, None, settings=("GOOGLE_KPI_SPREADSHEET_ID",)),
    # M3: rewriting every tab is idempotent (same data, same cells): nothing to look up.
    ActionType("sheets.kpis", "Publica todas las pestañas de la hoja de KPIs (M3) desde el "
               "modelo: KPIs por día, semana, mes y trimestre, detalle y diccionario.",
               {"ahora": Param(DATE, required=True, doc="el momento de los datos: {{ ahora }}"),
                "huella": Param(TEXT, doc="la huella de los datos: tablero_kpis().huella")},
               _prepare_kpis, _send_kpis, None, role="tablero_kpis", settings=("GOOGLE_KPI_SPREADSHEET_ID",)),
]

# M8: calendario.reunion (connectors/google/meeting_actions.py).
from connectors.google.meeting_actions import ACTIONS as _MEETING_ACTIONS  # noqa: E402

ACTIONS += _MEETING_ACTIONS

# M10/M12: gmail.informe, sheets.informe (connectors/google/report_actions.py).
from connectors.google.report_actions import ACTIONS as _REPORT_ACTIONS  # noqa: E402

ACTIONS += _REPORT_ACTIONS
