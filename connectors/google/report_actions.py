"""M10/M12's rule actions: ``gmail.informe`` sends a report (HTML with its charts inline,
the PDF attached; kept as files in REPORTS_DIR) and ``sheets.informe`` writes its tab of the
KPI spreadsheet. The payload names the report (kind, period, AM), not its content: the
report is built from the model when the action is sent, so the ledger keeps a few bytes and
a retry sends the same report. Exactly once: the email carries the ledger's marker and is
looked up by it before any resend; rewriting a tab is idempotent (same data, same cells)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.clients import ActionRuntime
from reports import MAIL_ROLE, TAB_ROLE
from rules.actions.base import (
    DATE,
    PEOPLE,
    PERSON,
    TEXT,
    ActionSkipped,
    ActionType,
    CheckContext,
    Param,
    PrepareContext,
    Prepared,
    from_json,
    to_json,
)
from rules.types import StaticError

REPORTS = ("semanal-equipo", "semanal-am", "mensual", "comisiones")
TEMPLATE_OF = {"semanal-equipo": "m10-informe", "semanal-am": "m10-informe",
               "mensual": "m10-informe", "comisiones": "m12-comisiones"}


def _am_key(value: Any, ctx: PrepareContext) -> str | None:
    if isinstance(value, dict):
        return str(value.get("clave")) if value.get("clave") else None
    if isinstance(value, str) and value.strip():
        found = ctx.config.staff_by_email(value) or ctx.config.staff_by_key(value)
        if found is None:
            raise ActionSkipped(f"«am» no es nadie de config/staff.yaml ({value})")
        return str(found["clave"])
    return None


def _report(values: dict[str, Any], ctx: PrepareContext) -> dict[str, Any]:
    kind = values["informe"]
    if kind not in REPORTS:
        raise ActionSkipped(f"informe desconocido «{kind}»; usa {', '.join(REPORTS)}")
    if not isinstance(values.get("ahora"), datetime):
        raise ActionSkipped("el informe necesita «ahora» (una fecha y hora): {{ ahora }}")
    return {"kind": kind, "period": str(values["periodo"]),
            "am": _am_key(values.get("am"), ctx), "now": to_json(values["ahora"])}


def _prepare_mail(values: dict[str, Any], ctx: PrepareContext) -> Prepared:
    from connectors.google.rule_actions import emails  # it imports this module

    payload = _report(values, ctx)
    to = emails(values.get("para"))
    if not to:
        raise ActionSkipped("el informe no tiene destinatario")
    payload.update(to=to, cc=emails(values.get("cc")))
    who = f" de {payload['am']}" if payload["am"] else ""
    return Prepared(payload, "gmail:" + ",".join(to),
                    f"informe {payload['kind']}{who} {payload['period']} a {', '.join(to)}")


def _rendered(rt: ActionRuntime, payload: dict[str, Any]) -> Any:
    import reports

    return reports.make(rt.settings, payload["kind"], payload["period"],
                        am_key=payload.get("am"), now=from_json(payload["now"]))


def _send_mail(rt: ActionRuntime, payload: dict[str, Any], marker: str) -> str:
    import reports
    from connectors.google import actions

    rendered = _rendered(rt, payload)
    reports.keep(rt.settings, rendered)
    return str(actions.send_email(
        rt.client("google"), to=payload["to"], cc=payload.get("cc"), subject=rendered.subject,
        text=rendered.text, html=rendered.html, marker=marker, images=rendered.images,
        attachments=[(rendered.pdf_name, "application/pdf", rendered.pdf)]))


def _find_mail(rt: ActionRuntime, _payload: dict[str, Any], marker: str) -> str | None:
    from connectors.google import actions

    found = actions.find_email_by_marker(rt.client("google"), marker)
    return None if found is None else str(found)


def _prepare_tab(values: dict[str, Any], ctx: PrepareContext) -> Prepared:
    payload = _report(values, ctx)
    return Prepared(payload, f"sheets:informe:{payload['kind']}",
                    f"pestaña del informe {payload['kind']} {payload['period']}")


def _send_tab(rt: ActionRuntime, payload: dict[str, Any], _marker: str) -> str:
    from connectors.google import actions
    from connectors.google.kpi_sheet import spreadsheet_id

    rendered = _rendered(rt, payload)
    actions.write_table(rt.client("google"), spreadsheet_id(rt.settings), rendered.tab,
                        rendered.header, rendered.rows)
    return f"pestaña {rendered.tab} ({len(rendered.rows)} filas)"


def _templates(literals: dict[str, Any]) -> list[str]:
    name = TEMPLATE_OF.get(str(literals.get("informe")))
    return [name] if name else []


def _check(args: dict[str, Any], ctx: CheckContext) -> None:
    """At load (``rules validate``): the report exists and its template is right."""
    arg = args.get("informe")
    kind = getattr(arg, "literal", None)
    if arg is None or not isinstance(kind, str):
        return
    if kind not in REPORTS:
        ctx.sink.add(arg.line, f"informe desconocido «{kind}»; usa {', '.join(REPORTS)}")
        return
    from reports.render import SCOPES
    from rules.templates import Template

    folder = Path(ctx.config.template_dir)
    name = TEMPLATE_OF[kind]
    for suffix in ("txt", "html"):
        path = folder / f"{name}.{suffix}"
        if not path.is_file():
            ctx.sink.add(arg.line, f"falta la plantilla config/plantillas/{path.name}")
            continue
        try:
            Template(path.read_text(encoding="utf-8"), SCOPES[name], html=suffix == "html")
        except StaticError as exc:
            ctx.sink.add(arg.line, f"config/plantillas/{path.name}:{exc.lineno}: {exc.message}")


_REPORT_PARAMS = {
    "informe": Param(TEXT, required=True, doc="semanal-equipo, semanal-am, mensual o "
                                              "comisiones"),
    "periodo": Param(TEXT, required=True, doc="el periodo: 2026-S48 (semana), 2026-11 (mes)"),
    "am": Param(PERSON, doc="el AM del informe semanal-am (o de sus comisiones)"),
    "ahora": Param(DATE, required=True, doc="el momento de los datos: {{ ahora }}"),
}

ACTIONS: list[ActionType] = [
    ActionType("gmail.informe", "Envía un informe (M10) o las comisiones (M12) una sola vez: "
               "correo HTML con las gráficas dentro y el PDF adjunto; lo guarda también en "
               "REPORTS_DIR.",
               {**_REPORT_PARAMS, "para": Param(PEOPLE, required=True), "cc": Param(PEOPLE)},
               _prepare_mail, _send_mail, _find_mail, check=_check, role=MAIL_ROLE,
               templates=_templates, settings=("GOOGLE_DELEGATED_USER",)),
    # Rewriting a tab is idempotent (same data, same cells): nothing to look up.
    ActionType("sheets.informe", "Escribe un informe (M10) o las comisiones (M12) en su "
               "pestaña de la hoja de KPIs.", dict(_REPORT_PARAMS),
               _prepare_tab, _send_tab, None, check=_check, role=TAB_ROLE,
               settings=("GOOGLE_KPI_SPREADSHEET_ID",)),
]
