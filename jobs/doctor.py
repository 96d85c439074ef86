"""`saeko-sync doctor`: every check says precisely what is wrong and how to fix it."""

from __future__ import annotations

from collections.abc import Callable

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from connectors import registry
from core.errors import SaekoError
from core.settings import Settings
from jobs.failures import database_failure
from store.db import MIGRATIONS_DIR, Database

Check = tuple[str, bool, str]


def _database(settings: Settings) -> str:
    db = Database(settings.database_url)
    try:
        with db.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except Exception as exc:  # noqa: BLE001 - any failure is reported as text
        raise SaekoError(database_failure(exc, settings.database_url)) from exc
    finally:
        db.dispose()
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
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
    return "sin configurar (opcional); ver .env.example"


def run_checks(settings: Settings) -> list[Check]:
    """Run every check (the store, the config files, then each tool); never raises."""
    checks: list[tuple[str, Callable[[Settings], str]]] = [
        ("base de datos", _database), ("configuración", _config)]
    for connector in registry.connectors():
        optional_off = not connector.required and not connector.enabled(settings)
        checks.append((connector.name, _not_configured if optional_off else connector.health))
    results: list[Check] = []
    for name, check in checks:
        try:
            results.append((name, True, check(settings)))
        except Exception as exc:  # noqa: BLE001 - doctor reports, never crashes
            results.append((name, False, str(exc)))
    return results + _quota_lines(settings)


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
