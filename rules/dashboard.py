"""M3's function for rules: ``tablero_kpis()`` — the fingerprint of the KPI spreadsheet's
tabs as the model holds them now, and that of the last publication, so that M3
(config/rules/m3-tablero-kpis.yaml) writes the sheet only when its cells would change."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rules.functions import Env, function, store_session
from store import kpis
from store.db import Database
from store.kpis import looker, tables
from store.models import ActionLedger

if TYPE_CHECKING:
    from connectors.clients import ActionRuntime

# The role of the action that publishes the KPI spreadsheet (rules.actions.base.ActionType).
DASHBOARD_ROLE = "tablero_kpis"


@function("tablero_kpis", 0, 0,
          "M3: la hoja de KPIs según los datos de ahora: .huella (cambia si cambia alguna "
          "celda), .publicada (la huella de la última publicación hecha), .pestanas y "
          ".filas: tablero_kpis().huella != tablero_kpis().publicada")
def _dashboard(env: Env) -> dict[str, Any]:
    key = f"tablero_kpis:{env.now.isoformat()}"
    if key not in env.memo:
        if env.config_dir is None:
            raise ValueError("tablero_kpis lee config/kpis.yaml: solo funciona en un ciclo de "
                             "reglas")
        session = store_session(env, "tablero_kpis")
        config = kpis.load_config(env.config_dir)
        built = tables.build_and_keep(session, config, env.now)
        env.memo[key] = {"huella": tables.fingerprint(built),
                         "publicada": last_published(session),
                         "pestanas": len(built), "filas": sum(len(t.rows) for t in built)}
    value: dict[str, Any] = env.memo[key]
    return value


def last_published(session: Session) -> str | None:
    """The fingerprint of what the KPI spreadsheet holds: the latest publication's (by M3 or
    ``kpis --publicar``), remembered by the publication itself once its cells are written."""
    where = looker.place(session)
    return where.fingerprint if where else None


def publish_now(db: Database, runtime: ActionRuntime, now: datetime) -> looker.SheetPlace | None:
    """``saeko-sync kpis --publicar``: M3's action at once, outside any schedule. Rewriting
    every tab is idempotent; the ledger keeps a done row of it (key ``kpis --publicar:<now>``)
    so that the publications are all in one place."""
    from rules.actions import REGISTRY  # the registry imports the rule functions
    from rules.actions.base import to_json

    action = next((a for a in REGISTRY.values() if a.role == DASHBOARD_ROLE), None)
    if action is None:
        raise RuntimeError("ninguna acción publica la hoja de KPIs (rol tablero_kpis)")
    marker = f"kpis --publicar:{now.isoformat()}"
    ref = action.send(runtime, {"ahora": to_json(now), "huella": ""}, marker)
    with db.session() as session:
        where = looker.place(session)
        if session.scalars(select(ActionLedger.id).where(
                ActionLedger.idempotency_key == marker)).first() is None:
            session.add(ActionLedger(
                idempotency_key=marker, rule_id=None, action=action.name, target=DASHBOARD_ROLE,
                payload={"args": {"ahora": to_json(now),
                                  "huella": where.fingerprint if where else ""}},
                status="done", attempts=1, external_ref=ref[:200], created_at=now,
                updated_at=now))
    return where
