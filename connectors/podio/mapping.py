"""Pure functions: a Podio item (GET shape, reference §5.2/§6) -> a model row, and friendly
values -> Podio SET shapes for write-back. No I/O here."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from store.entities import AppMap, FieldMap

PODIO_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # Podio object timestamps: UTC, no "T", no zone
UTC_ZONE = ZoneInfo("UTC")
YES = {"sí", "si", "yes", "true"}
_TAG = re.compile(r"<[^>]+>")


class MappingError(ValueError):
    """The item cannot be mapped; the message is the dead-letter reason (Spanish)."""


def parse_podio_time(value: str) -> datetime:
    """'2026-08-08 09:30:02' (UTC) -> naive UTC datetime."""
    return datetime.strptime(value, PODIO_TIME_FORMAT)


def format_podio_time(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime(PODIO_TIME_FORMAT)


def item_last_edit(item: Mapping[str, Any]) -> datetime:
    """The item's last edit time: ``last_edit_on`` or ``current_revision.created_on``."""
    raw = item.get("last_edit_on") or (item.get("current_revision") or {}).get("created_on") \
        or item.get("created_on")
    if not raw:
        raise MappingError("el item no trae fecha de última edición")
    return parse_podio_time(str(raw))


def item_revision(item: Mapping[str, Any]) -> int | None:
    revision = (item.get("current_revision") or {}).get("revision")
    return int(revision) if revision is not None else None


