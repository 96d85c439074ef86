"""What the status page shows, as data (also served as JSON at /status.json).

Times are naive UTC ISO strings here; the page shows them in the department's zone
(``TIMEZONE``). Records are given as ``{"label", "url"}``: the Podio item (its own link),
the Jira issue, not the model's internal ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from connectors import registry
from connectors.base import SOURCES
from core.settings import Settings
from jobs import quota as quotas
from jobs import status_kpis, writebacks
from rules import catalog
from store.db import Database, utcnow
from store.entities import load_mapping
from store.models import (
    ActionLedger,
    DeadLetter,
    JobRun,
    RuleEventRetry,
    RuleRun,
    RuleState,
    SyncState,
    WebhookInbox,
)
from store.retention import RETENTION_INTERVAL_SECONDS

RECENT_ROWS = 25  # rows per list on the page
DEFAULT_TIMEZONE = str(Settings.model_fields["timezone"].default)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(" ", "seconds") if value else None


def job_intervals(settings: Settings | None) -> dict[str, float]:
    """job -> its period in seconds, as `serve` schedules it (jobs/service.py)."""
    if settings is None:
        return {}
    return {"sync": settings.sync_interval_seconds, "rules": settings.rules_interval_seconds,
            "deletions": settings.deletion_scan_minutes * 60,
            "retention": RETENTION_INTERVAL_SECONDS}


def local_day_start(now: datetime, zone: str) -> datetime:
    """The start of ``now``'s day in ``zone``, as naive UTC."""
    tz = ZoneInfo(zone)
    local = now.replace(tzinfo=ZoneInfo("UTC")).astimezone(tz)
    start = datetime.combine(local.date(), time(0), tzinfo=tz)
    return start.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)


