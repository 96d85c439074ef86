"""What M1's health score reads from the store: one reading per signal and client, for
every client at once (one query per signal), as of a day. Read-only; the rule function
``salud`` keeps the result in the cycle's memo, so one cycle computes each score once.

The facts each reading quotes are dates, counts and amounts, never «hace N días»: a
reason's text changes when the facts change, not every morning (the score is written to
Podio only when score, band or reasons change)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from rules import ledger as L
from rules import usage
from rules.health import Health, HealthConfig, Reading, SignalConfig, score
from store.models import (
    ActionLedger,
    CheckIn,
    Client,
    Invoice,
    SurveyResponse,
    Ticket,
)

# Estatus of an invoice that is not owed (Podio's Facturas has Pagada, Pendiente, Vencida;
# a cancellation option, if the app gains one, is spelled one of these).
NOT_OWED = ("Pagada", "Cancelada", "Cancelado")
NO_SCORE_STATUSES = ("Baja",)
DONE_CHECK_IN = "Realizado"  # a rescheduled or cancelled follow-up does not count


def scores(session: Session, config: HealthConfig, today: date,
           client_ids: Iterable[int] | None = None) -> dict[int, Health]:
    """Client id -> its health as of ``today`` (clients in «Baja» are not scored)."""
    query = select(Client.id, Client.segment, Client.signed_on, Client.onboarding_done_on) \
        .where(Client.deleted_at.is_(None),
               Client.status.is_(None) | Client.status.not_in(NO_SCORE_STATUSES))
    clients = {row.id: row for row in session.execute(query)}
    if client_ids is not None:
        wanted = set(client_ids)
        clients = {k: v for k, v in clients.items() if k in wanted}
    readers = {"uso": _usage, "volumen_tickets": _ticket_volume,
               "tickets_repetidos": _repeats, "sla": _sla, "retro_negativa": _feedback,
               "cobranza": _overdue, "decisor": _decision_maker, "seguimiento": _check_in}
    readings: dict[int, dict[str, Reading]] = defaultdict(dict)
    for name, reader in readers.items():
        signal = config.signal(name)
        if signal is None:
            continue
        for client_id, reading in reader(session, signal, today, clients).items():
            if client_id in clients:
                readings[client_id][name] = reading
    return {cid: score(config, readings.get(cid, {})) for cid in clients}


# --- the signals ----------------------------------------------------------------------------


def _usage(session: Session, signal: SignalConfig, today: date,
           clients: dict[int, Any]) -> dict[int, Reading]:
    recent = signal.semanas_recientes or usage.RECENT_WEEKS
    earlier = signal.semanas_anteriores or usage.BASELINE_WEEKS
    out = {}
    for cid, trend in usage.trends(session, today, clients, recent, earlier).items():
        change = trend.change
        if change is None:
            out[cid] = Reading(None, f"sin semanas suficientes para comparar ({trend.weeks})")
            continue
        out[cid] = Reading(round(change * 100, 1), trend.describe())
    return out


def _start(today: date, days: int) -> datetime:
    return datetime.combine(today - timedelta(days=days), time.min)


def _tickets(session: Session, since: datetime, *columns: Any) -> list[Any]:
    return list(session.execute(select(Ticket.client_id, *columns).where(
        Ticket.client_id.is_not(None), Ticket.deleted_at.is_(None), Ticket.opened_at >= since)))


def _ticket_volume(session: Session, signal: SignalConfig, today: date,
                   clients: dict[int, Any]) -> dict[int, Reading]:
    window, norm_days = signal.ventana_dias or 30, signal.norma_dias or 180
    start = _start(today, window)
    recent: Counter[int] = Counter()
    earlier: Counter[int] = Counter()
    for cid, opened in _tickets(session, _start(today, window + norm_days), Ticket.opened_at):
        (recent if opened >= start else earlier)[cid] += 1
    out = {}
    for cid in clients:
        count = recent.get(cid, 0)
        norm = earlier.get(cid, 0) * window / norm_days
        if count < max(1, signal.minimo):
            out[cid] = Reading(None, f"{count} tickets en los últimos {window} días")
            continue
        ratio = count / norm if norm else float(count)
        out[cid] = Reading(round(ratio, 2), (
            f"{count} tickets en los últimos {window} días; lo normal son {norm:.1f} "
            f"({ratio:.1f} veces)"))
    return out


def _repeats(session: Session, signal: SignalConfig, today: date,
             clients: dict[int, Any]) -> dict[int, Reading]:
    window = signal.ventana_dias or 30
    per_module: dict[int, Counter[str]] = defaultdict(Counter)
    for cid, module in _tickets(session, _start(today, window), Ticket.module):
        if module and module not in signal.excluir_modulos:
            per_module[cid][module] += 1
    out = {}
    for cid, modules in per_module.items():
        module, count = max(modules.items(), key=lambda kv: (kv[1], kv[0]))
        out[cid] = Reading(float(count), f"{count} tickets de {module} en los últimos "
                                         f"{window} días")
    return out


def _sla(session: Session, signal: SignalConfig, today: date,
         clients: dict[int, Any]) -> dict[int, Reading]:
    window, limit = signal.ventana_dias or 30, signal.horas_primera_respuesta or 8
    late: Counter[int] = Counter()
    for cid, hours in _tickets(session, _start(today, window), Ticket.first_response_hours):
        if hours is not None and hours > limit:
            late[cid] += 1
    return {cid: Reading(float(n), f"{n} tickets de los últimos {window} días con primera "
                                   f"respuesta en más de {limit:g} horas hábiles")
            for cid, n in late.items()}


def _feedback(session: Session, signal: SignalConfig, today: date,
              clients: dict[int, Any]) -> dict[int, Reading]:
    window = signal.ventana_dias or 60
    csat_max = signal.csat_maximo if signal.csat_maximo is not None else 2
    nps_max = signal.nps_maximo if signal.nps_maximo is not None else 6
    rows = session.execute(select(
        SurveyResponse.client_id, SurveyResponse.kind, SurveyResponse.score,
        SurveyResponse.submitted_at).where(
        SurveyResponse.client_id.is_not(None), SurveyResponse.deleted_at.is_(None),
        SurveyResponse.submitted_at >= _start(today, window)))
    bad: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    for cid, kind, value, at in rows:
        if cid is not None and at is not None and is_negative(kind, value, csat_max, nps_max):
            bad[cid].append((at, f"{kind.upper()} {value:g}"))
    out = {}
    for cid, answers in bad.items():
        answers.sort()
        listed = ", ".join(f"{text} el {at:%d/%m/%Y}" for at, text in answers[-3:])
        out[cid] = Reading(float(len(answers)), f"{len(answers)} en los últimos {window} "
                                                f"días ({listed})")
    return out


def overdue_at(cutoff: date) -> tuple[Any, ...]:
    """The invoices owed and overdue at ``cutoff`` (M1's signal, M11's digests): due before
    it, no payment date, not paid nor cancelled."""
    return (Invoice.deleted_at.is_(None), Invoice.due_on.is_not(None), Invoice.due_on < cutoff,
            Invoice.paid_on.is_(None),
            Invoice.status.is_(None) | Invoice.status.not_in(NOT_OWED))


def is_negative(kind: str | None, value: float | None, csat_max: float, nps_max: float
                ) -> bool:
    """A negative answer: an NPS of ``nps_max`` or less, any other (CSAT) of ``csat_max``."""
    return value is not None and value <= (nps_max if kind == "nps" else csat_max)


def _overdue(session: Session, signal: SignalConfig, today: date,
             clients: dict[int, Any]) -> dict[int, Reading]:
    rows = session.execute(select(Invoice.client_id, Invoice.due_on, Invoice.amount).where(
        Invoice.client_id.is_not(None), *overdue_at(today)))
    unpaid: dict[int, list[tuple[date, Decimal]]] = defaultdict(list)
    for cid, due, amount in rows:
        if cid is None or due is None:
            continue
        unpaid[cid].append((due, amount or Decimal(0)))
    out = {}
    for cid, invoices in unpaid.items():
        oldest = min(due for due, _a in invoices)
        total = sum((a for _d, a in invoices), Decimal(0))
        out[cid] = Reading(float((today - oldest).days), (
            f"{len(invoices)} sin pagar por ${total:,.0f}; la más antigua venció el "
            f"{oldest:%d/%m/%Y}"))
    return out


def _decision_maker(session: Session, signal: SignalConfig, today: date,
                    clients: dict[int, Any]) -> dict[int, Reading]:
    """Days since the decision maker changed: the client's «decisor-desde» in Podio (M1's
    rule m1-decisor-desde writes it when it sees «decisor» change; kept in the tool, so a
    new store reads the same)."""
    rows = session.execute(select(Client.id, Client.decision_maker, Client.decision_maker_since)
                           .where(Client.decision_maker_since.is_not(None),
                                  Client.deleted_at.is_(None)))
    return {cid: Reading(float((today - since).days),
                         f"{name or 'el decisor nuevo'} desde el {since:%d/%m/%Y}")
            for cid, name, since in rows if since is not None}


def _check_in(session: Session, signal: SignalConfig, today: date,
              clients: dict[int, Any]) -> dict[int, Reading]:
    latest: dict[int, datetime] = {}
    for cid, at in session.execute(select(CheckIn.client_id, CheckIn.happened_at).where(
            CheckIn.client_id.is_not(None), CheckIn.deleted_at.is_(None),
            CheckIn.happened_at.is_not(None),
            CheckIn.outcome.is_(None) | (CheckIn.outcome == DONE_CHECK_IN))):
        if cid is not None and at is not None and (cid not in latest or at > latest[cid]):
            latest[cid] = at
    out = {}
    for cid, client in clients.items():
        allowed = signal.plazo_dias.get(client.segment or "")
        if allowed is None:
            continue
        if cid in latest:
            since, what = latest[cid].date(), f"último seguimiento el {latest[cid]:%d/%m/%Y}"
        else:
            since = client.onboarding_done_on or client.signed_on
            if since is None:
                continue
            what = f"sin seguimientos registrados desde el {since:%d/%m/%Y}"
        late = (today - since).days - allowed
        out[cid] = Reading(float(late), f"{what}; su plazo ({client.segment}) es de "
                                        f"{allowed} días")
    return out


def find_clients(session: Session, text: str) -> list[Any]:
    """Clients by model id, Podio item id or a piece of the name (case-insensitive)."""
    base = select(Client.id, Client.name, Client.source_id, Client.health_score,
                  Client.health_band).where(Client.deleted_at.is_(None))
    if text.isdigit():
        return list(session.execute(base.where(
            (Client.id == int(text)) | (Client.source_id == text))))
    return list(session.execute(base.where(Client.name.ilike(f"%{text}%"))
                                .order_by(Client.name)))


def history(session: Session, client_id: int, limit: int = 10) -> list[tuple[Any, Any, Any]]:
    """(when, score, band) of the scores written to Podio for the client, newest first:
    the done writes in the action ledger whose columns carry the score."""
    rows = session.execute(select(ActionLedger.updated_at, ActionLedger.payload).where(
        ActionLedger.target == f"cliente:{client_id}", ActionLedger.status == L.DONE,
        cast(ActionLedger.payload, Text).like('%"health_score"%'))
        .order_by(ActionLedger.id.desc()))
    out = []
    for at, payload in rows:
        columns = ((payload or {}).get("args") or {}).get("columns") or {}
        if "health_score" in columns:
            out.append((at, columns.get("health_score"), columns.get("health_band")))
        if len(out) >= limit:
            break
    return out


def first_negative_answer(session: Session, client_id: int, today: date, csat_max: float,
                          nps_max: float) -> dict[str, Any] | None:
    """M7: the client's first negative CSAT or NPS answer of the ISO week of ``today``, by
    answer time — what a «retroalimentación negativa» escalation quotes, the same whichever
    answer's rule escalated first (and however the cycles fell)."""
    monday = today - timedelta(days=today.weekday())
    rows = session.execute(select(
        SurveyResponse.kind, SurveyResponse.score, SurveyResponse.comment,
        SurveyResponse.email, SurveyResponse.submitted_at, Ticket.title)
        .outerjoin(Ticket, SurveyResponse.ticket_id == Ticket.id)
        .outerjoin(Client, Ticket.client_id == Client.id)
        .where(SurveyResponse.deleted_at.is_(None),
               SurveyResponse.submitted_at >= _start(monday, 1),
               (SurveyResponse.client_id == client_id) | (Ticket.client_id == client_id))
        .order_by(SurveyResponse.submitted_at, SurveyResponse.id))
    for kind, value, comment, email, at, title in rows:
        if at is None or not is_negative(kind, value, csat_max, nps_max):
            continue
        scale = 10 if kind == "nps" else 5
        about = f", del ticket «{title}»" if title else ""
        text = (f"Primera respuesta negativa de la semana: {kind.upper()} {value:g}/{scale} de "
                f"{email or 'un usuario'} el {at:%d/%m/%Y %H:%M} UTC{about}.\n"
                f"Comentario: «{comment or '(sin comentario)'}»")
        return {"tipo": kind, "calificacion": value, "escala": scale, "comentario": comment,
                "email": email, "fecha": at, "ticket": title, "texto": text}
    return None
