"""`quota_budget.py`'s comparison: saeko-sync's Podio calls in the busiest hour beside what the
designs users would pick instead would spend on the same hour of work, and the floor.

Everything is computed from what the same run counted — the sandbox's call counter and
webhook log, and the store's ledger and rule runs of the hour — not from fixed numbers:

- *notices*: the Podio webhook deliveries of the hour (item.create/update/delete), per app
  (the hook's app);
- *trigger matches* of a rule: its rule runs of the hour (one per change that matched one of
  its triggers, whether or not its conditions then held; resumed runs left out);
- *effects* of a rule: its ledger rows done in the hour with a Podio action (an update, a
  comment, a task): one Podio call each when every automation writes on its own.

The models (per hour; an "automation" is one enabled rule; a rule is *Podio-triggered* when
its entity is a Podio app and it has event triggers — rules triggered by Jira, the forms,
the usage sheet or a schedule read nothing from Podio here, which favours the peers):

- **per-automation polling** (Zapier/Make style), every N minutes: each Podio-triggered
  automation polls its app (60/N filter calls) and reads each matching item (one GET per
  trigger match); every automation writes its own effects (one call per effect);
- **per-flow webhooks** (Podio Workflow Automation style): each Podio-triggered flow fetches
  the item on every hook of its app (one GET per notice of that app); one call per effect;
  no safety-net polling (PWA loses what a lost hook carried);
- **floor**, the calls no design can avoid: each distinct write (the Podio updates of one
  item for one event as one PUT, plus every comment and task) and, per app, one read per
  notice or one filter per safety-net period, whichever is fewer; the *floor at 1 s* reads
  every notice (a design that must act within a second cannot wait for a filter).

For 25 and 50 automations the shipped automations' per-automation figures are scaled
(k / shipped): the peers' reads and writes, the floor's writes and saeko-sync's writes
(no extra coalescing assumed); saeko-sync's reads (webhook fetches, polling, hooks,
authentication) and the floor's reads do not grow with automations (SPEC §9: flat in rules,
``sync_incremental.py`` (c)).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from core.settings import PODIO_DOCUMENTED_HOURLY_QUOTA
from rules import ledger as L
from rules.catalog import ENTITIES, PODIO_ENTITIES
from rules.config import RulesConfig
from rules.ruleset import load_rules
from store.models import ActionLedger, RuleRun

POLL_MINUTES = (5, 15)  # Zapier/Make polling intervals (plan-dependent: 1-15 minutes)
AUTOMATION_COUNTS = (25, 50)
ITEM_EVENTS = ("item.create", "item.update", "item.delete")


@dataclass
class HourCounts:
    """What the hour counted, per rule and per app."""

    automations: int  # enabled rules
    podio_triggered: dict[str, str]  # rule id -> its Podio app (by entity)
    matches: Counter[str]  # rule id -> trigger matches in the hour
    effects: Counter[str]  # rule id -> Podio effects done in the hour
    distinct_writes: int  # one per (item, event) update group + each comment and task
    notices: Counter[str]  # app -> Podio item deliveries in the hour


def count_hour(bench: Any, marks: dict[str, int]) -> HourCounts:
    """The hour's counts from the sandbox and the store (``marks``: ids at its start)."""
    config = RulesConfig.from_settings(bench.settings)
    ruleset = load_rules(config, bench.db)
    rules = [r for r in ruleset.rules.values() if r.enabled]
    triggered = {
        r.id: str(ENTITIES[r.entity].podio_app)
        for r in rules
        if r.entity in PODIO_ENTITIES and r.event_triggers
    }
    with bench.db.session() as session:
        matches = Counter(
            {
                str(rule): int(n)
                for rule, n in session.execute(
                    select(RuleRun.rule_id, func.count())
                    .where(RuleRun.id > marks["runs"], RuleRun.status != "reanudada")
                    .group_by(RuleRun.rule_id)
                )
            }
        )
        done = session.execute(
            select(
                ActionLedger.rule_id, ActionLedger.action, ActionLedger.target, ActionLedger.correlation_id
            ).where(
                ActionLedger.id > marks["ledger"],
                ActionLedger.status == L.DONE,
                ActionLedger.action.like("podio.%"),
            )
        ).all()
    effects = Counter(str(rule) for rule, _a, _t, _c in done)
    groups = {(target, corr) for _r, action, target, corr in done if action == "podio.actualizar"}
    others = sum(1 for _r, action, _t, _c in done if action != "podio.actualizar")
    return HourCounts(
        len(rules), triggered, matches, effects, len(groups) + others, _notices(bench, marks["deliveries"])
    )


