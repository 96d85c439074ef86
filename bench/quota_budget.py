"""Benchmark: the quota budget of the running service in its busiest hour (SPEC section 9).

Runs `serve` (``jobs.service.Service``: webhook receiver, inbox worker, rules) against an
in-process sandbox holding the demo world, with Podio hooks registered (and Jira webhooks),
after the full first sync. Then simulated staff (``sandbox.activity.StaffSimulator``) do the
busiest hour of a working day through the tools' UIs: new tickets, answers, escalations,
tickets worked on (status, priority), Jira issues resolved, CSAT answers. The service works
as in production: each Podio/Jira event arrives as a webhook and is synced and evaluated at
once; the polling sync (+ rules) ticks every 5 minutes of activity, and reads Podio (and
Jira) only every ``SYNC_SAFETY_NET_SECONDS`` while their webhooks keep arriving
(``jobs.safety_net``: each tick is given its time in the hour). The sandbox counts every
call per endpoint; the script prints Podio's share of its hourly quota (target < 30 % of
1,000), the other services' use against their per-minute quotas, and saeko-sync's Podio calls
beside those of the designs users would pick instead — per-automation polling (Zapier/Make),
per-flow webhooks (Podio Workflow Automation) — and the floor, for the shipped automations
and for 25 and 50, all computed from the same hour's counts (the models: ``quota_peers.py``).

Time is compressed: each action gets a time in the hour (seeded, uniform: a Poisson-like
arrival), the actions run back to back in that order, and the polling tick runs after the
actions of each 5 minutes. Actions whose webhooks fall in one batching window
(``WEBHOOK_BATCH_SECONDS``, 30 s, from the first one) are played together and handled
before the next window; the service gathers their update notices as it would over those
30 s (its window is scaled down to ``REAL_BATCH_SECONDS`` of real time, so that they are
read together). The gathering only starts once the service's own Podio calls in its last
hour pass ``WEBHOOK_BATCH_ABOVE`` (20 %) of the quota — here from the start, since the
first sync's calls are in that hour (in a real busy hour, the previous hour's calls are).
The call counts are those of the hour; per-minute figures are bounded by the busiest
5-minute slice (as if all of it fell in one minute).

The busiest hour is the morning's, so it also holds the rules scheduled at 9:00 (M1's scores,
M2's renewal reminders, M6's digests and reminders, M13…): the hour's ticks run at the real
time of the run, so after them one rule cycle is run at the next working day's 9:05 (Monday
to Friday) in the department's zone — one day's worth of what the 9:00 rules find — and its
calls are added to the hour as their own cause and slice (``--no-morning`` leaves them out).
Before it, a cycle at 00:05 of that day does what the first cycle after midnight does (M1's
scores that change with the date, T5's timers…); its calls are printed, not counted in the
hour (nobody works at midnight: it is not the busiest hour).
A Monday adds the weekly rules and the first working day of a month the monthly ones (M10,
M11, M12: mostly Gmail and Sheets; M11's tasks in Podio).

The day (SPEC §9: "hundreds of new tickets, a thousand updates, survey answers") and the
busiest hour's share of it are flags; ``--peak-share 1`` puts the whole day into one hour
(a stress reading, far beyond what 2,000 clients produce: ~240 new tickets per day).

To measure demand rather than throttling, the Podio limits of the sandbox and of the
service's client-side limiter are raised for the run (the figures are compared with the
documented 1,000 calls/hour); with the real limits the client would hold calls at 900/hour.

    .venv/bin/python bench/quota_budget.py                       # 300 clients, peak hour
    .venv/bin/python bench/quota_budget.py --clients 2000
    .venv/bin/python bench/quota_budget.py --peak-share 1        # the whole day in an hour
"""

from __future__ import annotations

import argparse
import random
import socket
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from quota_peers import comparison, count_hour
from quota_peers import summary as peers_summary
from sqlalchemy import func, select
from sync_common import Bench, console, machine, quiet_logs, running_bench, table

from core.settings import PODIO_DOCUMENTED_HOURLY_QUOTA, Settings
from jobs.hooks import register_hooks
from jobs.safety_net import META_KEY as SAFETY_NET_KEY
from jobs.service import Service
from rules import api
from rules import ledger as L
from rules.engine import run_cycle
from sandbox.activity import StaffSimulator
from store.db import utcnow
from store.models import ActionLedger, JobRun, RuleRun, StoreMeta, WebhookInbox

