"""Google as a connector: the ``CONNECTOR`` jobs and rules use (see ``connectors.registry``).

Forms and the usage Sheet feed two sources; Gmail, Calendar and the KPI Sheet are written by
rule actions; Google sends no webhooks saeko-sync listens to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from connectors.registry import Connector
from core.errors import ConfigError, ConnectorError, SaekoError
from core.settings import Settings

if TYPE_CHECKING:
    from connectors.google.client import GoogleClient

DOCTOR_MAX_RETRY_SECONDS = 10.0  # doctor answers quickly rather than waiting out an outage


def health(settings: Settings) -> str:
    """One line 'OK: …' when the key, the sheets, the forms (and their question ids), Gmail
    and Calendar all answer; otherwise raises a ConfigError / ConnectorError whose message
    names every problem and its fix (``saeko-sync doctor`` shows it)."""
    if not settings.google_service_account_file:
        raise ConfigError("GOOGLE_SERVICE_ACCOUNT_FILE está vacío: pon en .env la llave de la "
                          "cuenta de servicio")
    quick = settings.model_copy(update={"google_max_retry_seconds": min(
        settings.google_max_retry_seconds, DOCTOR_MAX_RETRY_SECONDS)})
    ok: list[str] = []
    problems: list[str] = []
    from connectors.google.client import GoogleClient
    from connectors.google.streams import load_config

    with GoogleClient(quick) as client:
        def check(name: str, probe: Callable[[], str]) -> None:
            try:
                ok.append(probe())
            except (SaekoError, ValueError) as exc:
                problems.append(f"{name}: {exc}")

        config = load_config(settings.config_dir)
        ok.append(f"llave de {client.identity}")  # ConfigError if the key file is unusable
        usage = config.usage_sheet
        usage_id = str(getattr(settings, usage.spreadsheet_id_setting) or "")

        def usage_probe() -> str:
            meta = client.sheets().http_client.fetch_sheet_metadata(usage_id)
            titles = [s["properties"]["title"] for s in meta.get("sheets", [])]
            if usage.tab not in titles:
                raise ValueError(f"no existe la pestaña {usage.tab!r} (pestañas: "
                                 f"{', '.join(titles)}); corrige usage_sheet.tab en "
                                 "config/google.yaml")
            return f"pestaña {usage.tab!r} de la hoja de uso"

        if usage_id:
            check("hoja de uso", usage_probe)
        kpi_id = settings.google_kpi_spreadsheet_id

        def kpi_probe() -> str:
            client.sheets(write=True).http_client.fetch_sheet_metadata(kpi_id)
            return "hoja de KPIs"

        if kpi_id:
            check("hoja de KPIs", kpi_probe)
        forms = client.service("forms").forms()
        for name, mapping in config.forms.items():
            form_id = str(getattr(settings, mapping.form_id_setting) or "")
            if not form_id:
                continue

            def form_probe(name: str = name, form_id: str = form_id,
                           wanted: frozenset[str] = frozenset(mapping.questions)
                           ) -> str:
                form = client.execute(forms.get(formId=form_id), use="forms",
                                      what=f"Forms get {name}")
                ids = {i["questionItem"]["question"]["questionId"]
                       for i in form.get("items", []) if "questionItem" in i}
                missing = sorted(wanted - ids)
                if missing:
                    raise ValueError(f"las preguntas {', '.join(missing)} no están en el "
                                     f"formulario; corrige forms.{name}.questions en "
                                     "config/google.yaml")
                return f"formulario {name}"

            check(f"formulario {name}", form_probe)
        if settings.google_delegated_user:
            user, calendar_id = settings.google_delegated_user, settings.google_calendar_id

            def gmail_probe() -> str:
                messages = client.service("gmail").users().messages()
                client.execute(messages.list(userId="me", maxResults=1), use="gmail",
                               what="Gmail list")
                return f"Gmail como {user}"

            def calendar_probe() -> str:
                events = client.service("calendar").events()
                client.execute(events.list(calendarId=calendar_id, maxResults=1),
                               use="calendar", what="Calendar list")
                return f"Calendar {calendar_id}"

            check("gmail", gmail_probe)
            check("calendar", calendar_probe)
        else:
            problems.append("gmail/calendar: GOOGLE_DELEGATED_USER está vacío: pon el buzón con "
                            "el que saeko-sync envía")
    if problems:
        raise ConnectorError("; ".join(problems))
    return "OK: " + ", ".join(ok)


def _configured(settings: Settings, source: str) -> bool:
    if not settings.google_service_account_file:
        return False
    if source == "forms":
        return bool(settings.google_csat_form_id or settings.google_nps_form_id
                    or settings.google_micro_form_id)
    return bool(settings.google_usage_spreadsheet_id)


def _enabled(settings: Settings) -> bool:
    return bool(settings.google_service_account_file)


def _unset(settings: Settings) -> dict[str, list[str]]:
    """The key file, when unset (each form and sheet is checked by ``health``)."""
    return {"": [] if settings.google_service_account_file else ["GOOGLE_SERVICE_ACCOUNT_FILE"]}


def client(settings: Settings) -> GoogleClient:
    """The Google client of these settings (one for Forms, Sheets, Gmail and Calendar)."""
    from connectors.google.client import GoogleClient

    return GoogleClient(settings)


def _form_link(url: str, values: dict[str, str]) -> str:
    from connectors.google.mapping import prefilled_url

    return prefilled_url(url, values)


def _quota(_settings: Settings, google: Any) -> dict[str, Any]:
    """This process's calls since start; Google's responses carry no quota figures (its
    quotas are per minute and shown only in the Cloud console, reference §3.9)."""
    return {"used": google.calls if google is not None else 0, "window": "desde el arranque",
            "limit": None, "reported": [],
            "note": "Google no informa su cuota en las respuestas (cuotas por minuto; ver la "
                    "consola de Google Cloud)"}


CONNECTOR = Connector(
    name="google",
    sources=("forms", "sheets"),
    configured=_configured,
    enabled=_enabled,
    client=client,
    health=health,
    rule_actions="connectors.google.rule_actions",
    form_link=_form_link,
    quota=_quota,
    unset=_unset,
)
