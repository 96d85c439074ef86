"""`saeko-sync hooks register`: create the webhooks saeko-sync needs, idempotently, in every
configured tool that allows it, and say what an admin registers by hand in the others."""

from __future__ import annotations

from connectors import registry
from connectors.clients import ActionRuntime
from connectors.registry import HookPlan
from core.errors import ConfigError
from core.settings import Settings


def receiver_url(settings: Settings, source: str) -> str:
    """Where ``source``'s webhooks reach saeko-sync: PUBLIC_URL/hooks/<source>/<token>."""
    token = settings.webhook_token.get_secret_value()
    if not settings.public_url or not token:
        raise ConfigError("PUBLIC_URL and WEBHOOK_TOKEN must be set (the address the tools "
                          "reach saeko-sync at, and the secret path token)")
    return f"{settings.public_url.rstrip('/')}/hooks/{source}/{token}"


def register_hooks(settings: Settings, runtime: ActionRuntime) -> list[HookPlan]:
    """Create the missing hooks of every configured tool that registers its own (existing
    ones are left alone); the tools' clients come from ``runtime``."""
    plans: list[HookPlan] = []
    for connector in registry.with_webhooks():
        hooks = connector.webhooks
        if hooks is None or hooks.register is None or not connector.enabled(settings):
            continue
        url = receiver_url(settings, connector.name)
        plans.extend(hooks.register(settings, runtime.client(connector.name), url))
    return plans


def instructions(settings: Settings) -> list[str]:
    """What an admin registers by hand, for each configured tool whose hooks cannot be
    created by saeko-sync."""
    out: list[str] = []
    for connector in registry.with_webhooks():
        hooks = connector.webhooks
        if hooks is None or hooks.instructions is None or not connector.enabled(settings):
            continue
        out.append(hooks.instructions(settings, receiver_url(settings, connector.name)))
    return out
