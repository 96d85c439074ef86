"""The normalized model (SPEC section 4). Times are UTC; every synced row keeps its source
id, source revision and source update time; deletions are marked, not forgotten."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Synced:
    """Columns shared by every row that mirrors a record in a tool."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    source_id: Mapped[str] = mapped_column(String(64))
    source_revision: Mapped[str | None] = mapped_column(String(64))
    source_updated_at: Mapped[datetime | None] = mapped_column(DateTime)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)
    synced_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:  # noqa: N805
        name = getattr(cls, "__tablename__", "synced")
        return (UniqueConstraint("source", "source_id", name=f"uq_{name}_source"),)


class Staff(Base):
    """Saeko's own people (COO, AMs, CSMs, agents), from config/staff.yaml."""

    __tablename__ = "staff"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    podio_user_id: Mapped[int | None] = mapped_column(BigInteger)
    podio_profile_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    jira_account_id: Mapped[str | None] = mapped_column(String(128))
    region: Mapped[str | None] = mapped_column(String(40))
    capacity: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Client(Synced, Base):
    __tablename__ = "clients"
    name: Mapped[str | None] = mapped_column(String(300))
    segment: Mapped[str | None] = mapped_column(String(40))
    burbuja: Mapped[bool | None] = mapped_column(Boolean)
    am_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    csm_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    product: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str | None] = mapped_column(String(40))
    region: Mapped[str | None] = mapped_column(String(40))
    signed_on: Mapped[date | None] = mapped_column(Date)
    onboarding_done_on: Mapped[date | None] = mapped_column(Date)
    decision_maker: Mapped[str | None] = mapped_column(String(300))
    mrr: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    health_score: Mapped[float | None] = mapped_column(Float)
    health_band: Mapped[str | None] = mapped_column(String(40))
    health_reasons: Mapped[str | None] = mapped_column(Text)
    decision_maker_since: Mapped[date | None] = mapped_column(Date)


class School(Synced, Base):
    __tablename__ = "schools"
    name: Mapped[str | None] = mapped_column(String(300))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"), index=True)
    client_source_id: Mapped[str | None] = mapped_column(String(64))
    level: Mapped[str | None] = mapped_column(String(60))
    city: Mapped[str | None] = mapped_column(String(100))


class Contact(Synced, Base):
    """A client's user (Podio app Usuarios)."""

    __tablename__ = "contacts"
    name: Mapped[str | None] = mapped_column(String(300))
    email: Mapped[str | None] = mapped_column(String(200), index=True)
    phone: Mapped[str | None] = mapped_column(String(60))
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"), index=True)
    school_source_id: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[str | None] = mapped_column(String(40))
    # M4: the contact asked not to be surveyed (Podio «no-encuestar»).
    no_survey: Mapped[bool | None] = mapped_column(Boolean)


class Ticket(Synced, Base):
    __tablename__ = "tickets"
    title: Mapped[str | None] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text)
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id"), index=True)
    school_source_id: Mapped[str | None] = mapped_column(String(64))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    contact_source_id: Mapped[str | None] = mapped_column(String(64))
    burbuja: Mapped[bool | None] = mapped_column(Boolean)
    am_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    csm_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    responsible_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    product: Mapped[str | None] = mapped_column(String(100))
    module: Mapped[str | None] = mapped_column(String(60))
    channel: Mapped[str | None] = mapped_column(String(40))
    priority: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str | None] = mapped_column(String(40), index=True)
    # When the ticket took its current status, by the tool's clock (store.sync.upsert).
    status_since: Mapped[datetime | None] = mapped_column(DateTime)
    jira_key: Mapped[str | None] = mapped_column(String(40), index=True)
    answer: Mapped[str | None] = mapped_column(Text)
    reporter_email: Mapped[str | None] = mapped_column(String(200))
    opened_at: Mapped[datetime | None] = mapped_column(DateTime)
    first_response_at: Mapped[datetime | None] = mapped_column(DateTime)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)
    first_response_hours: Mapped[float | None] = mapped_column(Float)
    close_hours: Mapped[float | None] = mapped_column(Float)
    incident_hours: Mapped[float | None] = mapped_column(Float)
    rating: Mapped[float | None] = mapped_column(Float)


