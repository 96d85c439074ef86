"""Field values: every SET form of reference §5.4/§6 to one internal form, and back to the
GET shapes of §6/§6.1 (built lazily, per request, in the reader's time zone).

Internal forms: text ``str``; number ``str`` with 4 decimals; money ``(amount, currency)``;
category / contact / app ``tuple[int, ...]`` (option ids, profile ids, item ids); date
``(start, end)`` where each is a naive-UTC ``datetime`` (timed) or a ``date`` (all-day) and
end may be ``None``; email / phone ``tuple[(type, value), ...]``; ``RawValues`` verbatim.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sandbox.podio.errors import PodioError
from sandbox.podio.model import Item, PodioUser, RawValues, ts
from sandbox.podio.schema import CURRENCIES, EMAIL_TYPES, PHONE_TYPES, AppDef, FieldDef

FOUR_PLACES = Decimal("0.0001")  # numbers and money are strings with 4 decimals (§6)
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME_RE = re.compile(r"^\d{2}:\d{2}(:\d{2})?$")
_DATETIME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}(:\d{2})?)$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Lookup(Protocol):
    """What value parsing and rendering need from the store."""

    def user_by_profile(self, profile_id: int) -> PodioUser | None: ...
    def live_item(self, item_id: int) -> Item | None: ...


def bad(fdef: FieldDef, message: str, value: Any = None) -> PodioError:
    """A 400 naming the field, the offending value and what is expected."""
    shown = f" (got {value!r})" if value is not None else ""
    return PodioError(400, f"Invalid value for field '{fdef.external_id}' "
                           f"({fdef.type}): {message}{shown}",
                      parameters={"field_id": fdef.field_id, "external_id": fdef.external_id})


# --- parsing (SET) ----------------------------------------------------------------------

def parse_field(fdef: FieldDef, raw: Any, lookup: Lookup, tz: ZoneInfo) -> Any:
    """Normalise one field's SET value; ``None`` means the field is cleared."""
    if fdef.type == "calculation":
        raise bad(fdef, "calculation fields are read-only; drop it from the payload")
    elements = [] if raw is None else raw if isinstance(raw, list) else [raw]
    if not elements:
        return None
    parser = _PARSERS.get(fdef.type)
    if parser is None:
        raise bad(fdef, "this field type cannot be written through the sandbox")
    return parser(fdef, elements, lookup, tz)


def _single(fdef: FieldDef, elements: list[Any]) -> Any:
    if len(elements) > 1:
        raise bad(fdef, "takes a single value", elements)
    return elements[0]


def _unwrap(element: Any, key: str) -> Any:
    """``{"value": v}`` / ``{"value": {key: v}}`` / ``{key: v}`` / ``v`` -> ``v``."""
    if isinstance(element, dict):
        if "value" in element:
            element = element["value"]
        elif key in element:
            return element[key]
    if isinstance(element, dict) and key in element:
        return element[key]
    return element


def _parse_text(fdef: FieldDef, elements: list[Any], _l: Lookup, _tz: ZoneInfo) -> Any:
    value = _unwrap(_single(fdef, elements), "value")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise bad(fdef, "expected a string", value)
    text = str(value)
    if not text.strip():
        return None
    if fdef.settings.get("format") == "html" and not text.lstrip().startswith("<"):
        text = f"<p>{html.escape(text, quote=False)}</p>"
    return text