def _notices(bench: Any, since: int) -> Counter[str]:
    app_of_hook = {
        h["hook_id"]: int(h["ref"]["id"]) for h in bench.tool("podio").hooks() if h["ref"]["type"] == "app"
    }
    names = {app_id: name for name, (app_id, _t) in bench.settings.podio_apps.items()}
    out: Counter[str] = Counter()
    for delivery in bench.box.webhooks.log[since:]:
        meta = delivery.get("meta") or {}
        if meta.get("type") in ITEM_EVENTS and delivery.get("result") == 200:
            out[names.get(app_of_hook.get(meta.get("hook_id"), 0), "?")] += 1
    return out


def comparison(
    counts: HourCounts, saeko_total: int, saeko_writes: int, safety_net_seconds: float
) -> list[list[Any]]:
    """Rows: design, automations, Podio calls, share of the quota, saeko-sync's calls as a
    ratio of the row's."""
    shipped = counts.automations
    effects = sum(counts.effects.values())
    saeko_reads = saeko_total - saeko_writes
    polls_per_app = 3600 / safety_net_seconds if safety_net_seconds else 12
    floor_reads = sum(min(n, polls_per_app) for n in counts.notices.values())
    notices = sum(counts.notices.values())
    rows: list[list[Any]] = []
    for k in (shipped, *AUTOMATION_COUNTS):
        scale = k / shipped
        saeko = saeko_reads + saeko_writes * scale
        label = f"{k} (shipped)" if k == shipped else str(k)
        designs = [
            ("saeko-sync (measured; writes scaled)" if k != shipped else "saeko-sync (measured)", saeko)
        ]
        for minutes in POLL_MINUTES:
            reads = sum(60 / minutes + counts.matches[r] for r in counts.podio_triggered)
            designs.append(
                (f"per-automation polling every {minutes} min (Zapier/Make)", (reads + effects) * scale)
            )
        hooks = sum(counts.notices[app] for app in counts.podio_triggered.values())
        designs.append(("per-flow webhooks (Podio Workflow Automation)", (hooks + effects) * scale))
        designs.append(
            ("floor at 1 s: distinct writes + one read per notice", counts.distinct_writes * scale + notices)
        )
        designs.append(
            (
                "floor: distinct writes + fewest reads (notice or safety-net filter)",
                counts.distinct_writes * scale + floor_reads,
            )
        )
        for name, calls in designs:
            rows.append(
                [
                    label,
                    name,
                    round(calls),
                    f"{calls / PODIO_DOCUMENTED_HOURLY_QUOTA:.1%}",
                    f"{saeko / calls:.2f}" if calls else "—",
                ]
            )
    return rows


def summary(counts: HourCounts) -> str:
    """One line: what the models were computed from."""
    return (
        f"{counts.automations} enabled automations, {len(counts.podio_triggered)} "
        f"triggered by Podio; notices {dict(counts.notices)}; trigger matches of the "
        f"Podio-triggered ones {sum(counts.matches[r] for r in counts.podio_triggered)}; "
        f"Podio effects done {sum(counts.effects.values())}; distinct writes "
        f"{counts.distinct_writes}"
    )