class Incident(Synced, Base):
    """A Jira issue (source 'jira', source_id = issue id)."""

    __tablename__ = "incidents"
    key: Mapped[str] = mapped_column(String(40), index=True)
    project: Mapped[str | None] = mapped_column(String(20))
    issue_type: Mapped[str | None] = mapped_column(String(60))
    summary: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str | None] = mapped_column(String(60))
    status_category: Mapped[str | None] = mapped_column(String(20))
    resolution: Mapped[str | None] = mapped_column(String(100))
    priority: Mapped[str | None] = mapped_column(String(40))
    assignee: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime | None] = mapped_column(DateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    ticket_source_id: Mapped[str | None] = mapped_column(String(64), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)


class IncidentStatusChange(Base):
    __tablename__ = "incident_status_changes"
    __table_args__ = (UniqueConstraint("incident_id", "history_id", name="uq_incident_history"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    history_id: Mapped[str] = mapped_column(String(64))
    from_status: Mapped[str | None] = mapped_column(String(60))
    to_status: Mapped[str | None] = mapped_column(String(60))
    to_category: Mapped[str | None] = mapped_column(String(20))
    changed_at: Mapped[datetime] = mapped_column(DateTime)
    author: Mapped[str | None] = mapped_column(String(200))


class SurveyResponse(Synced, Base):
    """A CSAT, NPS or micro-survey answer (source 'forms')."""

    __tablename__ = "survey_responses"
    kind: Mapped[str] = mapped_column(String(20), index=True)
    form_id: Mapped[str | None] = mapped_column(String(100))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime)
    score: Mapped[float | None] = mapped_column(Float)
    comment: Mapped[str | None] = mapped_column(Text)
    ticket_source_id: Mapped[str | None] = mapped_column(String(64), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    email: Mapped[str | None] = mapped_column(String(200))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"))


class Contract(Synced, Base):
    __tablename__ = "contracts"
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"), index=True)
    client_source_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str | None] = mapped_column(String(40))
    starts_on: Mapped[date | None] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    status: Mapped[str | None] = mapped_column(String(40))


class Invoice(Synced, Base):
    __tablename__ = "invoices"
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"), index=True)
    client_source_id: Mapped[str | None] = mapped_column(String(64))
    folio: Mapped[str | None] = mapped_column(String(60))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    due_on: Mapped[date | None] = mapped_column(Date)
    paid_on: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str | None] = mapped_column(String(40))


class CheckIn(Synced, Base):
    """An account follow-up by an AM (Podio app Seguimientos): check-in, review, call."""

    __tablename__ = "check_ins"
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"), index=True)
    client_source_id: Mapped[str | None] = mapped_column(String(64))
    happened_at: Mapped[datetime | None] = mapped_column(DateTime)
    kind: Mapped[str | None] = mapped_column(String(60))
    am_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    notes: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(String(40))


class UsageMetric(Synced, Base):
    """One weekly usage row per client (source 'sheets', source_id = client:week)."""

    __tablename__ = "usage_metrics"
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"), index=True)
    client_key: Mapped[str | None] = mapped_column(String(64))
    week_start: Mapped[date | None] = mapped_column(Date)
    active_users: Mapped[int | None] = mapped_column(Integer)
    logins: Mapped[int | None] = mapped_column(Integer)
    key_features: Mapped[int | None] = mapped_column(Integer)


class Meeting(Synced, Base):
    """A Calendar event saeko-sync created or tracks (source 'calendar')."""

    __tablename__ = "meetings"
    kind: Mapped[str | None] = mapped_column(String(40))
    title: Mapped[str | None] = mapped_column(String(300))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    starts_at: Mapped[datetime | None] = mapped_column(DateTime)
    ends_at: Mapped[datetime | None] = mapped_column(DateTime)
    status: Mapped[str | None] = mapped_column(String(40))


class Task(Synced, Base):
    """A Podio task (source 'podio', source_id = task_id): the automations' and people's,
    for the task-completion and at-risk KPIs (store/kpis). ``external_id`` is the marker an
    automation's task carries (the action ledger's idempotency key)."""

    __tablename__ = "tasks"
    text: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str | None] = mapped_column(String(20))  # active | completed
    due_on: Mapped[date | None] = mapped_column(Date, index=True)
    responsible_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    ref_type: Mapped[str | None] = mapped_column(String(20))
    ref_id: Mapped[str | None] = mapped_column(String(64))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"))
    external_id: Mapped[str | None] = mapped_column(String(300), index=True)
    created_at: Mapped[datetime | None] = mapped_column(DateTime)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)


# --- the engine's own tables ---------------------------------------------------------


