"""Podio as a connector: the ``CONNECTOR`` jobs and rules use (see ``connectors.registry``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors.podio import webhooks
from connectors.registry import Connector, MappedField, Webhooks
from core.errors import ConfigError, SaekoError
from core.settings import Settings

if TYPE_CHECKING:
    from connectors.podio.client import PodioClient


def _configured(settings: Settings, _source: str) -> bool:
    return settings.podio_configured


def _enabled(settings: Settings) -> bool:
    return settings.podio_configured


def client(settings: Settings) -> PodioClient:
    """The Podio client of these settings (ConfigError when Podio is not set up)."""
    if not settings.podio_configured:
        raise ConfigError("Podio no está configurado: define PODIO_CLIENT_ID y los ids de "
                          "las apps en .env")
    from connectors.podio.client import PodioClient

    return PodioClient.from_settings(settings)


def health(settings: Settings) -> str:
    """The doctor's Podio line: every configured app answers, and the quota left."""
    if not settings.podio_configured:
        raise SaekoError("sin configurar: define PODIO_CLIENT_ID, PODIO_CLIENT_SECRET, "
                         "credenciales y PODIO_APP_<APP>_ID en .env")
    podio = client(settings)
    try:
        names = []
        for name, (app_id, _token) in settings.podio_apps.items():
            if app_id:
                app = podio.get_app(app_id)
                names.append(f"{name}={app.get('config', {}).get('name', app_id)}")
        quota = podio.last_rate_limit
    finally:
        podio.close()
    left = f"; cuota restante {quota['remaining']}/{quota['limit']}" if quota else ""
    return f"{settings.podio_api_url}: {len(names)} apps ({', '.join(names)}){left}"


def _config_summary(settings: Settings) -> str:
    from store.entities import load_mapping

    return f"{len(load_mapping(settings.config_dir).apps)} apps mapeadas"


def _unset(settings: Settings) -> dict[str, list[str]]:
    """PODIO_CLIENT_ID when empty, and each app of config/podio.yaml whose id is unset."""
    unset = {"": [] if settings.podio_client_id else ["PODIO_CLIENT_ID"]}
    for name, (app_id, _token) in settings.podio_apps.items():
        if not app_id:
            unset[name] = [f"PODIO_APP_{name.upper()}_ID"]
    return unset


def _quota(settings: Settings, podio: PodioClient | None) -> dict[str, Any]:
    """This process's calls in the last hour (the client's own guard) and what Podio says
    on every response (X-Rate-Limit-Limit / X-Rate-Limit-Remaining, reference §3), per
    credential and ceiling."""
    return {"used": podio.quota.used_last_hour if podio else 0, "window": "última hora",
            "limit": settings.podio_rate_limit_per_hour,
            "reported": list(podio.rate_reports.values()) if podio else [], "note": None}


def _record_url(_settings: Settings, item_id: str, raw: Any) -> str:
    from connectors.podio.links import item_url

    return item_url(item_id, raw)


def _credential_label(credential: str) -> str:
    """The client's subjects: the integration user, or one app's token."""
    if credential == "user":
        return "usuario de integración"
    return f"token de la app {credential.removeprefix('app:')}"


def _mapped_fields(config_dir: Path) -> dict[str, list[MappedField]]:
    """app -> its mapped fields (config/podio.yaml)."""
    from store.entities import load_mapping

    return {name: [MappedField(column, spec.field, spec.type, spec.fk)
                   for column, spec in app.fields.items()]
            for name, app in load_mapping(config_dir).apps.items()}


def _scan_deletions(settings: Settings, db: Any, podio: PodioClient) -> int:
    from connectors.podio.sync import scan_all_deletions

    return scan_all_deletions(settings, db, podio)


CONNECTOR = Connector(
    name="podio",
    sources=("podio",),
    configured=_configured,
    enabled=_enabled,
    client=client,
    health=health,
    rule_actions="connectors.podio.rule_actions",
    required=True,
    webhooks=Webhooks(receive=webhooks.receive, problem=webhooks.problem,
                      record_key=webhooks.record_key, handle=webhooks.handle,
                      register=webhooks.register, batch_key=webhooks.batch_key,
                      handle_many=webhooks.handle_many, batch_now=webhooks.BATCH_NOW),
    config_summary=_config_summary,
    quota=_quota,
    record_url=_record_url,
    credential_label=_credential_label,
    mapped_fields=_mapped_fields,
    scan_deletions=_scan_deletions,
    unset=_unset,
)
