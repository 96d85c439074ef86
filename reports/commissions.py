"""M12: each AM's commissions of a month, for new business and for renewals, from the
contracts that count in it (``config/comisiones.yaml``):

- a contract counts in the month its «inicio» (``starts_on``) falls in — the new contract
  that starts, the renewal whose period starts —, if its «tipo» has a rate, it has an
  amount, it is not deleted and its status is not excluded (``Cancelado``);
- it counts for the AM the client has in Podio now (the model keeps no history of AMs);
- its commission is amount × rate, rounded to the cent (half up), per contract; an AM's
  amounts are the sums of their contracts'.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from reports.config import CommissionsConfig
from store.kpis.periods import Period
from store.models import Client, Contract, Staff

CENT = Decimal("0.01")


@dataclass(frozen=True)
class Line:
    """One contract that makes up a commission."""

    contract: str  # the Podio item id
    client: str
    kind: str
    starts_on: date
    amount: Decimal
    currency: str
    rate: Decimal
    commission: Decimal


@dataclass
class AmCommission:
    key: str
    name: str
    email: str
    lines: list[Line]

    def total(self, kind: str | None = None) -> Decimal:
        return sum((ln.commission for ln in self.lines if kind is None or ln.kind == kind),
                   Decimal(0))

    def sold(self, kind: str | None = None) -> Decimal:
        return sum((ln.amount for ln in self.lines if kind is None or ln.kind == kind),
                   Decimal(0))


def compute(session: Session, config: CommissionsConfig, month: Period) -> list[AmCommission]:
    """Every active AM's commissions for ``month`` (an AM with no contract: no lines), by
    name; the contracts of clients without AM are left out (named in ``unassigned``)."""
    ams = {s.id: AmCommission(s.key, s.name, s.email, []) for s in session.scalars(
        select(Staff).where(Staff.role == "am", Staff.active.is_(True)).order_by(Staff.name))}
    for contract, client in _counted(session, config, month):
        am = ams.get(client.am_id) if client.am_id is not None else None
        if am is not None:
            am.lines.append(_line(config, contract, client))
    for am in ams.values():
        am.lines.sort(key=lambda ln: (ln.kind, ln.starts_on, ln.client, ln.contract))
    return list(ams.values())


def unassigned(session: Session, config: CommissionsConfig, month: Period) -> list[Line]:
    """The month's contracts whose client has no (active) AM: nobody's commission."""
    active = set(session.scalars(select(Staff.id).where(Staff.role == "am",
                                                          Staff.active.is_(True))))
    return [_line(config, k, c) for k, c in _counted(session, config, month)
            if c.am_id not in active]


def _counted(session: Session, config: CommissionsConfig, month: Period
             ) -> list[tuple[Contract, Client]]:
    rows = session.execute(
        select(Contract, Client).join(Client, Contract.client_id == Client.id)
        .where(Contract.deleted_at.is_(None), Contract.starts_on >= month.start,
               Contract.starts_on <= month.end, Contract.amount.is_not(None),
               Contract.kind.in_(list(config.tasas)))
        .order_by(Contract.starts_on, Contract.id)).all()
    return [(k, c) for k, c in rows if k.status not in config.estatus_excluidos]


def _line(config: CommissionsConfig, contract: Contract, client: Client) -> Line:
    assert contract.kind is not None and contract.amount is not None
    assert contract.starts_on is not None
    rate = config.tasas[contract.kind]
    amount = Decimal(contract.amount)
    return Line(contract.source_id, client.name or "cliente sin nombre", contract.kind,
                contract.starts_on, amount, contract.currency or config.moneda, rate,
                (amount * rate).quantize(CENT, rounding=ROUND_HALF_UP))


def by_kind(am: AmCommission, kinds: list[str]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = defaultdict(Decimal)
    for kind in kinds:
        out[kind] = am.total(kind)
    return dict(out)