class SyncState(Base):
    """Cursor and last outcome per (source, stream). A cursor moves only after its rows commit."""

    __tablename__ = "sync_state"
    __table_args__ = (UniqueConstraint("source", "stream", name="uq_sync_state"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    stream: Mapped[str] = mapped_column(String(60))
    cursor: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    last_started_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The end of the stream's last successful run: how fresh its rows are (status page).
    last_ok_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_status: Mapped[str | None] = mapped_column(String(20))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ChangeEvent(Base):
    """A change seen by a sync or a webhook: what event rules evaluate."""

    __tablename__ = "change_events"
    __table_args__ = (Index("ix_change_events_pending", "processed_at", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))  # created | updated | deleted
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # field -> [old, new]
    own_write: Mapped[bool] = mapped_column(Boolean, default=False)
    correlation_id: Mapped[str | None] = mapped_column(String(64))
    # When the change happened, by the tool's clock (the record's update time in the
    # revision where it was seen); seen_at is when saeko-sync saw it.
    changed_at: Mapped[datetime | None] = mapped_column(DateTime)
    seen_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    processed_at: Mapped[datetime | None] = mapped_column(DateTime)


class ActionLedger(Base):
    """Every effect, recorded under its idempotency key before it is sent."""

    __tablename__ = "action_ledger"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    rule_id: Mapped[str | None] = mapped_column(String(100), index=True)
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), index=True)  # pending|sent|done|failed|dead|held
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    external_ref: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    correlation_id: Mapped[str | None] = mapped_column(String(64), index=True)
    run_id: Mapped[int | None] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)


class RuleRun(Base):
    """One evaluation of one rule on one entity, with its trace."""

    __tablename__ = "rule_runs"
    __table_args__ = (Index("ix_rule_runs_rule_entity", "rule_id", "entity_id"),
                      Index("ix_rule_runs_matched_started", "matched", "started_at"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(100))
    rule_hash: Mapped[str | None] = mapped_column(String(64))
    trigger: Mapped[str | None] = mapped_column(String(200))
    entity: Mapped[str | None] = mapped_column(String(40))
    entity_id: Mapped[int | None] = mapped_column(Integer)
    correlation_id: Mapped[str | None] = mapped_column(String(64), index=True)
    matched: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20))
    trace: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


class RuleTimer(Base):
    """A pending 'held for' timer: fires when the state held long enough (survives restarts)."""

    __tablename__ = "rule_timers"
    __table_args__ = (UniqueConstraint("rule_id", "entity_id", name="uq_rule_timer"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(100))
    entity: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[int] = mapped_column(Integer)
    since: Mapped[datetime] = mapped_column(DateTime)
    due_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    fired_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The «una_vez_por» value it fired for: a rule with one fires again, while the state
    # holds, when that value changes (M1: a new score while Podio still shows another).
    fired_key: Mapped[str | None] = mapped_column(String(500))


class RuleState(Base):
    """Per rule: the last good version of its file (kept running while an edit is broken),
    the problems of the current file, and its schedule state (last slot fired per trigger)."""

    __tablename__ = "rule_state"
    rule_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    path: Mapped[str] = mapped_column(String(300), index=True)
    good_hash: Mapped[str | None] = mapped_column(String(64))
    good_text: Mapped[str | None] = mapped_column(Text)
    problems: Mapped[list[Any] | None] = mapped_column(JSON)
    state: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)


class RuleEventRetry(Base):
    """A change event a rule could not evaluate (the rule raised): kept for that rule and
    tried again with back-off, while every other rule has gone on."""

    __tablename__ = "rule_event_retries"
    __table_args__ = (UniqueConstraint("rule_id", "event_id", name="uq_rule_event_retry"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(100), index=True)
    event_id: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)  # None: gave up
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class StoreMeta(Base):
    """Facts about this store itself, by key (e.g. when its rules were switched on)."""

    __tablename__ = "store_meta"
    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)


class WebhookInbox(Base):
    """Every accepted webhook delivery, stored before it is acknowledged."""

    __tablename__ = "webhook_inbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    delivery_key: Mapped[str] = mapped_column(String(200), unique=True)
    event_type: Mapped[str | None] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), index=True)  # pending|done|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime)
    received_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    processed_at: Mapped[datetime | None] = mapped_column(DateTime)


class DeadLetter(Base):
    """A record that could not be mapped, with the reason; the sync went on without it."""

    __tablename__ = "dead_letters"
    __table_args__ = (UniqueConstraint("source", "stream", "source_id", name="uq_dead_letter"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    stream: Mapped[str] = mapped_column(String(60))
    source_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)


class JobRun(Base):
    """The record of one period of one scheduled job (who ran it, how it ended). Mutual
    exclusion is the job's lease (jobs.leases.hold), which dies with its holder: a period
    left ``running`` by a dead holder is taken over at once by the next replica's tick."""

    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job", "period", name="uq_job_run_period"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job: Mapped[str] = mapped_column(String(100))
    period: Mapped[str] = mapped_column(String(40))
    holder: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(20))  # running | ok | failed | skipped
    detail: Mapped[str | None] = mapped_column(Text)
