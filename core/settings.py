"""One typed settings object, built from the environment and `.env`.

Nothing else in the project reads ``os.environ``. Secrets are ``SecretStr`` so they never
print. ``load_settings`` validates everything at start-up and reports every error at once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The six Podio apps of the "Postventa" workspace (SPEC section 3), in sync order:
# referenced apps first so references resolve in one pass.
PODIO_APPS = ("clientes", "escuelas", "usuarios", "contratos", "facturas", "tickets")

# Podio documents about 1,000 calls per hour per user and API key (reference podio-api.md §3).
PODIO_DOCUMENTED_HOURLY_QUOTA = 1000


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
    podio_app_clientes_id: int | None = None
    podio_app_clientes_token: SecretStr = SecretStr("")
    podio_app_escuelas_id: int | None = None
    podio_app_escuelas_token: SecretStr = SecretStr("")
    podio_app_usuarios_id: int | None = None
    podio_app_usuarios_token: SecretStr = SecretStr("")
    podio_app_tickets_id: int | None = None
    podio_app_tickets_token: SecretStr = SecretStr("")
    podio_app_contratos_id: int | None = None
    podio_app_contratos_token: SecretStr = SecretStr("")
    podio_app_facturas_id: int | None = None
    podio_app_facturas_token: SecretStr = SecretStr("")
    podio_rate_limit_per_hour: int = PODIO_DOCUMENTED_HOURLY_QUOTA
    podio_sync_overlap_seconds: int = 120
    podio_page_size: int = Field(default=500, ge=1, le=500)
    podio_timeout_seconds: float = 30.0
    podio_max_retry_seconds: float = 900.0
    podio_retry_base_seconds: float = 1.0
    podio_rate_limit_backoff_seconds: float = 60.0
    podio_deletion_scan_hours: float = 24.0

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
    google_usage_spreadsheet_id: str = ""
    google_csat_form_id: str = ""
    google_nps_form_id: str = ""
    google_calendar_id: str = "primary"
    google_timeout_seconds: float = Field(default=30.0, gt=0)
    google_max_retry_seconds: float = Field(default=120.0, ge=0)
    google_retry_base_seconds: float = Field(default=1.0, ge=0)
    google_forms_page_size: int = Field(default=5000, ge=1, le=5000)
    google_forms_overlap_seconds: int = Field(default=60, ge=0)
    google_sheets_reads_per_minute: int = Field(default=60, ge=1)
    google_sheets_writes_per_minute: int = Field(default=60, ge=1)
    google_forms_lists_per_minute: int = Field(default=180, ge=1)

    # --- service ---
    webhook_token: SecretStr = SecretStr("")
    public_url: str = ""
    serve_host: str = "127.0.0.1"
    serve_port: int = 8080
    sync_interval_seconds: float = Field(default=300.0, gt=0)
    rules_interval_seconds: float = Field(default=60.0, gt=0)
    # A delivery claimed by a replica returns to the pool if not finished within this time.
    inbox_claim_seconds: float = Field(default=120.0, gt=0)

    # --- rule engine (docs/rules.md) ---
    rules_dir: Path | None = None  # default: <config_dir>/rules
    rules_storm_limit: int = Field(default=25, ge=1)
    rules_max_attempts: int = Field(default=5, ge=1)
    rules_retry_base_seconds: float = Field(default=60.0, ge=0)
    rules_event_batch: int = Field(default=5000, ge=1)
    # Test-only (bench/chaos.py): `run` and `serve` evaluate the rules at this instant (UTC)
    # instead of the wall clock, so a replayed day gives the same «ahora»/«hoy» every time.
    rules_frozen_now: datetime | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}; use e.g. America/Tijuana") from exc
        return value

    @field_validator("rules_frozen_now", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("rules_frozen_now")
    @classmethod
    def _naive_utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    @cached_property
    def podio_apps(self) -> dict[str, tuple[int | None, str]]:
        """App name -> (app id, app token) for the configured Podio apps."""
        return {
            name: (
                getattr(self, f"podio_app_{name}_id"),
                getattr(self, f"podio_app_{name}_token").get_secret_value(),
            )
            for name in PODIO_APPS
        }

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
        return [
            value.get_secret_value()
            for value in self.__dict__.values()
            if isinstance(value, SecretStr) and value.get_secret_value()
        ]


def load_settings(**overrides: object) -> Settings:
    """Build and validate settings, turning every validation error into one ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper()
            lines.append(f"- {name}: {error['msg']} (set it in .env or the environment)")
        raise ConfigError("Invalid settings:\n" + "\n".join(lines)) from exc
