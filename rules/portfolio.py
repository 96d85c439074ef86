"""What M11 (cobranza follow-up) and M13 (low-usage review) read from the store, exposed to
rules as functions: an AM's overdue invoices, a client's usage trend and an AM's clients
whose usage dropped, plus the small date helpers their schedules need.

Read-only, over the cycle's session (``env.session``); each look-up is made once per cycle
and kept in ``env.memo`` (one query for every AM's invoices, one for every client's usage),
so a digest rule over all of «personal» costs the same as over one person.

- An invoice is overdue when it is due before the cut-off day (today, or the day given),
  has no payment date and its estatus is not «Pagada» nor a cancellation; it belongs to the
  AM of its client.
- Usage comes from ``rules.usage`` (the same trend M1's health score reads): a client's
  usage dropped when its recent weeks are at least ``umbral`` percent below its earlier
  weeks. Clients in «Baja» are not reviewed. A client is reviewed by its AM, or by its CSM
  when it has no AM.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rules import health_store, usage
from rules.data import Loader, Record
from rules.functions import Env, function, local_day, store_session
from store.models import Client, Invoice

NOT_REVIEWED = ("Baja",)
_MEMO = "portfolio"


def _memo(env: Env) -> dict[Any, Any]:
    memo: dict[Any, Any] = env.memo.setdefault(_MEMO, {})
    return memo


def _person(value: Any) -> int | None:
    if isinstance(value, dict):
        value = value.get("id")
    return None if value is None else int(value)


def _threshold(value: Any) -> float:
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        raise ValueError("el umbral es un porcentaje de caída, p. ej. en datos:  "
                         "caida_minima: 30") from None
    if threshold <= 0:
        raise ValueError("el umbral es la caída en por ciento, mayor que cero (30 = el uso "
                         "bajó 30 % o más)")
    return threshold


# --- M11: overdue invoices --------------------------------------------------------------


def overdue_by_am(session: Session, memo: dict[Any, Any], cutoff: date
                  ) -> dict[int, list[Record]]:
    """AM id -> the ``factura`` records (with their ``cliente``) overdue at ``cutoff``,
    by client name, due date and folio."""
    key = ("overdue", cutoff.isoformat())
    if key not in memo:
        rows = session.execute(
            select(Invoice.id, Client.am_id)
            .join(Client, Client.id == Invoice.client_id)
            .where(Client.deleted_at.is_(None), Client.am_id.is_not(None),
                   *health_store.overdue_at(cutoff))).all()
        records = Loader(session).load("factura", [r.id for r in rows], {"cliente": {}}) \
            if rows else {}
        by_am: dict[int, list[Record]] = {}
        for invoice_id, am_id in rows:
            if am_id is not None:
                by_am.setdefault(int(am_id), []).append(records[invoice_id])
        for invoices in by_am.values():
            invoices.sort(key=lambda r: ((r.get("cliente") or {}).get("nombre") or "",
                                         r.get("vencimiento") or date.min, r.get("folio") or ""))
        memo[key] = by_am
    result: dict[int, list[Record]] = memo[key]
    return result


@function("facturas_vencidas", 1, 2,
          "las facturas vencidas de los clientes de un AM (M11): vencen antes de hoy (o de la "
          "fecha de corte), sin fecha de pago y no «Pagada»; cada una con su cliente, folio, "
          "monto, vencimiento y dias_de_atraso (a la fecha de corte): "
          "facturas_vencidas(personal.id, disparador.momento)")
def _overdue_invoices(env: Env, person: Any, cutoff: Any = None) -> list[Record]:
    am_id = _person(person)
    if am_id is None:
        return []
    day = local_day(env, cutoff)
    return [{**record, "dias_de_atraso": (day - record["vencimiento"]).days}
            for record in overdue_by_am(store_session(env, "facturas_vencidas"), _memo(env),
                                        day).get(am_id, [])]


@function("suma", 2, 2,
          "la suma de un campo en una lista de registros (los vacíos no cuentan): "
          "suma(facturas_vencidas(personal.id), 'monto')")
def _sum(_env: Env, records: Any, name: Any) -> float:
    if not isinstance(records, list | tuple):
        raise ValueError("suma recibe una lista de registros y el nombre de un campo")
    total = 0.0
    for record in records:
        value = record.get(str(name)) if isinstance(record, dict) else None
        if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
            total += float(value)
    return round(total, 2)


@function("primer_dia_habil", 0, 1,
          "el primer día hábil del mes de una fecha (hoy si falta), según config/calendar.yaml: "
          "primer_dia_habil(hoy)")
def _first_business_day(env: Env, value: Any = None) -> date:
    day = local_day(env, value).replace(day=1)
    for _ in range(31):
        if env.calendar.is_business_day(day, env.zone):
            return day
        day += timedelta(days=1)
    raise ValueError(f"el mes de {day:%m/%Y} no tiene días hábiles (config/calendar.yaml)")


@function("es_primer_dia_habil", 0, 1,
          "verdadero si la fecha (hoy si falta) es el primer día hábil de su mes: "
          "es_primer_dia_habil(disparador.momento)")
def _is_first_business_day(env: Env, value: Any = None) -> bool:
    return local_day(env, value) == _first_business_day(env, value)


# --- M13: usage -------------------------------------------------------------------------


def _trends(env: Env, name: str) -> dict[int, usage.Trend]:
    memo = _memo(env)
    key = ("trends", env.today.isoformat())
    if key not in memo:
        memo[key] = usage.trends(store_session(env, name), env.today)
    result: dict[int, usage.Trend] = memo[key]
    return result


def _dropped(trend: usage.Trend | None, threshold: float) -> bool:
    change = None if trend is None else trend.change
    return change is not None and change * 100 <= -threshold


@function("uso", 1, 1,
          "la tendencia de uso de un cliente (hoja de uso semanal): reciente y anterior "
          "(usuarios activos por semana), cambio (en %), semanas y texto; vacía si no hay "
          "datos: uso(cliente.id).texto")
def _usage(env: Env, client_id: Any) -> Any:
    if client_id is None:
        return None
    return usage.as_record(_trends(env, "uso").get(int(client_id)))


@function("baja_de_uso", 2, 2,
          "verdadero si el uso del cliente cayó al menos ese porcentaje (sus últimas semanas "
          "contra las anteriores) y no está en «Baja»: baja_de_uso(cliente.id, "
          "datos.caida_minima)")
def _usage_dropped(env: Env, client_id: Any, threshold: Any) -> bool:
    if client_id is None:
        return False
    return _dropped(_trends(env, "baja_de_uso").get(int(client_id)), _threshold(threshold))


@function("clientes_con_baja_de_uso", 2, 2,
          "los clientes de una persona (los que tiene como AM, o como CSM si no tienen AM) "
          "cuyo uso cayó al menos ese porcentaje, de la mayor caída a la menor; cada uno "
          "con su «uso»: clientes_con_baja_de_uso(personal.id, datos.caida_minima)")
def _clients_with_usage_drop(env: Env, person: Any, threshold: Any) -> list[Record]:
    person_id = _person(person)
    if person_id is None:
        return []
    limit = _threshold(threshold)
    trends = _trends(env, "clientes_con_baja_de_uso")
    memo = _memo(env)
    key = ("clients", env.today.isoformat())
    session = store_session(env, "clientes_con_baja_de_uso")
    if key not in memo:
        memo[key] = {r.id: r for r in session.execute(
            select(Client.id, Client.am_id, Client.csm_id, Client.status)
            .where(Client.deleted_at.is_(None)))}
    clients = memo[key]
    wanted = [cid for cid, row in clients.items()
              if (row.am_id == person_id or (row.am_id is None and row.csm_id == person_id))
              and row.status not in NOT_REVIEWED and _dropped(trends.get(cid), limit)]
    return _with_usage(session, wanted, trends)


def _with_usage(session: Session, ids: Iterable[int], trends: dict[int, usage.Trend]
                ) -> list[Record]:
    wanted = list(ids)
    if not wanted:
        return []
    records = Loader(session).load("cliente", wanted, {})
    out = []
    for cid in wanted:
        record = dict(records[cid])
        record["uso"] = usage.as_record(trends.get(cid))
        out.append(record)
    out.sort(key=lambda r: (r["uso"]["cambio"], r.get("nombre") or ""))
    return out
