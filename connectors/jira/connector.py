"""Jira as a connector: the ``CONNECTOR`` jobs and rules use (see ``connectors.registry``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connectors.jira import webhooks
from connectors.registry import Connector, Webhooks
from core.errors import ConfigError, RemoteDataError
from core.settings import Settings

if TYPE_CHECKING:
    from connectors.jira.client import JiraClient


def _configured(settings: Settings, _source: str) -> bool:
    return settings.jira_configured


def _enabled(settings: Settings) -> bool:
    return settings.jira_configured


def _unset(settings: Settings) -> dict[str, list[str]]:
    """Which of the three settings Jira needs are empty."""
    values = {"JIRA_URL": settings.jira_url, "JIRA_EMAIL": settings.jira_email,
              "JIRA_API_TOKEN": settings.jira_api_token.get_secret_value()}
    return {"": [name for name, value in values.items() if not value]}


def client(settings: Settings) -> JiraClient:
    """The Jira client of these settings (ConfigError when Jira is not set up)."""
    if not settings.jira_configured:
        raise ConfigError("Jira no está configurado: define JIRA_URL, JIRA_EMAIL y "
                          "JIRA_API_TOKEN en .env")
    from connectors.jira.client import JiraClient

    return JiraClient(settings)


def health(settings: Settings) -> str:
    """One line saying Jira answers with these credentials and sees the configured projects;
    raises ConfigError / AuthError / TransientError with the fix otherwise (``doctor``)."""
    from connectors.jira.client import JiraClient

    jira = JiraClient(settings)
    try:
        me = jira.call("leer el usuario de la API (myself)", jira.reader.myself)
        missing = []
        for key in settings.jira_project_keys:
            try:
                jira.call(f"leer el proyecto {key}", jira.reader.project, key)
            except RemoteDataError:
                missing.append(key)
        if missing:
            raise ConfigError(f"JIRA_PROJECTS incluye {', '.join(missing)}, que "
                              f"{settings.jira_email} no puede ver (no existe o no tiene "
                              "permiso de ver); corrige JIRA_PROJECTS o los permisos del "
                              "proyecto")
        field_id = jira.ticket_field_id()
    finally:
        jira.close()
    zone = settings.jira_timezone or me.get("timeZone", "?")
    return (f"{settings.jira_url}: {me.get('displayName')} ({settings.jira_email}), proyectos "
            f"{', '.join(settings.jira_project_keys)}, campo del ticket {field_id}, zona de JQL "
            f"{zone}")


def _scan_deletions(settings: Settings, db: Any, jira: Any) -> int:
    from connectors.jira.deletions import scan_deletions

    return scan_deletions(settings, db, jira)


def _quota(_settings: Settings, jira: Any) -> dict[str, Any]:
    """This process's calls since start, and Jira's X-RateLimit-Limit/-Remaining when it
    sends them (reference §6.1; API-token traffic has no hourly points quota, §6.2)."""
    reported = list(jira.rate_reports.values()) if jira is not None else []
    return {"used": jira.calls if jira is not None else 0, "window": "desde el arranque",
            "limit": None, "reported": reported,
            "note": None if reported else "Jira no envió X-RateLimit-* en sus respuestas: con "
            "token de API no tiene cuota por hora, solo límites por segundo"}


def _record_url(settings: Settings, _issue_id: str, raw: Any) -> str | None:
    """The issue's page on the site (/browse/KEY), from its stored payload."""
    key = raw.get("key") if isinstance(raw, dict) else None
    return f"{settings.jira_url.rstrip('/')}/browse/{key}" if key and settings.jira_url else None


CONNECTOR = Connector(
    name="jira",
    sources=("jira",),
    configured=_configured,
    enabled=_enabled,
    client=client,
    health=health,
    rule_actions="connectors.jira.rule_actions",
    webhooks=Webhooks(receive=webhooks.receive, problem=webhooks.problem,
                      record_key=webhooks.record_key, handle=webhooks.handle,
                      instructions=webhooks.instructions),
    quota=_quota,
    record_url=_record_url,
    scan_deletions=_scan_deletions,
    unset=_unset,
)
