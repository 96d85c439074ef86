"""M10/M12 reports rendered: the email (text and HTML from ``config/plantillas/``, the
charts as inline images referenced by Content-ID), the PDF, the sheet tab, and the files
kept in ``REPORTS_DIR``. Every value reaches the templates as text already formatted for
Mexico (``reports.fmt``), never a raw Python value."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from core.settings import Settings
from reports import charts, commissions, fmt, pdf
from reports.build import MONTHLY, Report
from reports.config import CommissionsConfig
from rules.calendar import BusinessCalendar
from rules.functions import Env
from rules.templates import ENV_KEY, Template
from rules.types import ANY, MapT, T, ValT
from store.kpis.periods import Period

REPORT_TEMPLATE, COMMISSIONS_TEMPLATE = "m10-informe", "m12-comisiones"
WEEKLY_TAB, MONTHLY_TAB, COMMISSIONS_TAB = "informe_semanal", "informe_mensual", "comisiones"
CID_DOMAIN = "informe.saeko-sync"


def _map(label: str, *keys: str) -> MapT:
    return MapT(label, {k: ValT("texto", f"{label}.{k}") for k in keys})


# What each template may read (``rules validate`` checks them against this).
SCOPES: dict[str, dict[str, T]] = {
    REPORT_TEMPLATE: {
        "informe": _map("informe", "titulo", "periodo", "audiencia", "tickets", "generado",
                        "pdf", "pestana", "omitidas"),
        "cifras": ANY, "graficas": ANY, "cuentas": ANY},
    COMMISSIONS_TEMPLATE: {
        "comisiones": _map("comisiones", "periodo", "audiencia", "tasas", "total", "pdf",
                           "pestana", "generado"),
        "ams": ANY},
}


@dataclass
class Rendered:
    """One report ready to send and keep."""

    slug: str
    period: str
    subject: str
    text: str
    html: str            # for the email: images as cid:
    html_file: str       # for the file: images inline as data: URIs
    images: list[tuple[str, bytes]]  # (Content-ID, PNG)
    pdf: bytes
    tab: str
    header: list[str]
    rows: list[list[Any]]
    kind: str = ""                 # semanal-equipo, semanal-am, mensual, comisiones
    am_key: str | None = None

    @property
    def pdf_name(self) -> str:
        return f"{self.slug}.pdf"


def load_template(settings: Settings, name: str) -> dict[str, Template]:
    """The ``.txt`` and ``.html`` of a report template, checked against its scope."""
    folder = Path(settings.config_dir) / "plantillas"
    parts = {}
    for suffix in ("txt", "html"):
        path = folder / f"{name}.{suffix}"
        parts[suffix] = Template(path.read_text(encoding="utf-8"), SCOPES[name],
                                 html=suffix == "html")
    return parts


def _render(settings: Settings, name: str, ctx: dict[str, Any], now: datetime) -> dict[str, str]:
    env = Env(now, settings.timezone, BusinessCalendar.load(Path(settings.config_dir)))
    return {part: template.render({**ctx, ENV_KEY: env})
            for part, template in load_template(settings, name).items()}


def _generated(settings: Settings, now: datetime) -> str:
    local = now.replace(tzinfo=UTC).astimezone(ZoneInfo(settings.timezone))
    return f"{fmt.day(local)} a las {local:%H:%M}"


# --- M10 ---------------------------------------------------------------------------------


def report(settings: Settings, rep: Report, targets: dict[str, float | None],
           attention_max: int) -> Rendered:
    """The email, PDF and sheet rows of an M10 report."""
    drawn = charts.charts(rep, targets)
    tab = MONTHLY_TAB if rep.kind == MONTHLY else WEEKLY_TAB
    figures = [{"nombre": f.name, "valor": f.shown, "meta": f.target, "estado": f.status,
                "frente_a_meta": f"meta {f.target}: {f.status}" if f.target != fmt.EMPTY
                else "", "n": fmt.number(f.n, 0), "definicion": f.definition}
               for f in rep.figures]
    accounts = [{"nombre": a.name, "am": a.am, "banda": a.band,
                 "salud": f"salud {a.score} ({a.band})" if a.score != fmt.EMPTY else "",
                 "motivos": a.reasons, "enlace": a.link} for a in rep.accounts]
    info = {"titulo": rep.title, "periodo": rep.period_text.capitalize(),
            "audiencia": rep.audience, "tickets": fmt.number(rep.tickets, 0),
            "generado": _generated(settings, rep.generated), "pdf": f"{rep.slug}.pdf",
            "pestana": tab,
            "omitidas": fmt.number(max(0, len(accounts) - attention_max), 0)
            if len(accounts) > attention_max else ""}

    def with_src(src: dict[str, str]) -> dict[str, Any]:
        return {"informe": info, "cifras": figures, "cuentas": accounts[:attention_max],
                "graficas": [{"titulo": c.title, "alt": c.alt, "src": src[c.cid]}
                             for c in drawn]}

    cid = {c.cid: f"cid:{c.cid}@{CID_DOMAIN}" for c in drawn}
    data = {c.cid: "data:image/png;base64," + base64.b64encode(c.png).decode() for c in drawn}
    mail = _render(settings, REPORT_TEMPLATE, with_src(cid), rep.generated)
    kept = _render(settings, REPORT_TEMPLATE, with_src(data), rep.generated)
    sections: list[dict[str, Any]] = [{"titulo": "Indicadores", "tabla": (
        ["Indicador", "Cifra", "Meta", "Estado", "Base (n)"],
        [[f["nombre"], f["valor"], f["meta"], f["estado"], f["n"]] for f in figures],
        (70, 30, 30, 25, 25))},
        {"titulo": "Tickets", "texto": f"Tickets recibidos en el periodo: {info['tickets']}"}]
    sections += [{"titulo": c.title, "imagen": c.png} for c in drawn]
    sections.append({"titulo": "Cuentas que necesitan atención", "tabla": (
        ["Cuenta", "AM", "Salud", "Motivos", "Podio"],
        [[a["nombre"], a["am"], a["salud"] or fmt.EMPTY, a["motivos"],
          ("abrir en Podio", a["enlace"]) if a["enlace"] else fmt.EMPTY] for a in accounts],
        (40, 30, 30, 55, 25))} if accounts else
        {"titulo": "Cuentas que necesitan atención", "texto": "Ninguna esta vez."})
    document = pdf.document(rep.title, f"{info['periodo']} · {rep.audience} · generado el "
                            f"{info['generado']}", sections)
    header = ["periodo", "inicio", "fin", "dimension", "clave_dimension", "valor_dimension",
              "kpi", "nombre", "valor", "unidad", "meta", "cumple", "n"]
    rows = [[v.period, v.start, v.end, v.dimension, v.key, v.label, v.kpi, v.name, v.value,
             v.unit, v.target, v.met, v.n]
            for v in sorted(rep.rows, key=lambda v: (v.dimension != "total", v.label, v.kpi))]
    subject = f"{rep.title}: {info['periodo']}" + (
        f" · {rep.audience}" if rep.am_key else "")
    return Rendered(rep.slug, rep.period.label, subject, mail["txt"], mail["html"],
                    kept["html"], [(f"{c.cid}@{CID_DOMAIN}", c.png) for c in drawn],
                    document, tab, header, rows, rep.kind, rep.am_key)


# --- M12 ---------------------------------------------------------------------------------


def commissions_report(settings: Settings, config: CommissionsConfig, month: Period,
                       ams: list[commissions.AmCommission], *, now: datetime,
                       am_key: str | None = None) -> Rendered:
    """The commissions of ``month``: every AM's (for the COO and the sheet), or one AM's."""
    kinds = list(config.tasas)
    shown = [a for a in ams if am_key is None or a.key == am_key]
    currency = config.moneda

    def am_ctx(am: commissions.AmCommission) -> dict[str, Any]:
        return {"nombre": am.name, "email": am.email,
                "nuevo": fmt.money(am.total(kinds[0]) if kinds else 0, currency),
                "renovacion": fmt.money(am.total(kinds[1]) if len(kinds) > 1 else 0, currency),
                "total": fmt.money(am.total(), currency),
                "contratos": [{"cliente": ln.client, "contrato": ln.contract, "tipo": ln.kind,
                               "inicio": fmt.short_day(ln.starts_on),
                               "monto": fmt.money(ln.amount, ln.currency),
                               "tasa": fmt.rate(ln.rate),
                               "comision": fmt.money(ln.commission, ln.currency)}
                              for ln in am.lines]}

    people = [am_ctx(a) for a in shown]
    who = shown[0].name if am_key and shown else "Todos los AM"
    slug = f"comisiones{'-' + am_key if am_key else ''}-{month.label}"
    info = {"periodo": fmt.month(month.start), "audiencia": who,
            "tasas": "; ".join(f"{k} {fmt.rate(v)}" for k, v in config.tasas.items()),
            "total": fmt.money(sum((a.total() for a in shown), start=commissions.CENT * 0),
                               currency),
            "pdf": f"{slug}.pdf", "pestana": COMMISSIONS_TAB,
            "generado": _generated(settings, now)}
    parts = _render(settings, COMMISSIONS_TEMPLATE, {"comisiones": info, "ams": people}, now)
    sections: list[dict[str, Any]] = [{"titulo": "Resumen por AM", "tabla": (
        ["AM", "Negocio nuevo", "Renovaciones", "Total"],
        [[p["nombre"], p["nuevo"], p["renovacion"], p["total"]] for p in people],
        (60, 40, 40, 40))}]
    for p in people:
        sections.append({"titulo": f"{p['nombre']}: {p['total']}", "tabla": (
            ["Cliente", "Tipo", "Inicio", "Monto", "Tasa", "Comisión"],
            [[k["cliente"], k["tipo"], k["inicio"], k["monto"], k["tasa"], k["comision"]]
             for k in p["contratos"]], (50, 25, 22, 35, 13, 35))} if p["contratos"] else
            {"titulo": f"{p['nombre']}: {p['total']}",
             "texto": "Sin contratos que comisionen este mes."})
    document = pdf.document(f"Comisiones de {info['periodo']}",
                            f"{who} · tasas {info['tasas']} · generado el {info['generado']}",
                            sections)
    header = ["periodo", "am", "email_am", "cliente", "id_contrato", "tipo", "inicio", "monto",
              "moneda", "tasa", "comision"]
    rows = [[month.label, a.name, a.email, ln.client, ln.contract, ln.kind, ln.starts_on,
             ln.amount, ln.currency, ln.rate, ln.commission] for a in shown for ln in a.lines]
    subject = f"Comisiones de {info['periodo']}: {who} ({info['total']})"
    return Rendered(slug, month.label, subject, parts["txt"], parts["html"], parts["html"], [],
                    document, COMMISSIONS_TAB, header, rows, "comisiones", am_key)


# --- files -------------------------------------------------------------------------------


def keep(settings: Settings, rendered: Rendered) -> tuple[Path, Path]:
    """Write the report's HTML and PDF under ``REPORTS_DIR/<periodo>/`` (replaced whole:
    a temporary file renamed, so a crash never leaves half a report)."""
    folder = Path(settings.reports_dir) / rendered.period
    folder.mkdir(parents=True, exist_ok=True)
    paths = (folder / f"{rendered.slug}.html", folder / rendered.pdf_name)
    for path, data in zip(paths, (rendered.html_file.encode("utf-8"), rendered.pdf),
                          strict=True):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return paths
