"""`saeko-sync doctor`: every check says precisely what is wrong and how to fix it."""

from __future__ import annotations

from collections.abc import Callable

from connectors import registry
from core.errors import SaekoError
from core.settings import Settings
from jobs.failures import database_failure
from store.db import Database

Check = tuple[str, bool, str]


def _database(settings: Settings) -> str:
    db = Database(settings.database_url)
    try:
        current, head = db.revisions()
    except Exception as exc:  # noqa: BLE001 - any failure is reported as text
        raise SaekoError(database_failure(exc, settings.database_url)) from exc
    finally:
        db.dispose()
    if current != head:
        raise SaekoError(f"migración {current or 'ninguna'} ≠ {head}: ejecuta "
                         "`saeko-sync db upgrade`")
    return f"{db.engine.dialect.name}, migración {current}"


def _config(settings: Settings) -> str:
    from core.yamlconf import load_yaml_model
    from store.staff import StaffFile

    mapped = [summary(settings) for connector in registry.connectors()
              if (summary := connector.config_summary) is not None]
    staff = load_yaml_model(settings.config_dir / "staff.yaml", StaffFile).staff
    return f"{settings.config_dir}: {', '.join([*mapped, f'{len(staff)} personas'])}"


def _not_configured(_settings: Settings) -> str:
    return "sin configurar (opcional: ninguna regla activa lo usa); ver .env.example"


def run_checks(settings: Settings) -> list[Check]:
    """Run every check (the store, the config files, the rules, then each tool — failing
    when a tool or a Podio app the active rules need is not set up); never raises."""
    from jobs import doctor_rules

    results = [_run("base de datos", _database, settings),
               _run("configuración", _config, settings)]
    try:
        line, active = doctor_rules.rules_check(settings)
    except Exception as exc:  # noqa: BLE001 - doctor reports, never crashes
        line, active = ("reglas", False, f"no se pudieron leer: {exc}"), []
    results.append(line)
    needs = doctor_rules.rule_needs(active)
    for connector in registry.connectors():
        health: Callable[[Settings], str] = connector.health
        if not connector.required and not connector.enabled(settings):
            why = doctor_rules.unset_tool(connector, settings, needs)
            if why is not None:
                results.append((connector.name, False, why))
                continue
            health = _not_configured
        results.append(_run(connector.name, health, settings))
    results += doctor_rules.unset_parts(settings, needs)
    results += doctor_rules.unset_action_settings(settings, active)
    return results + _quota_lines(settings)


def _run(name: str, check: Callable[[Settings], str], settings: Settings) -> Check:
    try:
        return (name, True, check(settings))
    except Exception as exc:  # noqa: BLE001 - doctor reports, never crashes
        return (name, False, str(exc))


def _quota_lines(settings: Settings) -> list[Check]:
    """One line per tool: its quota over the last hour as the tool reported it to any
    process (jobs/quota.py)."""
    from jobs import quota

    db = Database(settings.database_url)
    try:
        return quota.doctor_lines(settings, db)
    except Exception as exc:  # noqa: BLE001 - doctor reports, never crashes
        return [("cuotas", False, f"no se pudieron leer ({exc.__class__.__name__}: {exc})")]
    finally:
        db.dispose()
