"""The action framework: each action type is a schema (its parameters) plus one function to
send it and, for effects that create something, one to find it again by its marker.

Arguments are compiled when the rule loads (``rules.values.Arg``) and evaluated per match;
``prepare`` turns the values into a JSON payload — what the ledger stores and a retry
resends — and ``send``/``find`` call the connector's write-back primitives.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from rules.problems import ProblemSink

if TYPE_CHECKING:
    from connectors.clients import ActionRuntime
    from rules.values import Arg

# Parameter kinds (what an admin may write for each).
TEXT = "texto"        # a text, may contain {{ }}
VALUE = "valor"       # anything: literal, {{ expresión }} (keeps its type) or text
RECORD = "registro"   # an expression that names a record: ticket, encuesta.ticket
PERSON = "persona"    # a person of config/staff.yaml (ticket.am) or an email
DATE = "fecha"        # a date or date-and-time
INTEGER = "entero"
BOOLEAN = "sí/no"
FIELDS = "campos"     # a mapping field -> valor
TEXTS = "lista de textos"
PEOPLE = "personas"   # one or several people/emails
TEMPLATE_FILE = "plantilla"  # name of a template in config/plantillas/ (.txt and/or .html)


class ActionSkipped(Exception):
    """Nothing to send (e.g. every field already had a value); the message says why."""


@dataclass(frozen=True)
class Param:
    """One argument of an action."""

    kind: str
    required: bool = False
    default: Any = None
    doc: str = ""
    entities: Collection[str] = ()  # for RECORD: which entities are accepted


@dataclass
class Prepared:
    """What one action will do: JSON payload (kept in the ledger), target and a summary."""

    payload: dict[str, Any]
    target: str
    summary: str
    skip_reason: str | None = None


@dataclass
class CheckContext:
    """What an action's load-time check may look at."""

    sink: ProblemSink
    line: int
    rule_entity: str | None
    config: Any  # rules.spec.LoadConfig


@dataclass(frozen=True)
class Creates:
    """A record an effect creates in a tool, read back by a later sync: its rule entity and
    the column that holds the effect's ref (the change event of that record continues the
    correlation of the run that created it)."""

    entity: str
    ref_column: str


@dataclass(frozen=True)
class Coalesce:
    """How the effects of one phase that write the same record are sent as one call
    (``rules.coalesce``): the record's key, the one payload for several, what the record
    holds now in the model (kept before the write-through) and how to put it back."""

    key: Callable[[dict[str, Any]], str]
    merge: Callable[[list[dict[str, Any]]], dict[str, Any]]
    before: Callable[[Session, dict[str, Any]], dict[str, Any]]
    undo: Callable[[Session, Any, dict[str, Any], dict[str, Any]], None]


@dataclass
class ActionType:
    """A registered action: name, parameters, and its functions."""

    name: str
    doc: str
    params: dict[str, Param]
    prepare: Callable[[dict[str, Any], PrepareContext], Prepared]
    send: Callable[[ActionRuntime, dict[str, Any], str], str]
    find: Callable[[ActionRuntime, dict[str, Any], str], str | None] | None = None
    check: Callable[[dict[str, Arg], CheckContext], None] | None = None
    # What a done effect changed in the model, written through at once so that the rules
    # evaluated after it see it without waiting for the next sync (order independence).
    # The columns it wrote (payload ``columns``) come back with the next sync as our own
    # change, not a person's: the engine recognises them from the ledger.
    written: Callable[[Session, Any, dict[str, Any]], None] | None = None
    # The record a done effect creates (its ref is that record's key), if any.
    creates: Creates | None = None
    # What a caller outside a rule looks the action up by, instead of by its name (e.g.
    # "tablero_kpis": ``saeko-sync kpis --publicar`` runs M3's publication).
    role: str | None = None
    # The templates of config/plantillas/ the action sends that are not a «plantilla»
    # argument, from its literal arguments (M10's reports: the report's template), so that
    # M9's list names the rules using them.
    templates: Callable[[dict[str, Any]], list[str]] | None = None
    # Several effects of one phase on the same record go out as one call (one Podio PUT
    # per item for all its fields), each keeping its ledger row: ``rules.coalesce``.
    coalesce: Coalesce | None = None
    # The settings the action cannot work without beyond its tool's own (e.g. the mailbox
    # it sends as), by variable name: `doctor` names those left empty with the active rules
    # that use the action.
    settings: tuple[str, ...] = ()

    @property
    def tool(self) -> str:
        return self.name.split(".", 1)[0]


@dataclass
class PrepareContext:
    """What ``prepare`` may use: the settings-derived config and the rule's entity record."""

    config: Any
    record: dict[str, Any] | None
    entity: str | None


# --- JSON payloads -----------------------------------------------------------------------


def to_json(value: Any) -> Any:
    """Payload value -> JSON, keeping dates recognisable."""
    if isinstance(value, datetime):
        return {"$fechahora": value.isoformat()}
    if isinstance(value, date):
        return {"$fecha": value.isoformat()}
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def from_json(value: Any) -> Any:
    """Inverse of ``to_json``."""
    if isinstance(value, dict):
        if set(value) == {"$fechahora"}:
            return datetime.fromisoformat(value["$fechahora"])
        if set(value) == {"$fecha"}:
            return date.fromisoformat(value["$fecha"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def short(value: Any, limit: int = 80) -> str:
    """A value as a short readable text for summaries."""
    if isinstance(value, datetime):
        text = f"{value:%d/%m/%Y %H:%M}"
    elif isinstance(value, date):
        text = f"{value:%d/%m/%Y}"
    else:
        text = value if isinstance(value, str) else json.dumps(to_json(value),
                                                               ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def record_ref(record: Any) -> tuple[str, str | None, str | None] | None:
    """(entity, source, source_id) of a record value, else None."""
    if isinstance(record, dict) and "_entity" in record:
        return record["_entity"], record.get("_source"), record.get("id_origen")
    return None