# A working day of the 2,000-client department (SPEC §3: ~30 tickets per client and year,
# ~250 working days -> ~240 new tickets a day; SPEC §9: "hundreds of new tickets, a
# thousand updates, survey answers").
DAY = {"new_ticket": 300, "updates": 1000, "csat": 150, "resolve_jira": 60}
# Updates split: answers and escalations of new tickets (SPEC §3: ~20 % escalated), the rest
# agents working open tickets (status along, priority).
ANSWER_SHARE, ESCALATE_SHARE = 0.6, 0.2
# Share of the day in its busiest hour: business hours 9-18 with a morning peak; the
# world's arrival profile puts ~16 % of a day's tickets in its busiest hour.
PEAK_SHARE = 0.16
CYCLES_PER_HOUR = 12  # the polling sync every 5 minutes (SYNC_INTERVAL_SECONDS=300)
# The service's batching window of update notices (WEBHOOK_BATCH_SECONDS, default), in the
# hour's simulated time, and the real seconds the bench's service waits for one.
BATCH_WINDOW = float(Settings.model_fields["webhook_batch_seconds"].default)
REAL_BATCH_SECONDS = 0.3
SETTLE_SECONDS = 15.0  # longest wait for one action's webhooks to be handled
RAISED_LIMIT = 1_000_000  # Podio limits during the run: measure demand, not throttling
# Google per-minute, per-user quotas (reference google-apis.md; SPEC §9).
GOOGLE_QUOTAS = {"Sheets reads": 60, "Sheets writes": 60, "Forms responses.list": 180,
                 "Gmail units": 15_000, "Calendar": 600}
GMAIL_SEND_UNITS = 100  # Gmail quota units per messages.send (reference google-apis.md)
WEBHOOK_TOKEN = "bench-quota-" + "t" * 24


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--peak-share", type=float, default=PEAK_SHARE,
                        help="share of the day's activity in its busiest hour (1 = all of it)")
    for key, value in DAY.items():
        parser.add_argument(f"--day-{key.replace('_', '-')}", type=int, default=value)
    parser.add_argument("--no-jira-webhooks", action="store_true",
                        help="Jira changes only by polling (no admin webhook registered)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--safety-net", type=float,
                        default=Settings.model_fields["sync_safety_net_seconds"].default,
                        help="SYNC_SAFETY_NET_SECONDS for the run (default: the setting's)")
    parser.add_argument("--batch-window", type=float, default=BATCH_WINDOW,
                        help="WEBHOOK_BATCH_SECONDS modelled in the hour (default: the setting's)")
    parser.add_argument("--no-morning", action="store_true",
                        help="leave out the rules scheduled at 9:00 (the morning batch)")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    quiet_logs()
    console.print(f"[bold]quota_budget[/bold] · {machine()}")
    plan = _plan(args)
    port = _free_port()
    with running_bench(args.clients, args.database_url, live_clock=True, _env_file=None,
                       webhook_token=WEBHOOK_TOKEN, public_url=f"http://127.0.0.1:{port}",
                       sync_interval_seconds=3600, rules_interval_seconds=3600,
                       sync_safety_net_seconds=args.safety_net,
                       podio_rate_limit_per_hour=RAISED_LIMIT,
                       webhook_batch_seconds=REAL_BATCH_SECONDS) as bench:
        bench.tool("podio").set_quota(RAISED_LIMIT)
        console.print(f"world: {bench.box.world.summary()}; store {bench.db.engine.dialect.name}")
        service = Service(bench.settings, bench.db, port=port)
        try:
            _prepare(bench, service, with_jira=not args.no_jira_webhooks)
            slices, simulator, seconds = _busy_hour(bench, service, plan, args.seed,
                                                    args.batch_window)
            if not args.no_morning:
                slices.append(_morning(bench, service))
            _report(bench, service, slices, simulator, seconds, args)
        finally:
            service.shutdown()


# --- the hour ------------------------------------------------------------------------------


def _plan(args: argparse.Namespace) -> list[str]:
    """The busiest hour's actions, in a shuffled (seeded) order."""
    share = args.peak_share
    new = round(args.day_new_ticket * share)
    updates = round(args.day_updates * share)
    answers, escalations = round(new * ANSWER_SHARE), round(new * ESCALATE_SHARE)
    counts = {"new_ticket": new, "answer": answers, "escalate": escalations,
              "work": max(0, updates - answers - escalations),
              "csat": round(args.day_csat * share),
              "resolve_jira": round(args.day_resolve_jira * share)}
    # A quarter of the new tickets lead, so that answers and escalations find tickets.
    lead = new // 4
    rest = [action for action, n in counts.items()
            for _ in range(n - lead if action == "new_ticket" else n)]
    random.Random(args.seed).shuffle(rest)
    plan = ["new_ticket"] * lead + rest
    console.print(f"busiest hour ({share:.0%} of the day): {dict(counts)}")
    return plan


