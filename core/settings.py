"""One typed settings object, built from the environment and `.env`.

Nothing else in the project reads ``os.environ``. Secrets are ``SecretStr`` so they never
print. ``load_settings`` validates everything at start-up and reports every error at once.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from core.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def copy_config(folder: Path, *rules: str, source: Path | None = None) -> Path:
    """A copy of the shipped ``config/`` as ``folder``/config: every settings file
    (``config/*.yaml``), the templates, and the shipped rules matching the glob patterns
    ``rules`` (none: an empty rules folder). Tests, benchmarks and the chaos suite run on
    such copies."""
    import shutil

    source = source or PROJECT_ROOT / "config"
    config = folder / "config"
    (config / "rules").mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*.yaml")):
        shutil.copy(path, config / path.name)
    shutil.copytree(source / "plantillas", config / "plantillas", dirs_exist_ok=True)
    for pattern in rules:
        for rule in sorted((source / "rules").glob(pattern)):
            shutil.copy(rule, config / "rules" / rule.name)
    return config

# PODIO_APP_<NAME>_ID / PODIO_APP_<NAME>_TOKEN of any app config/podio.yaml names.
PODIO_APP_VARIABLE = re.compile(r"^podio_app_(?P<app>[a-z0-9_]+?)_(?P<part>id|token)$",
                                re.IGNORECASE)

# Podio documents about 1,000 calls per hour per user and API key (reference podio-api.md §3).
PODIO_DOCUMENTED_HOURLY_QUOTA = 1000


class PodioApp(BaseModel):
    """One Podio app's id and app token (PODIO_APP_<NAME>_ID / _TOKEN)."""

    id: int | None = None
    token: SecretStr = SecretStr("")


class PodioAppsSource(PydanticBaseSettingsSource):
    """Every PODIO_APP_<NAME>_ID / _TOKEN variable, whatever the app: the environment over
    `.env` (the apps themselves are those of config/podio.yaml, see ``Settings.podio_apps``)."""

    def __init__(self, settings_cls: type[BaseSettings], env: PydanticBaseSettingsSource,
                 dotenv: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self.sources = (dotenv, env)  # later wins

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # values come from __call__ only

    def __call__(self) -> dict[str, Any]:
        variables: dict[str, Any] = {}
        for source in self.sources:
            if isinstance(source, EnvSettingsSource):  # the dotenv source is one too
                variables.update(source.env_vars)
        return {"podio_app_credentials": _podio_app_values(variables)}


def _podio_app_values(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{app: {id, token}} from PODIO_APP_<APP>_ID / _TOKEN keys (any case); empty ones
    are unset."""
    apps: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        found = PODIO_APP_VARIABLE.match(key)
        if found and value not in (None, ""):
            apps.setdefault(found["app"].lower(), {})[found["part"].lower()] = value
    return apps


def podio_app_names(config_dir: Path) -> list[str]:
    """The apps config/podio.yaml names, in sync order (none when it cannot be read: the
    Podio sync reports the file's problems as file:line)."""
    try:
        data = yaml.safe_load((config_dir / "podio.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return []
    apps = data.get("apps") if isinstance(data, dict) else None
    return [str(name) for name in apps] if isinstance(apps, dict) else []


class Settings(BaseSettings):
    """Every variable is documented in `.env.example`."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # --- store and runtime ---
    database_url: str = "sqlite:///var/saeko-sync.db"
    config_dir: Path = PROJECT_ROOT / "config"
    timezone: str = "America/Tijuana"
    log_format: str = Field(default="auto", pattern="^(auto|console|json)$")
    log_level: str = "INFO"

    # --- Podio ---
    podio_api_url: str = "https://api.podio.com"
    podio_client_id: str = ""
    podio_client_secret: SecretStr = SecretStr("")
    podio_username: str = ""
    podio_password: SecretStr = SecretStr("")
    # PODIO_APP_<NAME>_ID / _TOKEN by app name (PodioAppsSource); read via podio_apps.
    podio_app_credentials: dict[str, PodioApp] = {}
    podio_rate_limit_per_hour: int = PODIO_DOCUMENTED_HOURLY_QUOTA
    # Filter calls per hour: whether Podio's filter is in the stricter "Rate limited" class
    # is not documented (docs/fidelidad.md). By default (None) the client budgets it as if
    # it were (250 of every 1,000 of PODIO_RATE_LIMIT_PER_HOUR) until Podio's first answer
    # to a filter states its ceiling (X-Rate-Limit-Limit), then that ceiling.
    podio_filter_rate_limit_per_hour: int | None = Field(default=None, ge=1)
    podio_sync_overlap_seconds: int = 120
    # The zone Podio reads last_edit_on filter bounds in: "UTC" or a zone name; empty =
    # find it out (connectors/podio/filter_zone.py; undocumented, docs/fidelidad.md).
    podio_filter_timezone: str = ""
    podio_page_size: int = Field(default=500, ge=1, le=500)
    podio_timeout_seconds: float = 30.0
    podio_max_retry_seconds: float = 900.0
    podio_retry_base_seconds: float = 1.0
    podio_rate_limit_backoff_seconds: float = 60.0
    podio_deletion_scan_hours: float = 24.0
    # The task stream (connectors/podio/tasks.py) runs at most this often; a full sync always.
    podio_tasks_sync_minutes: float = Field(default=60.0, ge=0)

    # --- Jira ---
    jira_url: str = ""
    jira_email: str = ""
    jira_api_token: SecretStr = SecretStr("")
    jira_webhook_secret: SecretStr = SecretStr("")
    jira_projects: str = "SOP,DEV,PROD"
    # The custom field holding the Podio ticket id: its name (resolved per site) or its id.
    jira_ticket_field: str = "Ticket Podio"
    # JQL dates are read in the API user's profile zone; empty = ask Jira (GET /myself) once.
    jira_timezone: str = ""
    jira_page_size: int = Field(default=100, ge=1, le=5000)
    jira_sync_overlap_minutes: int = Field(default=5, ge=1)
    jira_timeout_seconds: float = 30.0
    jira_max_retries: int = Field(default=3, ge=0, le=10)
    jira_write_retries: int = Field(default=3, ge=0, le=10)
    jira_retry_base_seconds: float = Field(default=1.0, ge=0)
    jira_max_retry_seconds: float = Field(default=60.0, ge=0)

    # --- Google ---
    google_api_root: str = ""
    google_service_account_file: Path | None = None
    google_delegated_user: str = ""
    google_kpi_spreadsheet_id: str = ""
    # Looker Studio (saeko-sync kpis --looker, docs/kpis.md): the template report to copy
    # and the aliases of its data sources (each the name of the tab it reads; empty: all).
    looker_template_report_id: str = ""
    looker_template_aliases: str = ""
    google_usage_spreadsheet_id: str = ""
    google_csat_form_id: str = ""
    google_nps_form_id: str = ""
    google_micro_form_id: str = ""  # M4's monthly micro-survey
    google_calendar_id: str = "primary"
    google_timeout_seconds: float = Field(default=30.0, gt=0)
    google_max_retry_seconds: float = Field(default=120.0, ge=0)
    google_retry_base_seconds: float = Field(default=1.0, ge=0)
    google_forms_page_size: int = Field(default=5000, ge=1, le=5000)
    google_forms_overlap_seconds: int = Field(default=60, ge=0)
    # Hours between unfiltered reads of each form (edited answers, docs/fidelidad.md).
    google_forms_full_read_hours: float = Field(default=24.0, gt=0)
    google_sheets_reads_per_minute: int = Field(default=60, ge=1)
    google_sheets_writes_per_minute: int = Field(default=60, ge=1)
    google_forms_lists_per_minute: int = Field(default=180, ge=1)

    # --- service ---
    webhook_token: SecretStr = SecretStr("")
    public_url: str = ""
    serve_host: str = "127.0.0.1"
    serve_port: int = 8080
    sync_interval_seconds: float = Field(default=300.0, gt=0)
    # While a tool's webhooks keep arriving, `serve` polls its sources only this often (the
    # safety net for lost deliveries; jobs/safety_net.py); 0 polls them at every tick.
    sync_safety_net_seconds: float = Field(default=1800.0, ge=0)
    # Once this service's Podio calls in the last hour pass WEBHOOK_BATCH_ABOVE of Podio's
    # documented hourly quota, update notices of one app wait until the oldest is
    # WEBHOOK_BATCH_SECONDS old and are read with one filter call (jobs/inbox.py); 0
    # seconds: every delivery is read at once.
    webhook_batch_seconds: float = Field(default=30.0, ge=0)
    webhook_batch_above: float = Field(default=0.2, ge=0)
    rules_interval_seconds: float = Field(default=60.0, gt=0)
    # Minutes between `serve`'s deletion scans of every tool that has one (Podio's item ids
    # per app, Jira's issue ids): deletions made while it was down or whose webhook was lost.
    deletion_scan_minutes: float = Field(default=180.0, gt=0)
    # A delivery claimed by a replica returns to the pool if not finished within this time.
    inbox_claim_seconds: float = Field(default=120.0, gt=0)
    # The status page (docs/serve.md): its token (Bearer, ?token= or basic auth; without
    # one the page answers only on a loopback SERVE_HOST to loopback clients), how often it
    # reloads itself (0: never).
    status_token: SecretStr = SecretStr("")
    status_refresh_seconds: int = Field(default=30, ge=0)
    # Trace retention (rule_runs): traces of runs that matched, and the much more numerous
    # "no coincide" ones, kept shortest. `serve` prunes every hour, `run` after its cycle.
    trace_retention_days: float = Field(default=30.0, gt=0)
    trace_miss_retention_hours: float = Field(default=24.0, gt=0)

    # --- rule engine (docs/rules.md) ---
    rules_dir: Path | None = None  # default: <config_dir>/rules
    rules_storm_limit: int = Field(default=25, ge=1)
    rules_max_attempts: int = Field(default=5, ge=1)
    rules_retry_base_seconds: float = Field(default=60.0, ge=0)
    rules_event_batch: int = Field(default=5000, ge=1)
    # Test-only (bench/chaos.py): `run` and `serve` evaluate the rules at this instant (UTC)
    # instead of the wall clock, so a replayed day gives the same «ahora»/«hoy» every time.
    rules_frozen_now: datetime | None = None

    # --- reports (M10, M12; docs/informes.md) ---
    # Where each report is kept as files (HTML and PDF), one folder per kind and period.
    reports_dir: Path = PROJECT_ROOT / "var" / "informes"

    @classmethod
    def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        apps = PodioAppsSource(settings_cls, env_settings, dotenv_settings)
        return init_settings, env_settings, apps, dotenv_settings, file_secret_settings

    @model_validator(mode="before")
    @classmethod
    def _app_arguments(cls, data: Any) -> Any:
        """``podio_app_<name>_id=`` / ``_token=`` arguments override the variables."""
        if not isinstance(data, dict):
            return data
        given = _podio_app_values({k: v for k, v in data.items() if isinstance(k, str)})
        if not given:
            return data
        data = {k: v for k, v in data.items()
                if not (isinstance(k, str) and PODIO_APP_VARIABLE.match(k))}
        apps = {name: dict(values) for name, values in
                (data.get("podio_app_credentials") or {}).items()}
        for name, values in given.items():
            apps.setdefault(name, {}).update(values)
        return {**data, "podio_app_credentials": apps}

    @field_validator("timezone", "podio_filter_timezone")
    @classmethod
    def _known_timezone(cls, value: str, info: ValidationInfo) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        if not value and info.field_name == "podio_filter_timezone":
            return value  # empty: found out (connectors/podio/filter_zone.py)
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"zona horaria desconocida {value!r}; usa p. ej. America/Tijuana"
                             ) from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        """A URL of a supported store, checked before anything connects."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        example = "sqlite:///var/saeko-sync.db o postgresql+psycopg://usuario:clave@host:5432/base"
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"no es una URL de base de datos; usa {example}") from exc
        backend = url.get_backend_name()
        if backend != "sqlite" and not backend.startswith("postgres"):
            raise ValueError(f"«{url.drivername}» no es SQLite ni PostgreSQL; usa {example}")
        if backend != "sqlite" and (
                url.drivername != "postgresql+psycopg" or not url.host or not url.database):
            raise ValueError(f"para PostgreSQL escribe postgresql+psycopg://usuario:clave@"
                             f"host:5432/base (con servidor y base); usa {example}")
        return value

    @field_validator("rules_frozen_now", "podio_filter_rate_limit_per_hour", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("rules_frozen_now")
    @classmethod
    def _naive_utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    @model_validator(mode="after")
    def _misses_kept_shortest(self) -> Settings:
        if self.trace_miss_retention_hours > self.trace_retention_days * 24:
            raise ValueError("TRACE_MISS_RETENTION_HOURS no puede pasar de TRACE_RETENTION_DAYS "
                             "(en horas): las trazas «no coincide» se guardan menos tiempo")
        return self

    @cached_property
    def podio_apps(self) -> dict[str, tuple[int | None, str]]:
        """App name -> (app id, app token) for every app of config/podio.yaml, in its order
        (None and "" when PODIO_APP_<NAME>_ID / _TOKEN are not set)."""
        apps = {}
        for name in podio_app_names(Path(self.config_dir)):
            app = self.podio_app_credentials.get(name.lower(), PodioApp())
            apps[name] = (app.id, app.token.get_secret_value())
        return apps

    @property
    def podio_configured(self) -> bool:
        return bool(self.podio_client_id and any(app_id for app_id, _ in self.podio_apps.values()))

    @property
    def jira_configured(self) -> bool:
        return bool(self.jira_url and self.jira_email and self.jira_api_token.get_secret_value())

    @property
    def jira_project_keys(self) -> list[str]:
        return [key.strip() for key in self.jira_projects.split(",") if key.strip()]

    def secret_values(self) -> list[str]:
        """Every secret's value, for redaction in logs and traces."""
        values = [*self.__dict__.values(),
                  *(app.token for app in self.podio_app_credentials.values())]
        return [value.get_secret_value() for value in values
                if isinstance(value, SecretStr) and value.get_secret_value()]


def load_settings(**overrides: object) -> Settings:
    """Build and validate settings, turning every validation error into one ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper()
            if error["loc"][:1] == ("podio_app_credentials",) and len(error["loc"]) == 3:
                name = f"PODIO_APP_{error['loc'][1]}_{error['loc'][2]}".upper()
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"- {name}: {message} (corrígelo en .env o en el entorno)")
        raise ConfigError("Ajustes inválidos:\n" + "\n".join(lines)) from exc