def _values_by_external_id(item: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {f["external_id"]: f.get("values") or [] for f in item.get("fields") or []
            if isinstance(f, dict) and "external_id" in f}


def _date_value(element: Mapping[str, Any], with_time: bool, tz: ZoneInfo) -> date | datetime:
    """A Podio date value (reference §6.1) as the model keeps it.

    Podio's unsuffixed keys (``start``, ``start_date``) are in the zone of the user who
    reads (for an app token, a zone nobody documents); the ``_utc`` keys are UTC. So:
    - a value with a time is an instant: ``start_utc`` is it (naive UTC for a datetime
      column); a date-only column holds the day that instant falls on in the desk's zone
      (``TIMEZONE``), the day the person entered — 20:00 on the 31st in Tijuana is the 31st
      (03:00/04:00 UTC on the 1st), whatever zone our token reads in;
    - an all-day value (no time) has no instant: its ``start_date`` is the entered day, for
      every reader; a datetime column gets that day's local midnight, as UTC.
    """
    start_utc = element.get("start_utc")
    time_utc = element.get("start_time_utc")
    if start_utc and time_utc:
        moment = parse_podio_time(str(start_utc))
        if with_time:
            return moment
        return moment.replace(tzinfo=UTC).astimezone(tz).date()
    text = str(element.get("start_date") or element.get("start_date_utc") or start_utc
               or element.get("start") or "")[:10]
    day = date.fromisoformat(text)
    if not with_time:
        return day
    midnight = datetime.combine(day, datetime.min.time(), tzinfo=tz)
    return midnight.astimezone(UTC).replace(tzinfo=None)


def _category(spec: FieldMap, value: Mapping[str, Any]) -> str:
    """A category option's text; one that config/podio.yaml does not list for the field
    (when it lists options) is a mapping error naming the option and the field: a new or
    renamed option in Podio becomes a dead letter, never data the rules do not expect."""
    text = html.unescape(str(value["text"])).strip()
    if spec.options is None:
        return text
    for known in spec.options:
        if known.casefold() == text.casefold():
            return known
    raise MappingError(
        f"campo {spec.field!r}: la opción {text!r} (id {value.get('id', '?')}) no está en "
        f"config/podio.yaml (opciones: {', '.join(spec.options)}); agrégala allí o "
        "corrígela en Podio")


def convert(spec: FieldMap, values: list[dict[str, Any]], staff: Mapping[int, int],
            tz: ZoneInfo = UTC_ZONE) -> Any:
    """One field's GET values -> the model value (None when empty)."""
    if not values:
        return None
    first = values[0]
    kind = spec.type
    if kind in ("text", "html"):
        text = str(first.get("value", ""))
        return html.unescape(_TAG.sub("", text)).strip() if kind == "html" else text
    if kind == "category":
        return _category(spec, first["value"])
    if kind == "yes_no":
        return str(first["value"]["text"]).strip().lower() in YES
    if kind == "staff":
        return staff.get(int(first["value"]["profile_id"]))
    if kind == "ref":
        return str(first["value"]["item_id"])
    if kind in ("date", "datetime"):
        return _date_value(first, kind == "datetime", tz)
    if kind in ("number", "decimal", "money"):
        number = Decimal(str(first["value"]))
        return float(number) if kind == "number" else number
    if kind in ("email", "phone"):
        return str(first["value"])
    raise MappingError(f"tipo de campo desconocido {kind!r}")


def item_to_row(item: Mapping[str, Any], app: AppMap, staff: Mapping[int, int],
                tz: ZoneInfo = UTC_ZONE) -> dict[str, Any]:
    """Map a Podio item to a row of ``app.table`` (``tz``: the desk's zone, for the day of
    a date-only column). Raises MappingError with the reason."""
    try:
        item_id = int(item["item_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise MappingError("el item no tiene item_id") from exc
    values = _values_by_external_id(item)
    row: dict[str, Any] = {
        "source": "podio", "source_id": str(item_id),
        "source_revision": str(item_revision(item)) if item_revision(item) is not None else None,
        "source_updated_at": item_last_edit(item),
        "raw": {"item_id": item_id, "app_item_id": item.get("app_item_id"),
                "link": item.get("link"), "external_id": item.get("external_id")},
    }
    for column, spec in app.fields.items():
        try:
            value = convert(spec, values.get(spec.field, []), staff, tz)
        except MappingError:
            raise
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            shown = values.get(spec.field)
            raise MappingError(
                f"campo {spec.field!r}: valor con forma inesperada para tipo {spec.type} "
                f"({str(shown)[:120]})") from exc
        if value is None and spec.default == "created_on" and item.get("created_on"):
            value = parse_podio_time(str(item["created_on"]))
        if value is None and spec.required:
            raise MappingError(f"falta el campo obligatorio {spec.field!r}")
        row[column] = value
        if spec.type == "money" and value is not None and "currency" in app.model.__table__.columns:
            row["currency"] = values[spec.field][0].get("currency")
    return row


def own_write(item: Mapping[str, Any], own_refs: list[dict[str, Any]]) -> bool:
    """True when the item's current revision was made by saeko-sync's own credentials."""
    author = (item.get("current_revision") or {}).get("created_by") or {}
    return any(author.get("type") == ref.get("type") and author.get("id") == ref.get("id")
               for ref in own_refs)


# --- write-back: friendly values -> Podio SET shapes (reference §6) --------------------


def to_podio_value(field: Mapping[str, Any], value: Any) -> Any:
    """Serialise one value for a field definition from GET /app/{id} (``type``, ``config``)."""
    label = field.get("external_id")
    if value is None or value == []:
        return []
    kind = field["type"]
    if kind == "category":
        options = {o["text"].strip().lower(): o["id"]
                   for o in field["config"]["settings"]["options"] if o.get("status") != "deleted"}
        wanted = value if isinstance(value, list) else [value]
        ids = []
        for choice in wanted:
            if isinstance(choice, int) and not isinstance(choice, bool):
                ids.append(choice)
                continue
            key = "sí" if choice is True else "no" if choice is False else str(choice).strip().lower()
            if key not in options:
                raise MappingError(f"la opción {choice!r} no existe en el campo {label!r} "
                                   f"(opciones: {', '.join(sorted(options))})")
            ids.append(options[key])
        return ids if len(ids) > 1 else ids[0]
    if kind in ("contact", "app"):
        return [int(v) for v in value] if isinstance(value, list) else int(value)
    if kind == "date":
        if isinstance(value, datetime):
            return {"start_utc": format_podio_time(value)}
        if isinstance(value, date):
            return {"start_date": value.isoformat()}
        return {"start_date": str(value)[:10]}
    if kind in ("number", "progress", "duration"):
        return str(round(float(value), 4)) if kind == "number" else int(value)
    if kind == "money":
        if isinstance(value, Mapping):
            return {"value": str(value["value"]), "currency": value.get("currency", "MXN")}
        return {"value": str(value), "currency": "MXN"}
    if kind == "calculation":
        raise MappingError(f"el campo {label!r} es un cálculo de Podio: no se puede escribir")
    if kind in ("email", "phone", "tel"):
        return [{"type": "work", "value": str(value)}]
    return str(value)
