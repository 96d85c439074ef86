"""The tool packages and the one interface each of them implements.

Every tool (``connectors/<tool>/``) exposes a ``CONNECTOR`` in its ``connector.py``: what
``jobs/`` (cycle, inbox, webhooks, hooks, doctor) and ``rules/`` need from it, so neither
ever branches on a tool's name. Adding a tool means a new package with that module, one line
in ``TOOLS``, its config section, ``.env.example`` and its tests.

The tools are imported on first use (Google's client libraries are slow to import, and a
Podio-only run needs none of them); ``connector.py`` modules import their heavy parts lazily.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.settings import Settings
    from store.db import Database

# tool name -> "module:attribute" of its Connector. Order = the order of a full cycle.
TOOLS: dict[str, str] = {
    "podio": "connectors.podio.connector:CONNECTOR",
    "jira": "connectors.jira.connector:CONNECTOR",
    "google": "connectors.google.connector:CONNECTOR",
}


@dataclass(frozen=True)
class HookPlan:
    """One webhook the tool should call: where it stands after ``hooks register``."""

    app: str
    type: str
    url: str  # where it points (for a deleted hook: the old address)
    status: str  # created | exists | deleted (one of ours pointing at an old URL or token)
    active: bool = False  # the tool delivers to it (Podio: only once verified)


@dataclass(frozen=True)
class Delivery:
    """A webhook request the tool sent, accepted by its receiver, ready for the inbox."""

    key: str  # dedupe key: the same delivery stored once
    kind: str  # the event type
    payload: dict[str, Any]
    log: dict[str, Any] = field(default_factory=dict)  # what the receiver logs about it


class Rejected(Exception):
    """A webhook request the receiver refuses: its HTTP status and the reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def is_id(value: object) -> bool:
    """A tool's numeric id as a delivery carries it: ASCII digits only (no sign, no space)."""
    text = str(value)
    return text.isascii() and text.isdigit()


@dataclass(frozen=True)
class Webhooks:
    """How a tool's webhook deliveries are received and then processed by the inbox.

    ``receive(settings, headers, body)`` checks the request (signature, shape) and returns
    the delivery or raises ``Rejected``; ``problem(payload)`` re-checks a stored one (None
    when usable); ``record_key(kind, payload)`` names the record a delivery asks to re-read
    (deliveries of one record are merged in a batch; None: each must run);
    ``handle(settings, db, client, kind, payload)`` processes it and says what it did.
    """

    receive: Callable[[Settings, Mapping[str, str], bytes], Delivery]
    problem: Callable[[Any], str | None]
    record_key: Callable[[str, dict[str, Any]], str | None]
    handle: Callable[[Settings, Database, Any, str, dict[str, Any]], str]
    # Registers the tool's hooks (idempotently) or None when an admin must do it by hand.
    register: Callable[[Settings, Any, str], list[HookPlan]] | None = None
    # What an admin registers by hand, given the receiver URL (tools without ``register``).
    instructions: Callable[[Settings, str], str] | None = None
    # Deliveries that one read can stand for when the inbox gathers them (jobs/inbox.py):
    # ``batch_key(settings, client, kind, payload)`` names the group (Podio: the app of an
    # update notice; None: handled on its own) and ``handle_many(settings, db, client, key,
    # payloads)`` processes a group with one read (Podio: the app's incremental filter).
    batch_key: Callable[[Settings, Any, str, dict[str, Any]], str | None] | None = None
    handle_many: Callable[[Settings, Database, Any, str, list[dict[str, Any]]], str] | None = None
    # Event kinds that make their group due at once (Podio: a creation, which T1 answers
    # within a second, is read by its app's filter together with the notices waiting).
    batch_now: tuple[str, ...] = ()


@dataclass(frozen=True)
class MappedField:
    """A model column written back to a tool field (e.g. a Podio app's field)."""

    column: str
    field: str  # the tool's id of the field (Podio: external_id)
    type: str
    fk: str | None = None  # the column holding the referenced record, for references