def _prepare(bench: Bench, service: Service, *, with_jira: bool) -> None:
    """Full first sync, the rule cycles over its events, the service started with hooks."""
    started = time.perf_counter()
    service.sync_job_now()
    for _ in range(200):  # the first sync's change events, 5,000 per rule cycle
        if run_cycle(bench.settings, bench.db, runtime=service.runtime).events == 0:
            break
    # Switching the rules on in a large world trips the storm guard (M1 scores every client
    # at once); the admin approves once (`saeko-sync rules approve`) and the backlog goes out
    # before the measured hour, as it would in the first hours after switching on.
    approved, sent = api.approve(bench.db), 0
    for _ in range(50):
        report = run_cycle(bench.settings, bench.db, runtime=service.runtime)
        done = sum(o.done for o in report.rules.values())
        sent += done
        if done == 0:
            break
    console.print(f"switch-on: {approved} runs held by the storm guard approved, {sent} "
                  f"effects sent before the hour")
    service.start()
    _wait(lambda: _count(bench, JobRun, JobRun.job == "sync", JobRun.finished_at.isnot(None)),
          "the service's first scheduled sync")
    register_hooks(bench.settings, service.runtime)
    podio = bench.tool("podio")
    _wait(lambda: all(h["status"] == "active" for h in podio.hooks()), "Podio hooks verified")
    if with_jira:
        bench.tool("jira").register_webhook(
            f"{bench.settings.public_url}/hooks/jira/{WEBHOOK_TOKEN}")
    _settle(bench)
    console.print(f"first sync, catch-up rule cycles and hooks: "
                  f"{time.perf_counter() - started:.0f} s")


def _busy_hour(bench: Bench, service: Service, plan: list[str], seed: int,
               window: float) -> tuple[list[dict[str, Counter[str]]], StaffSimulator, float]:
    """Run the plan at its times in the hour, a polling tick after each 5 minutes, the
    actions of one batching window together; the calls of each 5-minute slice."""
    simulator = StaffSimulator(bench.box, seed=seed)
    clock = random.Random(seed + 1)
    times = sorted(clock.uniform(0, 3600) for _ in plan)
    bench.box.calls.reset()
    bench.polling = Counter()  # Podio calls made by the polling ticks themselves
    bench.marks = {"ledger": _last_id(bench, ActionLedger), "runs": _last_id(bench, RuleRun),
                   "deliveries": len(bench.box.webhooks.log)}
    slices: list[dict[str, Counter[str]]] = []
    started = time.perf_counter()
    hour_start = utcnow()
    tick = 3600 / CYCLES_PER_HOUR
    for number in range(CYCLES_PER_HOUR):
        before = _snapshot(bench)
        timed = [(t, a) for t, a in zip(times, plan, strict=True)
                 if number * tick <= t < (number + 1) * tick]
        for group in _windows(timed, window):
            for action in group:
                simulator.act(action)
            _settle(bench)
        ticking = _snapshot(bench).get("podio", Counter())
        at = hour_start + timedelta(minutes=5 * (number + 1))
        service.sync_job_now(now=at)
        if _polled(bench, "podio", at):  # else every filter meanwhile was a gathered one
            bench.polling.update(_snapshot(bench).get("podio", Counter()) - ticking)
            bench.marks["podio_polls"] = bench.marks.get("podio_polls", 0) + 1
        _settle(bench)
        after = _snapshot(bench)
        slices.append({tool: after[tool] - before.get(tool, Counter()) for tool in after})
    return slices, simulator, time.perf_counter() - started


def _morning(bench: Bench, service: Service) -> dict[str, Counter[str]]:
    """One rule cycle at the next working day's 9:05 local time: the calls of the rules
    scheduled at 9:00 (recorded in ``bench.morning`` for the report)."""
    zone = ZoneInfo(bench.settings.timezone)
    day = datetime.now(zone).date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    console.print("the first cycle after midnight (not counted in the hour):")
    _cycle_at(bench, service, datetime(day.year, day.month, day.day, 0, 5, tzinfo=zone))
    console.print("the 9:00 rules (counted in the hour):")
    part = _cycle_at(bench, service, datetime(day.year, day.month, day.day, 9, 5, tzinfo=zone))
    bench.morning = part.get("podio", Counter())
    return part


