"""Which sources `serve`'s polling sync reads at each of its ticks: polling is the safety net
for lost webhooks, so a tool whose webhooks are flowing is polled only every
``SYNC_SAFETY_NET_SECONDS`` (default 30 minutes) instead of every ``SYNC_INTERVAL_SECONDS``.

A source whose tool delivers webhooks (``connectors.registry.with_webhooks``: Podio, Jira)
is skipped at a tick when (1) a delivery of that tool was stored since the previous tick
(the hooks are alive), (2) the source was polled less than the safety-net period ago, and
(3) this process has polled it at least once (a restart, which may have missed deliveries
while it was down, polls everything at once), and (4) none of its streams failed its last
poll (a failing stream is retried at every tick, so `/healthz` sees it fail cycle after
cycle as without the safety net). As soon as a tick finds no new delivery
(quiet hours, hooks broken or pointing elsewhere) the source is polled again at every tick.
Sources without webhooks (Forms, Sheets) are polled at every tick. The state — per source,
when it was last polled and the newest delivery id seen at the previous tick — lives in
``store_meta`` (``sync:safety-net``), so replicas share it. ``SYNC_SAFETY_NET_SECONDS=0``
polls every source at every tick (so does any period shorter than the ticks).

Trade-off: a delivery Podio loses while others keep arriving is read up to the safety-net
period later instead of one sync interval later. Podio's polling costs one filter call per
app and tick (7 apps: 84 calls an hour every 5 minutes, 28 every 15, 14 every 30). The
default, 30 minutes, is what keeps Podio under 30 % of its quota in the busiest hour of the
2,000-client world (bench/README.md: 15 minutes measured 29.7 %, no margin).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from connectors import registry
from core.settings import Settings
from store.db import Database
from store.models import StoreMeta, SyncState, WebhookInbox

META_KEY = "sync:safety-net"


def plan_polling(
    settings: Settings, db: Database, sources: list[str], now: datetime, *, polled_here: set[str]
) -> tuple[list[str], list[str]]:
    """(sources to poll now, sources skipped) at a tick at ``now``; records the tick.
    ``polled_here``: the sources this process already polled (updated in place)."""
    period = settings.sync_safety_net_seconds
    hooked = {c.name for c in registry.with_webhooks()}
    if period <= 0:
        polled_here.update(sources)
        return list(sources), []
    poll: list[str] = []
    skipped: list[str] = []
    with db.session() as session:
        row = session.get(StoreMeta, META_KEY)
        state: dict[str, Any] = dict(row.value or {}) if row else {}
        latest = _latest_deliveries(session, hooked)
        failing = set(session.scalars(select(SyncState.source).where(
            SyncState.last_status == "failed", SyncState.source.in_(sources))))
        for source in sources:
            tool = registry.for_source(source).name
            previous = state.get(source) or {}
            if (
                tool in hooked
                and source in polled_here
                and source not in failing
                and _healthy(previous, latest.get(tool, 0))
                and not _due(previous, now, period)
            ):
                skipped.append(source)
            else:
                poll.append(source)
                previous = {**previous, "polled_at": now.isoformat()}
            state[source] = {**previous, "delivery_id": latest.get(tool, 0)}
        if row is None:
            session.add(StoreMeta(key=META_KEY, value=state, updated_at=now))
        else:
            row.value, row.updated_at = state, now
    polled_here.update(poll)
    return poll, skipped


def _latest_deliveries(session: Any, tools: set[str]) -> dict[str, int]:
    """tool -> id of its newest stored delivery (hook verifications left out)."""
    rows = session.execute(
        select(WebhookInbox.source, func.max(WebhookInbox.id))
        .where(WebhookInbox.source.in_(tools), WebhookInbox.event_type != "hook.verify")
        .group_by(WebhookInbox.source)
    ).all()
    return {str(source): int(latest or 0) for source, latest in rows}


def _healthy(previous: dict[str, Any], latest: int) -> bool:
    """Deliveries of the tool were stored since the previous tick."""
    return "delivery_id" in previous and latest > int(previous["delivery_id"])


def _due(previous: dict[str, Any], now: datetime, period: float) -> bool:
    polled = previous.get("polled_at")
    if not polled:
        return True
    return (now - datetime.fromisoformat(polled)).total_seconds() >= period
