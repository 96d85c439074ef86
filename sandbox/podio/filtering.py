"""POST /item/app/{app_id}/filter/ (reference §5.3): filters, sort, limit/offset."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.podio.errors import PodioError
from sandbox.podio.model import Item, RawValues
from sandbox.podio.schema import AppDef, FieldDef
from sandbox.podio.store import View
from sandbox.podio.values import calculation, local_to_utc, parse_timestamp, utc_to_local

DEFAULT_LIMIT = 30  # documented default page size (§5.3)
MAX_LIMIT = 500  # documented maximum; above it the sandbox answers 400 (clamp-or-400 unverified)
_RELATIVE_RE = re.compile(r"^([+-]\d+)([dwmy])$")
_RELATIVE_DAYS = {"d": 1, "w": 7, "m": 30, "y": 365}  # months/years approximated
_META_DATES = {"created_on": lambda i: i.created_on, "last_edit_on": lambda i: i.last_edit_on}
_ID_TYPES = ("category", "app", "contact")
_RANGE_TYPES = ("number", "money", "calculation", "date")

Predicate = Callable[[Item], bool]


def _bound(value: Any, now: datetime, upper: bool, key: str) -> datetime | None:
    """A range bound as naive UTC; a date-only upper bound covers its whole day."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PodioError(400, f"Filter '{key}': bounds are strings like '2026-08-01' or "
                              f"'2026-08-01 12:00:00' (got {value!r})")
    match = _RELATIVE_RE.match(value.strip())
    if match:
        moment = now + timedelta(days=int(match.group(1)) * _RELATIVE_DAYS[match.group(2)])
        return datetime.combine(moment.date(), time.max if upper else time.min)
    try:
        parsed = parse_timestamp(value)
    except ValueError:
        raise PodioError(400, f"Filter '{key}': invalid date {value!r}; use YYYY-MM-DD, "
                              "YYYY-MM-DD HH:MM:SS or a relative date like -7d") from None
    if isinstance(parsed, datetime):
        return parsed
    return datetime.combine(parsed, time(23, 59, 59) if upper else time.min)


def _range(spec: Any, key: str) -> tuple[Any, Any]:
    if not isinstance(spec, dict) or not ({"from", "to"} & spec.keys()):
        raise PodioError(400, f"Filter '{key}' takes a range {{\"from\": ..., \"to\": ...}}")
    return spec.get("from"), spec.get("to")


def _date_filter(getter: Callable[[Item], datetime], spec: Any, key: str,
                 now: datetime, local: ZoneInfo | None = None) -> Predicate:
    """A created_on/last_edit_on range; bounds in UTC, or in ``local`` when given."""
    low, high = _range(spec, key)
    lo, hi = _bound(low, now, False, key), _bound(high, now, True, key)
    if local is not None:
        lo = local_to_utc(lo, local) if lo is not None else None
        hi = local_to_utc(hi, local) if hi is not None else None
    return lambda item: (lo is None or getter(item) >= lo) and (hi is None or getter(item) <= hi)


def _number(spec_value: Any, key: str) -> float | None:
    if spec_value is None:
        return None
    try:
        return float(spec_value)
    except (TypeError, ValueError):
        raise PodioError(400, f"Filter '{key}': bounds must be numbers") from None


def field_sort_value(fdef: FieldDef, item: Item, view: View) -> Any:
    """A comparable value of a field (None = empty) for filters and sorting."""
    value = item.values[fdef.pos]
    if fdef.type == "calculation" and value is None:
        value = calculation(fdef, item.app, item.values, view.today)
    if value is None or isinstance(value, RawValues):
        return None
    if fdef.type in ("number", "calculation"):
        return float(value)
    if fdef.type == "money":
        return float(value[0])
    if fdef.type == "date":
        start = value[0]
        return start if isinstance(start, datetime) else datetime.combine(start, time.min)
    if fdef.type == "category":
        opt = fdef.option(value[0]) if value else None
        return opt.text if opt else None
    if fdef.type == "text":
        return value
    return value[0] if value else None


def _field_filter(fdef: FieldDef, spec: Any, view: View, now: datetime) -> Predicate:
    key = fdef.external_id
    if fdef.type in _ID_TYPES:
        if not isinstance(spec, list):
            spec = [spec]
        wanted = {v for v in spec if v is not None}
        with_empty = None in spec
        pos = fdef.pos

        def ids_match(item: Item) -> bool:
            value = item.values[pos]
            if value is None or isinstance(value, RawValues) or not value:
                return with_empty
            return any(v in wanted for v in value)
        return ids_match
    if fdef.type == "date":
        low, high = _range(spec, key)
        lo, hi = _bound(low, now, False, key), _bound(high, now, True, key)

        def date_match(item: Item) -> bool:
            start = field_sort_value(fdef, item, view)
            if start is None:
                return False
            # Date-field bounds are read in the reader's local time [unverified]; all-day
            # values have no instant and compare by their date.
            if isinstance(item.values[fdef.pos][0], datetime):
                start = utc_to_local(start, view.tz)
            return (lo is None or start >= lo) and (hi is None or start <= hi)
        return date_match
    if fdef.type in _RANGE_TYPES:
        low, high = _range(spec, key)
        n_lo, n_hi = _number(low, key), _number(high, key)

        def number_match(item: Item) -> bool:
            value = field_sort_value(fdef, item, view)
            return value is not None and (n_lo is None or value >= n_lo) and \
                (n_hi is None or value <= n_hi)
        return number_match
    raise PodioError(400, f"Field '{key}' ({fdef.type}) cannot be filtered; text-like fields "
                          "need search, not filter")