def _cycle_at(bench: Bench, service: Service, at: datetime) -> dict[str, Counter[str]]:
    """One rule cycle at ``at`` (local): the calls it made per tool, and what fired, printed."""
    before = _snapshot(bench)
    for _attempt in range(30):  # the service's worker may be holding the rules' lease
        report = run_cycle(bench.settings, bench.db,
                           now=at.astimezone(UTC).replace(tzinfo=None), runtime=service.runtime)
        if not report.skipped:
            break
        time.sleep(1)
    _settle(bench)
    after = _snapshot(bench)
    part = {tool: after[tool] - before.get(tool, Counter()) for tool in after}
    fired = [line for line in report.lines() if " 0 efectos" not in line][:12]
    console.print(f"rule cycle at {at:%a %d/%m %H:%M} ({bench.settings.timezone}): "
                  f"{sum(part.get('podio', Counter()).values())} Podio calls; "
                  f"{'; '.join(fired)[:900]}")
    return part


def _polled(bench: Bench, source: str, at: Any) -> bool:
    """Whether the tick at ``at`` polled ``source`` (jobs.safety_net's record of it)."""
    with bench.db.session() as session:
        row = session.get(StoreMeta, SAFETY_NET_KEY)
        state = ((row.value or {}) if row else {}).get(source) or {}
    return bool(state.get("polled_at") == at.isoformat())


def _windows(timed: list[tuple[float, str]], window: float) -> list[list[str]]:
    """The actions grouped by batching window: each group starts at an action and holds
    those within ``window`` seconds of it."""
    groups: list[list[str]] = []
    start = -window
    for moment, action in timed:
        if moment - start >= window:
            groups.append([])
            start = moment
        groups[-1].append(action)
    return groups


def _settle(bench: Bench) -> None:
    """Wait until every webhook was delivered and the service handled it."""
    bench.box.webhooks.wait_idle(SETTLE_SECONDS)
    _wait(lambda: _count(bench, WebhookInbox, WebhookInbox.status == "pending") == 0,
          "the inbox to drain", fatal=False)


# --- the report --------------------------------------------------------------------------


def _report(bench: Bench, service: Service, slices: list[dict[str, Counter[str]]],
            simulator: StaffSimulator, seconds: float, args: argparse.Namespace) -> None:
    hour: dict[str, Counter[str]] = {}
    for part in slices:
        for tool, counts in part.items():
            hour.setdefault(tool, Counter()).update(counts)
    podio = hour.get("podio", Counter())
    deliveries = sum(1 for d in bench.box.webhooks.log[bench.marks["deliveries"]:]
                     if d.get("result") == 200)
    console.print(f"\nhour simulated in {seconds:.0f} s of real time · actions done: "
                  f"{dict(simulator.done)} · webhook deliveries handled: {deliveries} · "
                  f"ticks that polled Podio: {bench.marks.get('podio_polls', 0)} of "
                  f"{CYCLES_PER_HOUR}")
    used = sum(podio.values())
    by_cause: Counter[str] = Counter()
    morning = bench.morning
    if morning:
        by_cause["rules scheduled at 9:00 (M1, M2, M6, M11, M13…)"] = sum(morning.values())
    for endpoint, n in podio.items():
        n -= morning.get(endpoint, 0)
        polled = min(n, bench.polling.get(endpoint, 0)) if "/filter" in endpoint else 0
        if polled:
            by_cause["polling sync (filter)"] += polled
        if n - polled:
            by_cause[_podio_cause(endpoint)] += n - polled
    table(f"Podio calls in the busiest hour — target < 30 % of "
          f"{PODIO_DOCUMENTED_HOURLY_QUOTA:,} per hour",
          ["cause", "calls", "share of quota"],
          [[cause, n, f"{n / PODIO_DOCUMENTED_HOURLY_QUOTA:.1%}"]
           for cause, n in by_cause.most_common()]
          + [["total", used, f"{used / PODIO_DOCUMENTED_HOURLY_QUOTA:.1%}"]])
    table("Podio calls by endpoint", ["endpoint", "calls"],
          [[endpoint, n] for endpoint, n in podio.most_common()])
    table("Other services (per-minute quotas: the busiest 5-minute slice, as if it all fell "
          "in one minute)", ["quota", "calls in the hour", "busiest slice", "per-minute quota",
                             "share"], _google_rows(slices) + _jira_rows(slices))
    table("Effects written back in the hour (action ledger)", ["rule", "action", "done"],
          _effects(bench))
    counts = count_hour(bench, bench.marks)
    console.print(f"\npeers' models computed from the hour: {peers_summary(counts)}")
    table("Podio calls in the same hour: saeko-sync vs the designs users would pick instead "
          "and the floor (models: bench/quota_peers.py)",
          ["automations", "design", "Podio calls", "share of 1,000/h", "saeko-sync ÷ this"],
          comparison(counts, used, by_cause["write-back (rules' effects)"],
                     bench.settings.sync_safety_net_seconds))
    console.print(f"status page quota (the service's own Podio client, last hour, includes "
                  f"the set-up): {service.quota()}")


