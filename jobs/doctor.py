"""`saeko-sync doctor`: every check says precisely what is wrong and how to fix it."""

from __future__ import annotations

from collections.abc import Callable

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from core.errors import SaekoError
from core.settings import Settings
from store.db import MIGRATIONS_DIR, Database

Check = tuple[str, bool, str]


def _database(settings: Settings) -> str:
    db = Database(settings.database_url)
    try:
        with db.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except Exception as exc:  # noqa: BLE001 - any failure is reported as text
        raise SaekoError(f"no se pudo conectar ({exc.__class__.__name__}: {exc}); revisa "
                         "DATABASE_URL") from exc
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
    from connectors.podio.streams import load_mapping
    from core.yamlconf import load_yaml_model
    from store.staff import StaffFile

    apps = load_mapping(settings.config_dir).apps
    staff = load_yaml_model(settings.config_dir / "staff.yaml", StaffFile).staff
    return f"{settings.config_dir}: {len(apps)} apps mapeadas, {len(staff)} personas"


def _podio(settings: Settings) -> str:
    from connectors.podio.client import PodioClient

    if not settings.podio_configured:
        raise SaekoError("sin configurar: define PODIO_CLIENT_ID, PODIO_CLIENT_SECRET, "
                         "credenciales y PODIO_APP_<APP>_ID en .env")
    client = PodioClient.from_settings(settings)
    try:
        names = []
        for name, (app_id, _token) in settings.podio_apps.items():
            if app_id:
                app = client.get_app(app_id)
                names.append(f"{name}={app.get('config', {}).get('name', app_id)}")
        quota = client.last_rate_limit
    finally:
        client.close()
    left = f"; cuota restante {quota['remaining']}/{quota['limit']}" if quota else ""
    return f"{settings.podio_api_url}: {len(names)} apps ({', '.join(names)}){left}"


def _jira(settings: Settings) -> str:
    from connectors.jira.client import check_jira

    return check_jira(settings)


def _google(settings: Settings) -> str:
    from connectors.google.health import check_google

    return check_google(settings)


def run_checks(settings: Settings) -> list[Check]:
    """Run every check; never raises."""
    checks: list[tuple[str, Callable[[Settings], str]]] = [
        ("base de datos", _database),
        ("configuración", _config),
        ("podio", _podio),
        ("jira", _jira),
        ("google", _google),
    ]
    optional = {"jira": settings.jira_configured,
                "google": bool(settings.google_service_account_file)}
    results: list[Check] = []
    for name, check in checks:
        if name in optional and not optional[name]:
            results.append((name, True, "sin configurar (opcional); ver .env.example"))
            continue
        try:
            results.append((name, True, check(settings)))
        except Exception as exc:  # noqa: BLE001 - doctor reports, never crashes
            results.append((name, False, str(exc)))
    return results
