"""`saeko-sync hooks register`: create the Podio hooks saeko-sync needs, idempotently."""

from __future__ import annotations

from dataclasses import dataclass

from connectors.podio.client import PodioClient
from core.errors import ConfigError
from core.settings import Settings

PODIO_HOOK_TYPES = ("item.create", "item.update", "item.delete")


@dataclass
class HookPlan:
    app: str
    type: str
    url: str
    status: str  # created | exists (active/inactive)


def receiver_url(settings: Settings, source: str) -> str:
    token = settings.webhook_token.get_secret_value()
    if not settings.public_url or not token:
        raise ConfigError("PUBLIC_URL and WEBHOOK_TOKEN must be set (the address Podio/Jira "
                          "reach saeko-sync at, and the secret path token)")
    return f"{settings.public_url.rstrip('/')}/hooks/{source}/{token}"


def register_podio_hooks(settings: Settings, client: PodioClient) -> list[HookPlan]:
    """Create missing item hooks on every configured app; existing ones are left alone."""
    url = receiver_url(settings, "podio")
    plans: list[HookPlan] = []
    for name, (app_id, _token) in settings.podio_apps.items():
        if not app_id:
            continue
        existing = {(h.get("url"), h.get("type")): h for h in
                    client.request("GET", f"/hook/app/{app_id}/", app_id=app_id) or []}
        for kind in PODIO_HOOK_TYPES:
            found = existing.get((url, kind))
            if found is not None:
                plans.append(HookPlan(name, kind, url, f"exists ({found.get('status', '?')})"))
                continue
            client.request("POST", f"/hook/app/{app_id}/", json={"url": url, "type": kind},
                           app_id=app_id)
            plans.append(HookPlan(name, kind, url, "created"))
    return plans


def jira_instructions(settings: Settings) -> str:
    """What an admin registers in Jira (admin webhooks cannot be created by API tokens)."""
    url = receiver_url(settings, "jira")
    projects = ", ".join(settings.jira_project_keys)
    return (f"Jira → Configuración → Sistema → WebHooks → Crear:\n"
            f"  URL: {url}\n  Secreto: el valor de JIRA_WEBHOOK_SECRET\n"
            f"  Eventos: issue created, issue updated, comment created\n"
            f"  JQL: project in ({projects})")