def _decimal(fdef: FieldDef, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise bad(fdef, "expected a number", value)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise bad(fdef, "expected a number such as 12.5 or \"12.5\"", value) from None
    if not number.is_finite():
        raise bad(fdef, "expected a finite number", value)
    return str(number.quantize(FOUR_PLACES))


def _parse_number(fdef: FieldDef, elements: list[Any], _l: Lookup, _tz: ZoneInfo) -> Any:
    return _decimal(fdef, _unwrap(_single(fdef, elements), "value"))


def _parse_money(fdef: FieldDef, elements: list[Any], _l: Lookup, _tz: ZoneInfo) -> Any:
    element = _single(fdef, elements)
    if not isinstance(element, dict) or "value" not in element or "currency" not in element:
        raise bad(fdef, 'expected {"value": "1500.00", "currency": "MXN"}', element)
    if element["currency"] not in CURRENCIES:
        raise bad(fdef, f"currency must be one of {list(CURRENCIES)}", element["currency"])
    return (_decimal(fdef, element["value"]), element["currency"])


def _ids(fdef: FieldDef, elements: list[Any], key: str) -> tuple[int, ...]:
    out: list[int] = []
    for element in elements:
        value = _unwrap(element, key)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad(fdef, f"expected an id ({key}) or a list of ids", value)
        if value not in out:
            out.append(value)
    if len(out) > 1 and fdef.type != "contact" and not fdef.multiple:
        raise bad(fdef, "this field takes a single value", elements)
    return tuple(out)


def _parse_category(fdef: FieldDef, elements: list[Any], _l: Lookup, _tz: ZoneInfo) -> Any:
    ids = _ids(fdef, elements, "id")
    for option_id in ids:
        option = fdef.option(option_id)
        if option is None or option.status != "active":
            valid = {o.id: o.text for o in fdef.options if o.status == "active"}
            raise bad(fdef, f"unknown option id; options are {valid}", option_id)
    return ids


def _parse_contact(fdef: FieldDef, elements: list[Any], lookup: Lookup, _tz: ZoneInfo) -> Any:
    ids = _ids(fdef, elements, "profile_id")
    for profile_id in ids:
        if lookup.user_by_profile(profile_id) is None:
            raise bad(fdef, "no workspace member has this profile_id", profile_id)
    return ids


def _parse_app(fdef: FieldDef, elements: list[Any], lookup: Lookup, _tz: ZoneInfo) -> Any:
    ids = _ids(fdef, elements, "item_id")
    for item_id in ids:
        item = lookup.live_item(item_id)
        if item is None or item.app.name not in fdef.refs:
            raise bad(fdef, f"no live item with this id in the referenced app(s) "
                            f"{list(fdef.refs)}", item_id)
    return ids


def _parse_contacts_of(kinds: tuple[str, ...], email: bool) -> Callable[..., Any]:
    def parse(fdef: FieldDef, elements: list[Any], _l: Lookup, _tz: ZoneInfo) -> Any:
        out = []
        for element in elements:
            if isinstance(element, str):
                element = {"type": "other", "value": element}
            if not isinstance(element, dict) or not isinstance(element.get("value"), str):
                raise bad(fdef, 'expected [{"type": "work", "value": "..."}]', element)
            kind = element.get("type", "other")
            if kind not in kinds:
                raise bad(fdef, f"type must be one of {list(kinds)}", kind)
            value = element["value"].strip()
            if email and not _EMAIL_RE.match(value):
                raise bad(fdef, "not an e-mail address", value)
            if not value:
                raise bad(fdef, "empty value", element)
            out.append((kind, value))
        return tuple(out)
    return parse


# --- dates (§6.1) -----------------------------------------------------------------------

def parse_timestamp(text: str) -> datetime | date:
    """'YYYY-MM-DD' -> date; 'YYYY-MM-DD HH:MM[:SS]' -> datetime; ValueError otherwise."""
    text = text.strip()
    if _DATE_RE.match(text):
        return date.fromisoformat(text)
    match = _DATETIME_RE.match(text)
    if not match:
        raise ValueError(text)
    clock = match.group(2) if match.group(3) else match.group(2) + ":00"
    return datetime.fromisoformat(f"{match.group(1)} {clock}")


def local_to_utc(moment: datetime, tz: ZoneInfo) -> datetime:
    return moment.replace(tzinfo=tz).astimezone(UTC).replace(tzinfo=None)


def utc_to_local(moment: datetime, tz: ZoneInfo) -> datetime:
    return moment.replace(tzinfo=UTC).astimezone(tz).replace(tzinfo=None)


def _point(fdef: FieldDef, element: dict[str, Any], prefix: str,
           tz: ZoneInfo) -> datetime | date | None:
    def get(key: str) -> str | None:
        value = element.get(key)
        if value is not None and not isinstance(value, str):
            raise bad(fdef, f"'{key}' must be a string", value)
        return value or None

    def parse(text: str) -> datetime | date:
        try:
            return parse_timestamp(text)
        except ValueError:
            raise bad(fdef, f"invalid {prefix} date; use YYYY-MM-DD or "
                            f"YYYY-MM-DD HH:MM:SS", text) from None

    def parse_time(text: str) -> time:
        if not _TIME_RE.match(text):
            raise bad(fdef, f"invalid {prefix} time; use HH:MM:SS", text)
        try:
            return time.fromisoformat(text if text.count(":") == 2 else text + ":00")
        except ValueError:
            raise bad(fdef, f"invalid {prefix} time; use HH:MM:SS", text) from None

    if (utc := get(f"{prefix}_utc")) is not None:
        return parse(utc)
    if (day_utc := get(f"{prefix}_date_utc")) is not None:
        day = parse(day_utc)
        clock = get(f"{prefix}_time_utc")
        if isinstance(day, datetime):
            raise bad(fdef, f"{prefix}_date_utc takes a date only", day_utc)
        return datetime.combine(day, parse_time(clock)) if clock else day
    if (day_local := get(f"{prefix}_date")) is not None:
        day = parse(day_local)
        clock = get(f"{prefix}_time")
        if isinstance(day, datetime):
            raise bad(fdef, f"{prefix}_date takes a date only", day_local)
        return local_to_utc(datetime.combine(day, parse_time(clock)), tz) if clock else day
    if (local := get(prefix)) is not None:
        value = parse(local)
        return local_to_utc(value, tz) if isinstance(value, datetime) else value
    return None


def _parse_date(fdef: FieldDef, elements: list[Any], _l: Lookup, tz: ZoneInfo) -> Any:
    element = _single(fdef, elements)
    if isinstance(element, str):
        element = {"start": element}
    if not isinstance(element, dict):
        raise bad(fdef, 'expected {"start_date": "YYYY-MM-DD"} or {"start_utc": '
                        '"YYYY-MM-DD HH:MM:SS"}', element)
    start = _point(fdef, element, "start", tz)
    if start is None:
        raise bad(fdef, "a start is required (start, start_date or start_utc)", element)
    end = _point(fdef, element, "end", tz)
    if end is not None:
        if isinstance(start, datetime) != isinstance(end, datetime):
            raise bad(fdef, "start and end must both have a time or both be dates", element)
        if end < start:  # type: ignore[operator]
            raise bad(fdef, "end is before start", element)
    return (start, end)


_PARSERS: dict[str, Callable[..., Any]] = {
    "text": _parse_text, "number": _parse_number, "money": _parse_money,
    "category": _parse_category, "contact": _parse_contact, "app": _parse_app,
    "date": _parse_date, "email": _parse_contacts_of(EMAIL_TYPES, email=True),
    "tel": _parse_contacts_of(PHONE_TYPES, email=False),
}


# --- rendering (GET) --------------------------------------------------------------------

def render_point(prefix: str, value: datetime | date, tz: ZoneInfo) -> dict[str, Any]:
    """The six keys of one end of a date value (§6.1)."""
    if isinstance(value, datetime):
        local = utc_to_local(value, tz)
        return {prefix: ts(local), f"{prefix}_date": local.date().isoformat(),
                f"{prefix}_time": local.strftime("%H:%M:%S"), f"{prefix}_utc": ts(value),
                f"{prefix}_date_utc": value.date().isoformat(),
                f"{prefix}_time_utc": value.strftime("%H:%M:%S")}
    day = value.isoformat()
    return {prefix: f"{day} 00:00:00", f"{prefix}_date": day, f"{prefix}_time": None,
            f"{prefix}_utc": day, f"{prefix}_date_utc": day, f"{prefix}_time_utc": None}


def days_left(app: AppDef, values: tuple[Any, ...], today: date) -> str | None:
    """The 'dias-restantes' calculation: days from today (user local) to 'fin'."""
    fin = app.field("fin")
    value = values[fin.pos] if fin is not None else None
    if not isinstance(value, tuple):
        return None
    end = value[0].date() if isinstance(value[0], datetime) else value[0]
    return str(Decimal((end - today).days).quantize(FOUR_PLACES))


def calculation(fdef: FieldDef, app: AppDef, values: tuple[Any, ...], today: date) -> Any:
    """Value of a calculation field, computed on read (it is never stored)."""
    if fdef.external_id == "dias-restantes":
        return days_left(app, values, today)
    return None


def render_field(fdef: FieldDef, value: Any, lookup: Lookup, tz: ZoneInfo) -> list[Any]:
    """The GET ``values`` list of one field (empty list = field omitted)."""
    if isinstance(value, RawValues):
        return list(value.values)
    kind = fdef.type
    if kind in ("text", "number") or (kind == "calculation" and value is not None):
        return [{"value": value}]
    if kind == "money":
        return [{"value": value[0], "currency": value[1]}]
    if kind == "category":
        return [{"value": opt.json()} for i in value if (opt := fdef.option(i)) is not None]
    if kind == "contact":
        return [{"value": user.contact()} for pid in value
                if (user := lookup.user_by_profile(pid)) is not None]
    if kind == "app":
        return [{"value": reference(item)} for iid in value
                if (item := lookup.live_item(iid)) is not None]
    if kind == "date":
        start, end = value
        element = render_point("start", start, tz)
        if end is not None:
            element.update(render_point("end", end, tz))
        return [element]
    if kind in ("email", "tel"):
        return [{"type": t, "value": v} for t, v in value]
    return []


def reference(item: Item) -> dict[str, Any]:
    """An item as the value of an app-reference field (§6)."""
    first = item.revisions[0]
    return {"item_id": item.item_id, "app_item_id": item.app_item_id, "title": item.title,
            "link": item.link, "app": item.app.mini(), "created_on": ts(item.created_on),
            "initial_revision": {"revision": first.revision,
                                 "created_on": ts(first.created_on)}}


def simplify(fdef: FieldDef, value: Any, lookup: Lookup) -> Any:
    """The test-friendly form of one stored value (PodioTool.values)."""
    if isinstance(value, RawValues):
        return list(value.values)
    kind = fdef.type
    if kind == "text":
        return value
    if kind in ("number", "calculation"):
        return float(value)
    if kind == "money":
        return {"value": value[0], "currency": value[1]}
    if kind == "category":
        texts = [opt.text for i in value if (opt := fdef.option(i)) is not None]
        return texts if fdef.multiple else (texts[0] if texts else None)
    if kind == "contact":
        return list(value)
    if kind == "app":
        return [i for i in value if lookup.live_item(i) is not None]
    if kind == "date":
        start, end = value
        out = {"start": _plain(start)}
        if end is not None:
            out["end"] = _plain(end)
        return out
    if kind in ("email", "tel"):
        return [v for _t, v in value]
    return value


def _plain(value: datetime | date) -> str:
    return ts(value) if isinstance(value, datetime) else value.isoformat()  # type: ignore[return-value]