@dataclass(frozen=True)
class Connector:
    """What every tool package provides.

    ``sources``: the sync sources it feeds (``connectors.base.SOURCES``), each on when
    ``configured(settings, source)``; ``enabled(settings)``: the tool is set up at all
    (``required`` tools are reported as a failure by doctor when not). ``client(settings)``
    builds the one client sync, inbox and actions share (ConfigError when not configured);
    ``health(settings)`` is its doctor line (raises with the fix). ``rule_actions``: the
    module whose ``ACTIONS`` are the tool's rule actions.
    """

    name: str
    sources: tuple[str, ...]
    configured: Callable[[Settings, str], bool]
    enabled: Callable[[Settings], bool]
    client: Callable[[Settings], Any]
    health: Callable[[Settings], str]
    rule_actions: str
    required: bool = False
    webhooks: Webhooks | None = None
    # The part of the doctor's configuration line about the tool's mapping (e.g. "6 apps
    # mapeadas"), or None.
    config_summary: Callable[[Settings], str] | None = None
    # The tool's quota for the status page and doctor (settings, live client or None when
    # none was built): {"used": this process's calls, "window": what "used" covers,
    # "limit": the client-side budget or None, "reported": what the tool itself said on
    # its latest responses ([{credential, limit, remaining, at}]), "note": why it says
    # nothing, when it does not}; None: the tool has no quota to show.
    quota: Callable[[Settings, Any], dict[str, Any]] | None = None
    # Where a person sees one of the tool's records (settings, source id, stored raw payload
    # or None) -> URL, or None when the tool has no page for it (the status page's links).
    record_url: Callable[[Settings, str, Any], str | None] | None = None
    # How the quota reports name a credential, for people (e.g. "usuario de integración").
    credential_label: Callable[[str], str] | None = None
    # Model columns written back to the tool, per app (config/<tool>.yaml), for rules.
    mapped_fields: Callable[[Path], dict[str, list[MappedField]]] | None = None
    # A link to answer one of the tool's forms with answers filled in (url, question -> value).
    form_link: Callable[[str, dict[str, str]], str] | None = None
    # The deletion scan `serve` runs on its schedule (settings, db, client) -> rows marked
    # deleted: records the tool's listings cannot show as gone, each confirmed by a read.
    scan_deletions: Callable[[Settings, Database, Any], int] | None = None
    # The settings still unset, by part: "" for the tool itself (what ``enabled`` needs),
    # else a part the sync and the rules use on its own (Podio: one app each, by the name
    # of config/podio.yaml) -> the variables to set. ``doctor`` names them with the active
    # rules that need each part.
    unset: Callable[[Settings], dict[str, list[str]]] | None = None


@cache
def connector(name: str) -> Connector:
    """The connector of a tool, imported on first use."""
    if name not in TOOLS:
        raise KeyError(f"unknown tool {name!r}; one of {', '.join(TOOLS)}")
    module, attribute = TOOLS[name].split(":")
    found = getattr(importlib.import_module(module), attribute)
    if not isinstance(found, Connector):
        raise TypeError(f"{TOOLS[name]} is not a Connector")
    return found


def connectors() -> list[Connector]:
    """Every tool's connector, in cycle order."""
    return [connector(name) for name in TOOLS]


def for_source(source: str) -> Connector:
    """The connector whose sync feeds ``source`` (KeyError for an unknown one)."""
    for found in connectors():
        if source in found.sources:
            return found
    raise KeyError(source)


def with_webhooks() -> list[Connector]:
    """The tools that deliver webhooks (their name is their receiver's path segment)."""
    return [found for found in connectors() if found.webhooks is not None]


def rule_actions() -> list[Any]:
    """Every tool's rule action types (``rules.actions.base.ActionType``), imported now."""
    return [action for found in connectors()
            for action in importlib.import_module(found.rule_actions).ACTIONS]