def _podio_cause(endpoint: str) -> str:
    method, _space, path = endpoint.partition(" ")
    if path.startswith("/item/{item_id") and method == "GET":
        return "webhook: fetch the changed item"
    if "/filter" in path:  # outside the polling ticks: gathered update notices
        return "webhooks: one filter per app for gathered update notices"
    if path.startswith("/oauth"):
        return "authentication"
    if path.startswith("/hook"):
        return "hooks (verify, register)"
    return "write-back (rules' effects)"


def _google_kind(endpoint: str) -> tuple[str, int] | None:
    method, _space, path = endpoint.partition(" ")
    if "spreadsheets" in path:
        return ("Sheets reads", 1) if method == "GET" else ("Sheets writes", 1)
    if "/forms/" in path and path.endswith("/responses"):
        return "Forms responses.list", 1
    if "gmail" in path:
        return "Gmail units", GMAIL_SEND_UNITS if method == "POST" else 5
    if "calendar" in path:
        return "Calendar", 1
    return None


def _google_rows(slices: list[dict[str, Counter[str]]]) -> list[list[Any]]:
    per_slice: list[Counter[str]] = []
    for part in slices:
        kinds: Counter[str] = Counter()
        for endpoint, n in part.get("google", Counter()).items():
            kind = _google_kind(endpoint)
            if kind is not None:
                kinds[kind[0]] += n * kind[1]
        per_slice.append(kinds)
    rows: list[list[Any]] = []
    for name, quota in GOOGLE_QUOTAS.items():
        total = sum(part[name] for part in per_slice)
        busiest = max((part[name] for part in per_slice), default=0)
        rows.append([name, total, busiest, quota, f"{busiest / quota:.1%}"])
    return rows


def _jira_rows(slices: list[dict[str, Counter[str]]]) -> list[list[Any]]:
    totals = [sum(part.get("jira", Counter()).values()) for part in slices]
    return [["Jira (no fixed quota: 429 + Retry-After)", sum(totals), max(totals, default=0),
             "—", "—"]]


def _effects(bench: Bench) -> list[list[Any]]:
    """Effects per rule and action; and how many Podio updates went to an item another
    rule had updated for the same event (one merged PUT could have carried both)."""
    with bench.db.session() as session:
        done = (ActionLedger.status == L.DONE, ActionLedger.id > bench.marks["ledger"])
        rows = session.execute(select(ActionLedger.rule_id, ActionLedger.action, func.count())
                               .where(*done).group_by(ActionLedger.rule_id, ActionLedger.action)
                               .order_by(ActionLedger.rule_id)).all()
        updates = session.execute(select(ActionLedger.target, ActionLedger.correlation_id,
                                         ActionLedger.rule_id)
                                  .where(*done, ActionLedger.action == "podio.actualizar")).all()
    out: list[list[Any]] = [[rule, action, n] for rule, action, n in rows]
    same_event: dict[tuple[Any, Any], list[str]] = {}
    for target, correlation, rule in updates:
        same_event.setdefault((target, correlation), []).append(str(rule))
    pairs = Counter(" + ".join(sorted(rules)) for rules in same_event.values() if len(rules) > 1)
    for rules, n in pairs.most_common():
        out.append([f"(one item, one event, several updates: {rules})", "podio.actualizar",
                    n * (rules.count("+"))])
    return out or [["(none)", "", 0]]


# --- helpers -----------------------------------------------------------------------------


def _snapshot(bench: Bench) -> dict[str, Counter[str]]:
    return {tool: Counter(counts) for tool, counts in bench.box.calls.snapshot().items()}


def _last_id(bench: Bench, model: Any) -> int:
    with bench.db.session() as session:
        return int(session.scalar(select(func.max(model.id))) or 0)


def _count(bench: Bench, model: Any, *where: Any) -> int:
    with bench.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _wait(check: Any, what: str, *, timeout: float = 120.0, fatal: bool = True) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            if fatal:
                raise SystemExit(f"gave up waiting for {what} after {timeout:.0f} s")
            console.print(f"[yellow]still waiting for {what} after {timeout:.0f} s[/yellow]")
            return
        time.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    main()
