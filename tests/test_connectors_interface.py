"""Every tool implements the one connector interface, and the layers above use only it:
``jobs/`` never branches on a tool's name nor knows a tool's endpoints, and ``rules/``
reaches connectors only through ``connectors.registry`` (and its client pool)."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from connectors import registry
from connectors.base import SOURCES
from connectors.clients import ActionRuntime
from connectors.registry import Connector, Rejected
from core.settings import PROJECT_ROOT, load_settings
from jobs.doctor import run_checks
from jobs.inbox import InboxWorker
from rules.actions import REGISTRY
from rules.actions.base import ActionType
from store.db import Database, utcnow
from store.models import WebhookInbox

NAMES = {*registry.TOOLS, *SOURCES}
ENDPOINT_FRAGMENTS = ("/hook/", "/item/", "/rest/api", "googleapis", "/verify/validate")
ALLOWED_IN_RULES = {"connectors.registry", "connectors.clients"}


def _python_files(folder: str) -> Iterator[Path]:
    yield from sorted((PROJECT_ROOT / folder).rglob("*.py"))


def test_every_tool_exposes_a_connector() -> None:
    fed: list[str] = []
    for name in registry.TOOLS:
        connector = registry.connector(name)
        assert isinstance(connector, Connector) and connector.name == name
        fed.extend(connector.sources)
        actions = importlib.import_module(connector.rule_actions).ACTIONS
        assert actions and all(isinstance(a, ActionType) for a in actions)
        assert all(REGISTRY[a.name] is a for a in actions)
    assert sorted(fed) == sorted(SOURCES)  # each source fed by exactly one tool
    assert {registry.for_source(s).name for s in ("forms", "sheets")} == {"google"}


def test_receivers_refuse_with_a_status() -> None:
    settings = load_settings()
    for connector in registry.with_webhooks():
        assert connector.webhooks is not None
        with pytest.raises(Rejected) as refused:
            connector.webhooks.receive(settings, {}, b"\xff not a delivery")
        assert refused.value.status in (400, 401)


def _names_in(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in NAMES}


def test_jobs_never_branch_on_a_tool_nor_know_its_endpoints() -> None:
    found: list[str] = []
    for path in _python_files("jobs"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            where = f"{path.name}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Compare | ast.If | ast.IfExp | ast.Match) and (
                    names := _names_in(node.test if isinstance(node, ast.If | ast.IfExp)
                                       else node)):
                found.append(f"{where} compares with {sorted(names)}")
            if isinstance(node, ast.Dict) and _names_in(ast.Tuple(node.keys, ast.Load())):
                found.append(f"{where} keys a table by tool")
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and any(
                    fragment in node.value for fragment in ENDPOINT_FRAGMENTS):
                found.append(f"{where} names an endpoint {node.value!r}")
    assert found == []


def test_rules_import_connectors_only_through_the_registry() -> None:
    found: list[str] = []
    for path in _python_files("rules"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom)
                       else [node.value] if isinstance(node, ast.Constant)
                       and isinstance(node.value, str) else [])
            for module in modules:
                if module.startswith("connectors.") and module.split(":")[0] \
                        not in ALLOWED_IN_RULES:
                    found.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} {module}")
    assert found == []


def _fake_health(_settings: object) -> str:
    return "fake OK"


FAKE = Connector(name="fake", sources=(), configured=lambda _s, _src: False,
                 enabled=lambda _s: True, client=lambda _s: None, health=_fake_health,
                 rule_actions="connectors.podio.rule_actions")


def test_a_new_tool_is_one_registry_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Doctor (like the cycle, the inbox and the receiver) loops over the registry: a tool
    added there is checked without touching jobs/."""
    monkeypatch.setitem(registry.TOOLS, "fake", f"{__name__}:FAKE")
    registry.connector.cache_clear()
    try:
        checks = {name: (ok, detail) for name, ok, detail in run_checks(load_settings())}
    finally:
        registry.connector.cache_clear()
    assert checks["fake"] == (True, "fake OK")


def test_a_delivery_of_a_tool_without_webhooks_is_parked_as_malformed(db: Database) -> None:
    settings = load_settings(database_url=db.url)
    with db.session() as s:
        for n, source in enumerate(("google", "nope")):
            s.add(WebhookInbox(source=source, delivery_key=f"test:{n}", event_type="x",
                               payload={}, status="pending", received_at=utcnow()))
    runtime = ActionRuntime(settings)
    try:
        result = InboxWorker(settings, db, "test", runtime).process_batch()
    finally:
        runtime.close()
    assert (result.done, result.failed) == (0, 2)
    assert runtime.built() == {}  # no client was built for them
    with db.session() as s:
        rows = list(s.scalars(select(WebhookInbox).order_by(WebhookInbox.id)))
    assert [(r.status, r.error) for r in rows] == [
        ("dead", "entrega mal formada: fuente desconocida 'google'"),
        ("dead", "entrega mal formada: fuente desconocida 'nope'")]
