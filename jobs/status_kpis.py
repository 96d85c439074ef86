"""The status page's KPI view for the COO: the month so far, the headline KPIs of
``config/kpis.yaml`` (``estado``) against their targets."""

from __future__ import annotations

import html
from typing import Any

from core.settings import Settings
from store import kpis
from store.db import Database, utcnow
from store.kpis import formatting


def headline(db: Database, settings: Settings) -> dict[str, Any]:
    """{"periodo": "2026-11", "kpis": [{kpi, nombre, valor, meta, cumple, n}, …]} (texts
    already formatted for Mexico); an error in the KPI config is shown, not raised."""
    try:
        config = kpis.load_config(settings.config_dir, settings.rules_dir)
        now = settings.rules_frozen_now or utcnow()
        with db.session() as session:
            values = kpis.current(session, "mes", config=config, kpis=config.estado or None,
                                  now=now)
    except Exception as exc:  # noqa: BLE001 - the page shows what failed
        return {"periodo": "", "kpis": [], "error": str(exc)[:300]}
    definitions = config.by_id()
    return {"periodo": values[0].period if values else "", "error": None,
            "kpis": [{"kpi": v.kpi, "nombre": v.name, "valor": formatting.figure(v.value, v.unit),
                      "meta": formatting.target(definitions[v.kpi]),
                      "cumple": formatting.met(v.met), "n": formatting.number(v.n, 0)}
                     for v in values]}


def render(data: dict[str, Any] | None) -> str:
    """The section's HTML (empty without data)."""
    if not data:
        return ""
    if data.get("error"):
        return ("<h2>KPIs del mes</h2><p class=bad>No se pudieron calcular: "
                f"{html.escape(data['error'])}</p>")
    cards = []
    for k in data["kpis"]:
        css = {"sí": "ok", "no": "bad"}.get(k["cumple"], "")
        cards.append(f"<div class='kpi {css}'><div class=v>{html.escape(k['valor'])}</div>"
                     f"<div>{html.escape(k['nombre'])}</div>"
                     f"<div class=m>meta {html.escape(k['meta'])} · n = {html.escape(k['n'])}"
                     "</div></div>")
    return (f"<h2>KPIs del mes {html.escape(data['periodo'])} (docs/kpis.md)</h2>"
            f"<div class=kpis>{''.join(cards)}</div>")


STYLE = (".kpis{display:flex;flex-wrap:wrap;gap:.6rem;margin-bottom:1.5rem}"
         ".kpi{border:1px solid #ccc;border-radius:6px;padding:.5rem .8rem;min-width:11rem}"
         ".kpi .v{font-size:1.4rem;font-weight:600}.kpi .m{color:#666;font-size:.8rem}"
         ".kpi.ok{border-color:#157a15}.kpi.bad{border-color:#b00020}")
