"""The Google client over HTTP against the sandbox, through the real service-account token
flow: redirection of both libraries, token lifetime, retries (429 then success, giving up
on a persistent 429), missing scopes and refused delegation as clear errors, doctor."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.google.client import SCOPE, GoogleClient
from connectors.google.connector import health as check_google
from core.errors import AuthError, ConfigError, ConnectorError, TransientError
from core.settings import Settings, load_settings
from sandbox.server import Sandbox

USAGE_TAB = "'Uso semanal'"


def google_settings(sandbox: Sandbox, **extra: Any) -> Settings:
    env = {k.lower(): v for k, v in sandbox.tools["google"].env().items()}
    values = {"google_retry_base_seconds": 0.01, "google_max_retry_seconds": 5.0, **extra}
    return load_settings(**env, **values)


def read_usage(client: GoogleClient, settings: Settings) -> dict[str, Any]:
    body: dict[str, Any] = client.sheets().http_client.values_get(
        settings.google_usage_spreadsheet_id, USAGE_TAB)
    return body


def test_both_libraries_reach_the_sandbox_through_the_token_flow(sandbox: Sandbox) -> None:
    settings = google_settings(sandbox)
    google = sandbox.tools["google"]
    with GoogleClient(settings) as client:
        values = read_usage(client, settings)["values"]
        form = client.execute(client.service("forms").forms().get(
            formId=settings.google_csat_form_id), use="forms", what="forms.get")
        for _ in range(5):
            read_usage(client, settings)
    assert values[0][:3] == ["cliente_id", "cliente", "semana"]
    assert form["info"]["title"].startswith("Encuesta de satisfacción")
    calls = sandbox.calls.snapshot("google")["google"]
    assert calls["GET /v4/spreadsheets/{spreadsheetId}/values/{range}"] == 6
    assert calls["GET /v1/forms/{formId}"] == 1
    # One token per credential (Sheets read-only, Forms): expires_in 3599 means no refresh
    # between calls; google-auth's boundary lookup went to the sandbox, not to Google.
    assert google.tokens.issued == 2
    assert calls["POST /token"] == 2
    assert "GET /v1/projects/-/serviceAccounts/{email}/allowedLocations" in calls


def test_an_expired_token_is_refreshed_and_the_call_replayed(sandbox: Sandbox) -> None:
    settings = google_settings(sandbox)
    with GoogleClient(settings) as client:
        read_usage(client, settings)
        sandbox.tools["google"].expire_tokens()
        assert read_usage(client, settings)["values"]
    assert sandbox.tools["google"].tokens.issued == 2


def test_a_429_then_success_is_retried_honouring_retry_after(sandbox: Sandbox) -> None:
    settings = google_settings(sandbox)
    too_many = sandbox.faults.add(kind="status", tool="google", path="/values/", status=429,
                                  retry_after=0, count=1)
    unavailable = sandbox.faults.add(kind="status", tool="google", path="/v1/forms",
                                     status=503, count=1)
    with GoogleClient(settings) as client:
        assert read_usage(client, settings)["values"]
        form = client.execute(client.service("forms").forms().get(
            formId=settings.google_csat_form_id), use="forms", what="forms.get")
    assert form["formId"] == settings.google_csat_form_id
    # Each call was answered once by the fault, then served on the retry.
    assert too_many.hits == 1 and unavailable.hits == 1
    calls = sandbox.calls.snapshot("google")["google"]
    assert calls["GET /v4/spreadsheets/{spreadsheetId}/values/{range}"] == 1
    assert calls["GET /v1/forms/{formId}"] == 1


def test_a_persistent_quota_429_gives_up_with_a_clear_error(sandbox: Sandbox) -> None:
    settings = google_settings(sandbox, google_max_retry_seconds=0.3)
    sandbox.tools["google"].set_quota("sheets_read", 1)
    with GoogleClient(settings) as client:
        read_usage(client, settings)
        with pytest.raises(TransientError) as caught:
            read_usage(client, settings)
    message = str(caught.value)
    assert "429" in message and "Read requests per minute per user" in message
    assert "Sin éxito tras" in message and "GOOGLE_MAX_RETRY_SECONDS" in message
    assert sandbox.tools["google"].quotas.exceeded["sheets_read"] >= 2  # it did retry


def test_a_token_without_the_needed_scope_gives_a_clear_error(sandbox: Sandbox) -> None:
    settings = google_settings(sandbox)
    narrow = {"sheets": (SCOPE + "spreadsheets.readonly",)}
    with GoogleClient(settings, scopes=narrow) as client:
        http = client.sheets(write=True).http_client
        with pytest.raises(AuthError) as caught:
            http.values_update(settings.google_kpi_spreadsheet_id, "A1",
                               params={"valueInputOption": "RAW"}, body={"values": [[1]]})
    message = str(caught.value)
    assert "le falta el alcance" in message and "spreadsheets.readonly" in message
    assert sandbox.tools["google"].sheet_values(settings.google_kpi_spreadsheet_id,
                                                "Hoja 1") == []


def test_delegation_not_authorised_for_a_scope_is_a_clear_error(sandbox: Sandbox) -> None:
    settings = google_settings(sandbox)
    google = sandbox.tools["google"]
    google.set_delegated_scopes({SCOPE + "calendar.events"})  # gmail.* not authorised
    with GoogleClient(settings) as client:
        messages = client.service("gmail").users().messages()
        with pytest.raises(AuthError) as caught:
            client.execute(messages.list(userId="me"), use="gmail", what="Gmail list")
    message = str(caught.value)
    assert "delegación de todo el dominio rechazada" in message
    assert google.account.client_id in message and "gmail.send" in message


def test_a_file_not_shared_with_the_service_account_names_the_fix(sandbox: Sandbox) -> None:
    settings = google_settings(sandbox)
    google = sandbox.tools["google"]
    for who in (google.account.email, google.delegated_user):
        google.unshare(settings.google_usage_spreadsheet_id, who)
    with GoogleClient(settings) as client, pytest.raises(AuthError) as caught:
        read_usage(client, settings)
    assert "Comparte el archivo con " + google.account.email in str(caught.value)


def test_doctor_line(sandbox: Sandbox) -> None:
    settings = google_settings(sandbox)
    line = check_google(settings)
    assert line.startswith("OK: "), line
    assert "formulario csat" in line and "Gmail como postventa@saeko.test" in line
    sandbox.tools["google"].set_delegated_scopes(set())
    with pytest.raises(ConnectorError) as caught:
        check_google(settings)
    assert "gmail: " in str(caught.value) and "calendar: " in str(caught.value)
    assert "delegación de todo el dominio rechazada" in str(caught.value)
    with pytest.raises(ConfigError, match="GOOGLE_SERVICE_ACCOUNT_FILE está vacío"):
        check_google(load_settings(google_service_account_file=None))