class Links:
    """Labels and links for records by the ids the model keeps (entity + internal id, or a
    tool's source id), read in one query per table; each tool says where its records are
    seen (``Connector.record_url``)."""

    def __init__(self, session: Session, settings: Settings | None) -> None:
        self.session = session
        self.settings = settings or Settings.model_construct()
        try:
            catalog.use_mapping(load_mapping(self.settings.config_dir))
        except Exception:  # noqa: BLE001 - a broken podio.yaml: the shipped entities
            pass
        self.models: dict[str, Any] = {e.name: e.model for e in catalog.ENTITIES.values()
                                       if e.synced}

    def url(self, source: str | None, source_id: str, raw: Any) -> str | None:
        """The tool's page of a record (``source``: a sync source or a tool name)."""
        try:
            connector = (registry.for_source(source) if source in SOURCES
                         else registry.connector(source or ""))
        except KeyError:
            return None
        if connector.record_url is None:
            return None
        return connector.record_url(self.settings, source_id, raw)

    def entities(self, wanted: Iterable[tuple[str | None, int | None]]
                 ) -> dict[tuple[str, int], dict[str, Any]]:
        """(entity, internal id) -> {label, url}."""
        by_entity: dict[str, set[int]] = {}
        for entity, entity_id in wanted:
            if entity and entity_id is not None:
                by_entity.setdefault(entity, set()).add(entity_id)
        out: dict[tuple[str, int], dict[str, Any]] = {}
        for entity, ids in by_entity.items():
            model = self.models.get(entity)
            if model is not None:
                for row in self.session.scalars(select(model).where(model.id.in_(ids))):
                    out[(entity, row.id)] = self._record(entity, row)
            for entity_id in ids:
                out.setdefault((entity, entity_id), {"label": f"{entity} #{entity_id}",
                                                     "url": None})
        return out

    def records(self, tool: str, source_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """source id -> {label, url} of records of ``tool`` (its title when synced, its own
        link; the tool's link for the id alone otherwise)."""
        wanted = {str(i) for i in source_ids}
        try:
            sources = registry.connector(tool).sources
        except KeyError:
            sources = ()
        out: dict[str, dict[str, Any]] = {}
        for entity, model in self.models.items():
            if not wanted or not sources:
                break
            for row in self.session.scalars(select(model).where(
                    model.source.in_(sources), model.source_id.in_(wanted))):
                out[row.source_id] = self._record(entity, row)
                wanted.discard(row.source_id)
        for source_id in wanted:
            out[source_id] = {"label": f"{tool} {source_id}",
                              "url": self.url(tool, source_id, None)}
        return out

    def ref(self, ref: writebacks.Ref, found: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """A write-back's place as {label, url} (``found``: ``records`` of its tool)."""
        if ref.source_id is not None and ref.source_id in found:
            return found[ref.source_id]
        url = ref.url or (self.url(ref.tool, ref.source_id or "", ref.raw) if ref.tool
                          else None)
        return {"label": ref.label, "url": url}

    def _record(self, entity: str, row: Any) -> dict[str, Any]:
        name = (getattr(row, "title", None) or getattr(row, "name", None)
                or getattr(row, "summary", None))
        ident = getattr(row, "key", None) or row.source_id
        label = f"{entity} {ident}" + (f" «{str(name)[:60]}»" if name else "")
        return {"label": label, "url": self.url(row.source, row.source_id, row.raw)}


def snapshot(db: Database, quota: dict[str, Any] | None = None,
             settings: Settings | None = None) -> dict[str, Any]:
    """Everything the page shows; with ``settings``, the month's headline KPIs too."""
    zone = settings.timezone if settings else DEFAULT_TIMEZONE
    now = utcnow()
    intervals = job_intervals(settings)
    with db.session() as s:
        links = Links(s, settings)
        syncs = [{"source": st.source, "stream": st.stream, "status": st.last_status,
                  "finished": _iso(st.last_finished_at), "last_ok": _iso(st.last_ok_at),
                  "error": st.last_error, "counts": st.last_counts or {}}
                 for st in s.scalars(select(SyncState).order_by(SyncState.source,
                                                                SyncState.stream))]
        run_rows = list(s.scalars(select(RuleRun).order_by(RuleRun.id.desc())
                                  .limit(RECENT_ROWS)))
        problem_rows = list(s.scalars(select(ActionLedger).where(
            ActionLedger.status.in_(["failed", "dead", "held", "waiting"]))
            .order_by(ActionLedger.id.desc()).limit(RECENT_ROWS)))
        entity_links = links.entities(
            [(r.entity, r.entity_id) for r in run_rows]
            + [_target(a.target) for a in problem_rows])
        runs = [{"id": r.id, "rule": r.rule_id, "matched": r.matched, "status": r.status,
                 "at": _iso(r.started_at),
                 "entity": entity_links.get((r.entity or "", r.entity_id or 0))}
                for r in run_rows]
        actions = [{"id": a.id, "rule": a.rule_id, "action": a.action, "status": a.status,
                    "attempts": a.attempts, "error": a.error,
                    "target": entity_links.get(_target(a.target))}  # type: ignore[arg-type]
                   for a in problem_rows]
        retries = [{"rule": rule, "events": int(count), "attempts": int(attempts or 0),
                    "next": _iso(nxt), "error": error}
                   for rule, count, attempts, nxt, error in s.execute(select(
                       RuleEventRetry.rule_id, func.count(), func.max(RuleEventRetry.attempts),
                       func.min(RuleEventRetry.next_attempt_at),
                       func.max(RuleEventRetry.error)).group_by(RuleEventRetry.rule_id))]
        backlog = dict(s.execute(select(WebhookInbox.status, func.count())
                                 .group_by(WebhookInbox.status)).all())
        broken = [{"rule": r.rule_id, "path": r.path,
                   "problems": [_problem(p) for p in r.problems or []],
                   "fallback": r.good_hash is not None}
                  for r in s.scalars(select(RuleState).order_by(RuleState.rule_id))
                  if r.problems]
        jobs = [{"job": j.job, "every": intervals.get(j.job),
                 "period_start": _period_start(j.period, intervals.get(j.job)),
                 "started": _iso(j.started_at), "holder": j.holder, "status": j.status,
                 "detail": j.detail}
                for j in s.scalars(select(JobRun).order_by(JobRun.id.desc()).limit(15))]
        dead = _dead_deliveries(s, links)
        letters = _dead_letters(s, links)
        # "Today" by the rules' clock: the ledger's times are the cycle's (RULES_FROZEN_NOW).
        rules_now = (settings.rules_frozen_now if settings else None) or now
        today = _written_today(s, local_day_start(rules_now, zone), links)
    return {"now": _iso(now), "timezone": zone,
            "refresh_seconds": settings.status_refresh_seconds if settings else 0,
            "syncs": syncs, "written_today": today, "rule_runs": runs,
            "problem_actions": actions, "broken_rules": broken, "rule_retries": retries,
            "inbox": {k: int(v) for k, v in backlog.items()}, "dead_deliveries": dead,
            "dead_letters": letters, "jobs": jobs, "quota": _quota(db, quota or {}),
            "kpis": status_kpis.headline(db, settings) if settings is not None else None}


def _target(target: str | None) -> tuple[str, int]:
    """A ledger target ("ticket:42") as (entity, internal id); ("", 0) otherwise."""
    entity, _, entity_id = (target or "").partition(":")
    return (entity, int(entity_id)) if entity_id.isdigit() else ("", 0)


def _problem(problem: Any) -> str:
    """A stored rule problem as a sentence: "línea 12: …" (never a raw dict)."""
    if isinstance(problem, dict):
        line = problem.get("line")
        return (f"línea {line}: " if line else "") + str(problem.get("message", ""))
    return str(problem)


def _period_start(period: str, every: float | None) -> str | None:
    """A job period (an epoch bucket, jobs/service.py) as the UTC instant it began."""
    if every is None or not period.isdigit():
        return None
    return _iso(datetime(1970, 1, 1) + timedelta(seconds=int(period) * max(1.0, every)))


def _dead_deliveries(s: Session, links: Links) -> list[dict[str, Any]]:
    """The latest dead webhook deliveries with why they died (the worker's last error) and
    the record each was about (the tool's ``record_key``, e.g. "item:4000001")."""
    rows = list(s.scalars(select(WebhookInbox).where(WebhookInbox.status == "dead")
                          .order_by(WebhookInbox.id.desc()).limit(RECENT_ROWS)))
    reasons = {letter.source_id: letter.reason for letter in s.scalars(
        select(DeadLetter).where(DeadLetter.stream == "webhook",
                                 DeadLetter.source_id.in_([str(r.id) for r in rows])))}
    about = {r.id: _delivery_record(r) for r in rows}
    found = {tool: links.records(tool, [i for r in rows if (a := about[r.id]) and a[0] == tool
                                        for i in [a[1]]])
             for tool in {a[0] for a in about.values() if a}}
    return [{"id": r.id, "source": r.source, "kind": r.event_type, "attempts": r.attempts,
             "received": _iso(r.received_at),
             "reason": reasons.get(str(r.id)) or r.error or "sin motivo registrado",
             "record": found[a[0]].get(a[1]) if (a := about[r.id]) else None}
            for r in rows]


def _delivery_record(row: WebhookInbox) -> tuple[str, str] | None:
    """(tool, source id) of the record a delivery is about, when the tool can say."""
    try:
        hooks = registry.connector(row.source).webhooks
        key = hooks.record_key(row.event_type or "", row.payload or {}) if hooks else None
    except Exception:  # noqa: BLE001 - a payload the tool cannot read names no record
        return None
    source_id = (key or "").rpartition(":")[2]
    return (row.source, source_id) if source_id.isdigit() else None


def _dead_letters(s: Session, links: Links) -> list[dict[str, Any]]:
    """Records the sync could not map (unresolved), with the reason."""
    rows = list(s.scalars(select(DeadLetter).where(
        DeadLetter.resolved_at.is_(None), DeadLetter.stream != "webhook")
        .order_by(DeadLetter.id.desc()).limit(RECENT_ROWS)))
    tools = {r.source: _tool_of(r.source) for r in rows}
    found = {tool: links.records(tool, [r.source_id for r in rows if tools[r.source] == tool])
             for tool in set(tools.values()) if tool}
    return [{"source": r.source, "stream": r.stream, "at": _iso(r.created_at),
             "reason": r.reason,
             "record": found.get(tools[r.source] or "", {}).get(r.source_id)
             or {"label": r.source_id, "url": None}}
            for r in rows]


def _tool_of(source: str) -> str | None:
    try:
        return registry.for_source(source).name
    except KeyError:
        return None


def _written_today(s: Session, since: datetime, links: Links) -> list[dict[str, Any]]:
    """Per automation, what the ledger says was written back since ``since``."""
    rows = list(s.scalars(select(ActionLedger).where(
        ActionLedger.status == "done",
        or_(ActionLedger.updated_at >= since,
            ActionLedger.updated_at.is_(None) & (ActionLedger.created_at >= since)))
        .order_by(ActionLedger.id)))
    groups: dict[str, list[ActionLedger]] = {}
    for row in rows:
        groups.setdefault(writebacks.automation_of(row.rule_id), []).append(row)
    refs = {name: writebacks.refs(these) for name, these in groups.items()}
    wanted: dict[str, set[str]] = {}
    for found in refs.values():
        for ref in found:
            if ref.tool and ref.source_id:
                wanted.setdefault(ref.tool, set()).add(ref.source_id)
    records = {tool: links.records(tool, ids) for tool, ids in wanted.items()}
    out = []
    for automation in sorted(groups, key=lambda g: (len(g), g)):
        these = groups[automation]
        out.append({"automation": automation,
                    "rules": sorted({r.rule_id or "—" for r in these}),
                    "effects": len(these),
                    "written": writebacks.written(these, every_effect=True),
                    "refs": [links.ref(ref, records.get(ref.tool or "", {}))
                             for ref in refs[automation]]})
    return out


def _quota(db: Database, here: dict[str, Any]) -> dict[str, Any]:
    """This process's reports merged with what every process stored (jobs/quota.py)."""
    try:
        shared = quotas.stored(db)
    except Exception:  # noqa: BLE001 - the page still shows this process's figures
        shared = {}
    return {tool: {**report, "reported": quotas.newest(
                [*shared.get(tool, []), *report.get("reported", [])])}
            for tool, report in here.items()}
