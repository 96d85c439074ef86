"""`saeko-sync hooks register`: create the webhooks saeko-sync needs, idempotently, in every
configured tool that allows it, and say what an admin registers by hand in the others."""

from __future__ import annotations

from connectors import registry
from connectors.clients import ActionRuntime
from connectors.registry import HookPlan
from core.errors import ConfigError
from core.settings import Settings

# The path token is the only secret of Podio's deliveries (Podio signs nothing): 24
# characters at least, the length of `secrets.token_urlsafe(18)` (144 random bits).
MIN_WEBHOOK_TOKEN = 24

# What "inactivo" means, printed under the table when a hook is not active yet.
INACTIVE_HELP = (
    "«inactivo»: Podio no envía eventos a un hook hasta verificarlo. Al crearlo (o al pedirlo "
    "de nuevo, como acaba de hacer este comando) Podio manda un hook.verify a PUBLIC_URL y "
    "`saeko-sync serve` lo valida solo en unos segundos. Si sigue inactivo: revisa que serve "
    "esté corriendo, que PUBLIC_URL llegue a él desde internet (Podio solo llama a los "
    "puertos 80 y 443) y vuelve a correr `saeko-sync hooks register`. Mientras tanto la "
    "sincronización periódica trae los cambios igual, solo que más tarde.")


def receiver_url(settings: Settings, source: str) -> str:
    """Where ``source``'s webhooks reach saeko-sync: PUBLIC_URL/hooks/<source>/<token>."""
    token = settings.webhook_token.get_secret_value()
    if not settings.public_url or not token:
        missing = [name for name, value in (("PUBLIC_URL", settings.public_url),
                                            ("WEBHOOK_TOKEN", token)) if not value]
        raise ConfigError(f"{' y '.join(missing)} sin definir: define en .env la dirección "
                          "pública de `saeko-sync serve` (PUBLIC_URL) y el token secreto de la "
                          "ruta de los webhooks (WEBHOOK_TOKEN)")
    if len(token) < MIN_WEBHOOK_TOKEN:
        raise ConfigError(f"WEBHOOK_TOKEN es demasiado corto ({len(token)} caracteres; mínimo "
                          f"{MIN_WEBHOOK_TOKEN}): es la única protección de los webhooks de "
                          "Podio; genera uno con `python -c \"import secrets; "
                          "print(secrets.token_urlsafe(32))\"` y ponlo en .env")
    return f"{settings.public_url.rstrip('/')}/hooks/{source}/{token}"


def shown_url(url: str) -> str:
    """A receiver URL without its secret token (…/hooks/podio/abcd…)."""
    head, sep, token = url.rpartition("/")
    return f"{head}{sep}{token[:4]}…" if sep and len(token) > 4 else url


def status_text(plan: HookPlan) -> str:
    """The table's «estado», in Spanish."""
    if plan.status == "deleted":
        return f"borrado: era nuestro con otra URL o token ({shown_url(plan.url)})"
    if plan.status == "created":
        return "creado; inactivo hasta que serve lo verifique"
    if plan.active:
        return "ya existía; activo (recibe eventos)"
    return "ya existía; inactivo (se pidió verificarlo de nuevo)"


def register_hooks(settings: Settings, runtime: ActionRuntime) -> list[HookPlan]:
    """Create the missing hooks of every configured tool that registers its own, and delete
    its stale ones (ours, at an older PUBLIC_URL or WEBHOOK_TOKEN); the tools' clients come
    from ``runtime``."""
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