def _auth_filter(spec: Any, key: str, rev_index: int) -> Predicate:
    wanted: set[tuple[str, int]] = set()
    for entry in spec if isinstance(spec, list) else [spec]:
        if isinstance(entry, str) and ":" in entry:
            kind, _, ident = entry.partition(":")
            entry = {"type": kind, "id": ident}
        if not isinstance(entry, dict) or "type" not in entry or "id" not in entry:
            raise PodioError(400, f"Filter '{key}' takes a list like [{{\"type\": \"user\", "
                                  "\"id\": 1}]")
        wanted.add((str(entry["type"]), int(entry["id"])))
    return lambda item: (item.revisions[rev_index].actor.kind,
                         item.revisions[rev_index].actor.id) in wanted


def _via_filter(spec: Any, rev_index: int) -> Predicate:
    wanted = {int(v) for v in (spec if isinstance(spec, list) else [spec])}
    return lambda item: item.revisions[rev_index].actor.client.via_id in wanted


def build_filters(app: AppDef, filters: Any, view: View, now: datetime) -> list[Predicate]:
    """Predicates of a filter body's ``filters`` (object, or list of {key, values})."""
    if filters is None:
        return []
    if isinstance(filters, list):
        try:
            filters = {f["key"]: f.get("values") for f in filters}
        except (TypeError, KeyError):
            raise PodioError(400, "'filters' must be an object, or a list of "
                                  '{"key": ..., "values": ...}') from None
    if not isinstance(filters, dict):
        raise PodioError(400, "'filters' must be an object keyed by filter key")
    predicates: list[Predicate] = []
    for key, spec in filters.items():
        if key in _META_DATES:
            predicates.append(_date_filter(_META_DATES[key], spec, key, now,
                                           view.tz if view.local_meta_bounds else None))
        elif key in ("created_by", "last_edit_by"):
            predicates.append(_auth_filter(spec, key, 0 if key == "created_by" else -1))
        elif key in ("created_via", "last_edit_via"):
            predicates.append(_via_filter(spec, 0 if key == "created_via" else -1))
        elif key == "item_id":
            wanted = {int(v) for v in (spec if isinstance(spec, list) else [spec])}
            predicates.append(lambda item, w=wanted: item.item_id in w)  # type: ignore[misc]
        elif (fdef := app.field(key)) is not None:
            predicates.append(_field_filter(fdef, spec, view, now))
        else:
            raise PodioError(400, f"Unknown filter key {key!r} for app '{app.label}'; use "
                                  "created_on, last_edit_on, created_by, created_via, item_id "
                                  "or a field_id/external_id")
    return predicates


def sort_key(app: AppDef, sort_by: str | None, view: View) -> Callable[[Item], Any]:
    """Sort key of ``sort_by`` with item_id as the tie-breaker (ties sort by id)."""
    simple: dict[str, Callable[[Item], Any]] = {
        "created_on": lambda i: (i.created_on, i.item_id),
        "last_edit_on": lambda i: (i.last_edit_on, i.item_id),
        "activity": lambda i: (i.last_event_on, i.item_id),
        "item_id": lambda i: (i.item_id,),
        "app_item_id": lambda i: (i.app_item_id, i.item_id),
        "title": lambda i: (i.title or "", i.item_id),
    }
    if sort_by in simple:
        return simple[sort_by]
    fdef = app.field(sort_by) if sort_by is not None else None
    if fdef is None or fdef.type in ("email", "tel"):
        raise PodioError(400, f"Cannot sort by {sort_by!r}; use created_on, last_edit_on, "
                              "activity, item_id, app_item_id, title or a field")

    def by_field(item: Item) -> Any:
        value = field_sort_value(fdef, item, view)
        return (value is None, value if value is not None else 0, item.item_id)
    return by_field


def run_filter(app: AppDef, live: list[Item], body: dict[str, Any], view: View,
               now: datetime) -> tuple[int, int, list[Item]]:
    """(total, filtered, page) for a filter request body."""
    limit = body.get("limit", DEFAULT_LIMIT)
    offset = body.get("offset", 0)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise PodioError(400, f"'limit' must be an integer between 1 and {MAX_LIMIT}")
    if limit > MAX_LIMIT:
        raise PodioError(400, f"'limit' {limit} is above the maximum of {MAX_LIMIT}; "
                              "page with offset")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise PodioError(400, "'offset' must be a non-negative integer")
    predicates = build_filters(app, body.get("filters"), view, now)
    matched = [i for i in live if all(p(i) for p in predicates)]
    # Podio's default order is not documented; newest first by creation is assumed.
    sort_by = body.get("sort_by") or "created_on"
    sort_desc = body.get("sort_desc")
    descending = (sort_by == "created_on" and body.get("sort_by") is None) \
        if sort_desc is None else bool(sort_desc)
    matched.sort(key=sort_key(app, str(sort_by), view), reverse=descending)
    return len(live), len(matched), matched[offset:offset + limit]


def count_query(app: AppDef, params: dict[str, str]) -> dict[str, Any]:
    """Query-string filters of GET .../count: ``{key}=1;2;null`` on id fields."""
    filters: dict[str, Any] = {}
    for key, raw in params.items():
        if key == "view_id":
            continue
        fdef = app.field(key)
        if fdef is None or fdef.type not in _ID_TYPES:
            raise PodioError(400, f"Count filter {key!r}: only category, app and contact "
                                  "fields are supported as key=1;2;null")
        try:
            filters[key] = [None if p == "null" else int(p) for p in raw.split(";") if p]
        except ValueError:
            raise PodioError(400, f"Count filter {key!r}: ids separated by ';'") from None
    return filters

