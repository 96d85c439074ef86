"""What `doctor` checks about the rules: the rule files are valid (the validator of `rules
validate`, not a second one), and every tool, and every part of a tool (a Podio app), that
the ACTIVE rules use is set up — found from the rules themselves (their entity, the
relations they read, the tools of their actions), not from a fixed list."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from pydantic import SecretStr

from connectors import registry
from core.settings import Settings
from rules.spec import Rule

Check = tuple[str, bool, str]
# A tool and one of its parts ("" for the tool itself, else e.g. a Podio app's name).
Need = tuple[str, str]
# How many problems, and how many rule ids, one doctor line lists before "y N más".
SHOWN_PROBLEMS = 3
SHOWN_RULES = 6


def rules_check(settings: Settings) -> tuple[Check, list[Rule]]:
    """The «reglas» line, and the active rules (those of the valid files)."""
    from rules import api
    from rules.config import RulesConfig
    from rules.ruleset import parse_path

    problems = api.validate(settings)
    config = RulesConfig.from_settings(settings)
    rules = [rule for parsed in parse_path(config.rules_dir, config) for rule in parsed.rules]
    active = [rule for rule in rules if rule.enabled]
    if problems:
        shown = "; ".join(str(p) for p in problems[:SHOWN_PROBLEMS])
        more = f" (y {len(problems) - SHOWN_PROBLEMS} más)" if len(problems) > SHOWN_PROBLEMS \
            else ""
        return ("reglas", False, f"{shown}{more} — {len(problems)} problema(s); de esos "
                "archivos solo corre la última versión válida, si la hubo, y `saeko-sync run` "
                "termina con 1: corrige y revisa con `saeko-sync rules validate`"), active
    return ("reglas", True, f"{len(rules)} reglas válidas, {len(active)} activas "
            f"({config.rules_dir})"), active


def rule_needs(rules: Iterable[Rule]) -> dict[Need, list[str]]:
    """(tool, part) -> the ids of the rules that need it: the tool of the rule's entity and
    of every entity its relations reach (a Podio app each), and the tool of each action."""
    from rules.catalog import ENTITIES

    tools = _action_tools()
    needs: dict[Need, list[str]] = {}
    for rule in rules:
        found: set[Need] = set()
        entities = [rule.entity] if rule.entity else []
        for path in rule.relation_paths:
            entity = rule.entity
            for name in path:
                relation = ENTITIES[entity].relations.get(name) if entity in ENTITIES else None
                if relation is None:
                    break
                entity = relation.target
                entities.append(entity)
        for name in entities:
            entity_def = ENTITIES.get(name or "")
            if entity_def is not None and entity_def.tool:
                found.add((entity_def.tool, ""))
                if entity_def.podio_app:
                    found.add((entity_def.tool, entity_def.podio_app))
        found |= {(tools[a.type.name], "") for a in rule.actions if a.type.name in tools}
        for need in found:
            needs.setdefault(need, []).append(rule.id)
    return needs


def unset_action_settings(settings: Settings, rules: Iterable[Rule]) -> list[Check]:
    """One failing line per setting an active rule's action needs (``ActionType.settings``)
    left empty, e.g. GOOGLE_KPI_SPREADSHEET_ID for M3's sheets.kpis."""
    users: dict[str, dict[str, set[str]]] = {}  # setting -> action -> rule ids
    for rule in rules:
        for action in rule.actions:
            for name in action.type.settings:
                value = getattr(settings, name.lower(), "")
                if isinstance(value, SecretStr):
                    value = value.get_secret_value()
                if not value:
                    users.setdefault(name, {}).setdefault(action.type.name, set()).add(rule.id)
    return [(name, False, f"{name} vacío: lo necesita{'n' if len(actions) > 1 else ''} "
             + "; ".join(f"{action} (reglas activas {who(sorted(ids))})"
                         for action, ids in sorted(actions.items()))
             + f"; define {name} en .env o desactiva esas reglas (activa: false)")
            for name, actions in sorted(users.items())]


def _action_tools() -> dict[str, str]:
    """action name -> the tool whose connector provides it."""
    return {action.name: connector.name for connector in registry.connectors()
            for action in importlib.import_module(connector.rule_actions).ACTIONS}


def who(rule_ids: list[str]) -> str:
    """«t3-escalar-a-jira, t4-por-validar» (at most SHOWN_RULES, then «y N más»)."""
    ids = sorted(set(rule_ids))
    text = ", ".join(ids[:SHOWN_RULES])
    return text + (f" y {len(ids) - SHOWN_RULES} más" if len(ids) > SHOWN_RULES else "")


def unset_tool(connector: registry.Connector, settings: Settings, needs: dict[Need, list[str]]
               ) -> str | None:
    """Why a tool that is not set up fails the doctor: the active rules that use it and the
    settings to define (None when no active rule needs it: then it is optional)."""
    users = [rule for (tool, _part), ids in needs.items() if tool == connector.name
             for rule in ids]
    if not users:
        return None
    missing = connector.unset(settings).get("", []) if connector.unset else []
    define = f"define {', '.join(missing)} en .env" if missing else "configúralo en .env"
    return (f"sin configurar ({', '.join(missing) or 'ver .env.example'} vacío): lo necesitan "
            f"las reglas activas {who(users)}; {define} o desactiva esas reglas "
            "(activa: false)")


def unset_parts(settings: Settings, needs: dict[Need, list[str]]) -> list[Check]:
    """One failing line per part of a set-up tool whose settings are missing (a Podio app
    without PODIO_APP_<APP>_ID: the sync skips it), with the active rules that use it."""
    checks: list[Check] = []
    for connector in registry.connectors():
        if connector.unset is None or not connector.enabled(settings):
            continue
        for part, names in connector.unset(settings).items():
            if not part or not names:
                continue
            users = needs.get((connector.name, part), [])
            used = (f"la usan las reglas activas {who(users)}" if users
                    else "ninguna regla activa la usa")
            checks.append((f"{connector.name} · {part}", False,
                           f"{', '.join(names)} sin definir: «{part}» no se sincroniza; "
                           f"{used}. Define {', '.join(names)} en .env"))
    return checks
