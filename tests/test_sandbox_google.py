"""Fidelity of the Google sandbox: the real google-auth / gspread / googleapiclient against
it over HTTP, plus raw HTTP for what the libraries hide (error bodies, statuses)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
import gspread
import httpx
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.transport.requests import AuthorizedSession
from google.oauth2 import service_account
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from gspread.http_client import HTTPClient

from connectors.google.client import Endpoints, RoutedAuthRequest, RoutedHttp
from sandbox.google.a1 import parse_a1
from sandbox.server import Sandbox
from sandbox.world import podio_item_id

S = "https://www.googleapis.com/auth/"


def env(sandbox: Sandbox) -> dict[str, str]:
    return sandbox.tools["google"].env()


def creds(sandbox: Sandbox, *scopes: str, subject: str | None = None
          ) -> service_account.Credentials:
    made = service_account.Credentials.from_service_account_file(
        env(sandbox)["GOOGLE_SERVICE_ACCOUNT_FILE"], scopes=[S + s for s in scopes])
    return made.with_subject(subject) if subject else made


def token(sandbox: Sandbox, *scopes: str, subject: str | None = None) -> str:
    made = creds(sandbox, *scopes, subject=subject)
    made.refresh(google.auth.transport.requests.Request())
    return str(made.token)


def api(sandbox: Sandbox, name: str, version: str, credentials: Any) -> Any:
    """A googleapiclient service on the sandbox. The transport also sends google-auth's
    regional-boundary lookup to the sandbox instead of Google (no test leaves the host)."""
    endpoints = Endpoints(env(sandbox)["GOOGLE_API_ROOT"])
    http = AuthorizedHttp(credentials, http=RoutedHttp(endpoints, timeout=10))
    return build(name, version, http=http, static_discovery=True, cache_discovery=False,
                 client_options={"api_endpoint": endpoints.api_endpoint(name)})


def gspread_client(sandbox: Sandbox, *scopes: str) -> gspread.Client:
    endpoints = Endpoints(env(sandbox)["GOOGLE_API_ROOT"])
    made = creds(sandbox, *(scopes or ("spreadsheets",)))
    session = AuthorizedSession(made, auth_request=RoutedAuthRequest(endpoints,
                                                                     requests.Session()))

    class Redirected(HTTPClient):
        def request(self, method: str, endpoint: str, *args: Any, **kwargs: Any) -> Any:
            return super().request(method, endpoints.rewrite(endpoint), *args, **kwargs)

    return gspread.Client(made, session=session, http_client=Redirected)


def raw(sandbox: Sandbox, method: str, path: str, bearer: str | None = None,
        **kwargs: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {bearer}"} if bearer else {}
    return httpx.request(method, sandbox.url("google") + path, headers=headers, timeout=10,
                         **kwargs)


# --- auth ----------------------------------------------------------------------------------


def test_token_endpoint_follows_the_jwt_bearer_grant(sandbox: Sandbox) -> None:
    info = json.loads(open(env(sandbox)["GOOGLE_SERVICE_ACCOUNT_FILE"]).read())
    assert info["type"] == "service_account"
    assert info["token_uri"] == sandbox.url("google") + "/token"
    made = creds(sandbox, "spreadsheets")
    made.refresh(google.auth.transport.requests.Request())
    assert made.token.startswith("ya29.") and made.valid
    lifetime = (made.expiry - datetime.now(UTC).replace(tzinfo=None)).total_seconds()
    assert 3500 < lifetime <= 3599  # an hour, like Google: no refresh on every call
    wrong = raw(sandbox, "POST", "/token", data={"grant_type": "password"})
    assert wrong.status_code == 400 and wrong.json()["error"] == "unsupported_grant_type"


def test_a_jwt_signed_with_another_key_is_refused(sandbox: Sandbox, tmp_path: Any) -> None:
    info = json.loads(open(env(sandbox)["GOOGLE_SERVICE_ACCOUNT_FILE"]).read())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info["private_key"] = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    forged = service_account.Credentials.from_service_account_info(
        info, scopes=[S + "spreadsheets"])
    with pytest.raises(google.auth.exceptions.RefreshError, match="Invalid JWT Signature"):
        forged.refresh(google.auth.transport.requests.Request())


def test_bearer_and_scope_checks_answer_googles_bodies(sandbox: Sandbox) -> None:
    sheet = env(sandbox)["GOOGLE_USAGE_SPREADSHEET_ID"]
    missing = raw(sandbox, "GET", f"/v4/spreadsheets/{sheet}")
    assert missing.status_code == 401
    assert missing.json()["error"]["status"] == "UNAUTHENTICATED"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    forms_only = token(sandbox, "forms.body.readonly")
    denied = raw(sandbox, "GET", f"/v4/spreadsheets/{sheet}", forms_only)
    error = denied.json()["error"]
    assert denied.status_code == 403 and error["status"] == "PERMISSION_DENIED"
    assert error["message"] == "Request had insufficient authentication scopes."
    assert error["errors"][0]["reason"] == "insufficientPermissions"
    assert error["details"][0]["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    # Every scope the discovery document lists for the method works (here: a Drive scope).
    assert raw(sandbox, "GET", f"/v4/spreadsheets/{sheet}",
               token(sandbox, "drive.readonly")).status_code == 200


def test_domain_wide_delegation_is_enforced(sandbox: Sandbox) -> None:
    user = env(sandbox)["GOOGLE_DELEGATED_USER"]
    with pytest.raises(google.auth.exceptions.RefreshError, match="unauthorized_client"):
        token(sandbox, "gmail.modify", subject=user)  # not authorised in the Admin console
    with pytest.raises(google.auth.exceptions.RefreshError, match="Invalid email"):
        token(sandbox, "gmail.send", subject="someone@elsewhere.test")
    no_mailbox = raw(sandbox, "POST", "/gmail/v1/users/me/messages/send",
                     token(sandbox, "gmail.send"), json={"raw": "eA"})
    assert no_mailbox.status_code == 400
    assert no_mailbox.json()["error"]["status"] == "FAILED_PRECONDITION"


def test_quota_and_fault_bodies(sandbox: Sandbox) -> None:
    google = sandbox.tools["google"]
    google.set_quota("sheets_read", 1)
    bearer = token(sandbox, "spreadsheets.readonly")
    sheet = env(sandbox)["GOOGLE_USAGE_SPREADSHEET_ID"]
    assert raw(sandbox, "GET", f"/v4/spreadsheets/{sheet}", bearer).status_code == 200
    over = raw(sandbox, "GET", f"/v4/spreadsheets/{sheet}", bearer)
    assert over.status_code == 429
    error = over.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert error["details"][0]["metadata"]["quota_limit"] == "ReadRequestsPerMinutePerUser"
    google.set_quota("sheets_read", 60)
    sandbox.faults.add(kind="status", tool="google", path="/calendar/", status=503,
                       retry_after=7)
    failed = raw(sandbox, "GET", "/calendar/v3/calendars/primary/events", bearer)
    assert failed.status_code == 503 and failed.headers["retry-after"] == "7"
    assert failed.json()["error"]["code"] == 503


# --- Sheets --------------------------------------------------------------------------------


def test_sheets_through_gspread(sandbox: Sandbox) -> None:
    gc = gspread_client(sandbox)
    usage = gc.open_by_key(env(sandbox)["GOOGLE_USAGE_SPREADSHEET_ID"])
    ws = usage.worksheet("Uso semanal")
    assert ws.frozen_row_count == 1 and ws.col_count == 6
    assert ws.get("A1:C1") == [["cliente_id", "cliente", "semana"]]
    first = ws.get("A2:F2", value_render_option="UNFORMATTED_VALUE")[0]
    assert first[0] == podio_item_id("clientes", first[0] - podio_item_id("clientes", 0))
    assert isinstance(first[2], int)  # the week start is a real date (a serial number)
    kpi = gc.open_by_key(env(sandbox)["GOOGLE_KPI_SPREADSHEET_ID"])
    tab = kpi.add_worksheet("Resumen mensual", rows=3, cols=3)
    with pytest.raises(gspread.exceptions.APIError, match="already exists"):
        kpi.add_worksheet("resumen MENSUAL", rows=3, cols=3)
    tab.update([["mes", "nps"], ["2026-10-01", "45%"]], "A1", value_input_option="USER_ENTERED")
    assert tab.get_all_values() == [["mes", "nps"], ["2026-10-01", "45%"]]
    assert tab.get("A2:B2", value_render_option="UNFORMATTED_VALUE") == [[46296, 0.45]]
    tab.update([["=1+1"]], "C1")  # RAW keeps it as text
    assert tab.get("C1", value_render_option="FORMULA") == [["=1+1"]]
    with pytest.raises(gspread.exceptions.APIError, match="exceeds grid limits"):
        tab.update([[1]] * 4, "A1")  # update never grows the grid
    tab.append_rows([[1, 2], [3, 4]])  # append does (OVERWRITE: just the rows it needs)
    props = sandbox.tools["google"].sheet_properties(kpi.id, "Resumen mensual")
    assert props["gridProperties"]["rowCount"] == 4
    assert tab.get("A3:B4") == [["1", "2"], ["3", "4"]]
    tab.resize(rows=2)
    assert tab.get_all_values() == [["mes", "nps", "=1+1"], ["2026-10-01", "45%", ""]]
    assert tab.get("B1:B2", major_dimension="COLUMNS") == [["nps", "45%"]]
    tab.batch_clear(["A2:B2"])
    kpi.del_worksheet(tab)
    assert [w.title for w in kpi.worksheets()] == ["Hoja 1"]


def test_sheets_values_through_googleapiclient(sandbox: Sandbox) -> None:
    sheets = api(sandbox, "sheets", "v4", creds(sandbox, "spreadsheets"))
    kpi = env(sandbox)["GOOGLE_KPI_SPREADSHEET_ID"]
    values = sheets.spreadsheets().values()
    body = {"valueInputOption": "RAW", "data": [
        {"range": "'Hoja 1'!A1:B2", "values": [["a", "b"], [1, True]]},
        {"range": "'Hoja 1'!D1", "values": [["d1"], ["d2"]]}]}
    result = values.batchUpdate(spreadsheetId=kpi, body=body).execute()
    assert result["totalUpdatedCells"] == 6 and result["totalUpdatedSheets"] == 1
    got = values.batchGet(spreadsheetId=kpi, ranges=["'Hoja 1'!A1:B2", "'Hoja 1'!D:D"],
                          valueRenderOption="UNFORMATTED_VALUE").execute()
    assert [r["values"] for r in got["valueRanges"]] == [[["a", "b"], [1, True]],
                                                         [["d1"], ["d2"]]]
    assert got["valueRanges"][1]["range"] == "'Hoja 1'!D1:D1000"
    with pytest.raises(HttpError) as caught:
        values.get(spreadsheetId=kpi, range="Nope!A1").execute()
    assert caught.value.status_code == 400 and "Unable to parse range" in str(caught.value)
    with pytest.raises(HttpError) as caught:
        values.update(spreadsheetId=kpi, range="'Hoja 1'!A1:A2", valueInputOption="RAW",
                      body={"values": [[1], [2], [3]]}).execute()
    assert "tried writing to row [3]" in str(caught.value)
    with pytest.raises(HttpError) as caught:
        values.update(spreadsheetId=kpi, range="'Hoja 1'!A1", body={"values": [[1]]}).execute()
    assert "valueInputOption" in str(caught.value)
    cleared = values.clear(spreadsheetId=kpi, range="'Hoja 1'!A1:B2", body={}).execute()
    assert cleared["clearedRange"] == "'Hoja 1'!A1:B2"
    empty = values.get(spreadsheetId=kpi, range="'Hoja 1'!A1:B2").execute()
    assert "values" not in empty and empty["majorDimension"] == "ROWS"


@pytest.mark.parametrize(("text", "bounds"), [
    ("Datos!A1:B2", ("Datos", 0, 2, 0, 2)), ("'Mi hoja'!A:C", ("Mi hoja", 0, None, 0, 3)),
    ("'Bob''s'!A5:A", ("Bob's", 4, None, 0, 1)), ("Datos!2:3", ("Datos", 1, 3, 0, None)),
    ("A1:B2", (None, 0, 2, 0, 2)), ("Datos", ("Datos", 0, None, 0, None)),
])
def test_a1_notation(text: str, bounds: tuple[Any, ...]) -> None:
    parsed = parse_a1(text)
    assert (parsed.title, parsed.row0, parsed.row1, parsed.col0, parsed.col1) == bounds


@pytest.mark.parametrize("text", ["Mi hoja!A1", "Datos!A1:B2:C3", "'x", "Datos!A:B5"])
def test_a1_notation_rejects_what_google_rejects(text: str) -> None:
    with pytest.raises(Exception, match="Unable to parse range"):
        parse_a1(text)


# --- Forms ---------------------------------------------------------------------------------


def test_forms_get_list_filter_and_paging(sandbox: Sandbox) -> None:
    forms = api(sandbox, "forms", "v1", creds(sandbox, "forms.body.readonly",
                                              "forms.responses.readonly"))
    form_id = env(sandbox)["GOOGLE_CSAT_FORM_ID"]
    form = forms.forms().get(formId=form_id).execute()
    questions = {i["questionItem"]["question"]["questionId"]: i["questionItem"]["question"]
                 for i in form["items"]}
    assert questions["5d0a7c31"]["scaleQuestion"] == {"low": 1, "high": 5}
    assert questions["1e84b2f9"]["textQuestion"] == {"paragraph": True}
    assert form["responderUri"].endswith("/viewform")
    total = len([a for a in sandbox.world.surveys if a.kind == "csat"])
    first = forms.forms().responses().list(formId=form_id, pageSize=10).execute()
    assert len(first["responses"]) == 10 and "nextPageToken" in first
    seen = [r["responseId"] for r in first["responses"]]
    token = first["nextPageToken"]
    for _ in range(100):
        page = forms.forms().responses().list(formId=form_id, pageSize=10,
                                              pageToken=token).execute()
        seen += [r["responseId"] for r in page.get("responses", [])]
        token = page.get("nextPageToken")
        if not token:
            break
    assert len(seen) == len(set(seen)) == total
    middle = first["responses"][5]["lastSubmittedTime"]
    after = forms.forms().responses().list(formId=form_id,
                                           filter=f"timestamp > {middle}").execute()
    assert len(after["responses"]) == total - 6
    inclusive = forms.forms().responses().list(formId=form_id,
                                               filter=f"timestamp >= {middle}").execute()
    assert len(inclusive["responses"]) == total - 5
    assert forms.forms().responses().list(
        formId=form_id, filter="timestamp > 2099-01-01T00:00:00Z").execute() == {}
    for bad in ("timestamp > 2026-01-01", "createTime > 2026-01-01T00:00:00Z"):
        with pytest.raises(HttpError) as caught:
            forms.forms().responses().list(formId=form_id, filter=bad).execute()
        assert caught.value.status_code == 400
    with pytest.raises(HttpError) as caught:  # a token only goes with its own filter
        forms.forms().responses().list(formId=form_id, pageToken=first["nextPageToken"],
                                       filter=f"timestamp > {middle}").execute()
    assert caught.value.status_code == 400
    one = forms.forms().responses().get(formId=form_id, responseId=seen[0]).execute()
    assert one["formId"] == form_id and one["responseId"] == seen[0]


# --- Gmail ---------------------------------------------------------------------------------


def test_gmail_send_list_get(sandbox: Sandbox) -> None:
    user = env(sandbox)["GOOGLE_DELEGATED_USER"]
    gmail = api(sandbox, "gmail", "v1", creds(sandbox, "gmail.send", "gmail.readonly",
                                              subject=user))
    message = EmailMessage()
    message["To"], message["Cc"] = "Ana <ana@colegio.edu.test>", "coo@saeko.test"
    message["From"] = "someone-else@saeko.test"  # Gmail sends as the authenticated user
    message["Subject"], message["Message-ID"] = "Recordatorio", "<rem-1@saeko.test>"
    message["X-Saeko-Marker"] = "M2:90"
    message.set_content("Texto plano")
    message.add_alternative("<p>HTML</p>", subtype="html")
    raw_message = base64.urlsafe_b64encode(message.as_bytes()).decode().rstrip("=")  # unpadded
    sent = gmail.users().messages().send(userId="me", body={"raw": raw_message}).execute()
    assert sent["labelIds"] == ["SENT"] and sent["threadId"] == sent["id"]
    [stored] = sandbox.tools["google"].sent_messages()
    assert stored["from"] == user and stored["to"] == ["ana@colegio.edu.test"]
    assert stored["cc"] == ["coo@saeko.test"] and stored["html"].strip() == "<p>HTML</p>"
    assert stored["headers"]["X-Saeko-Marker"] == "M2:90"
    found = gmail.users().messages().list(userId="me", q="rfc822msgid:rem-1@saeko.test"
                                          ).execute()
    assert found["messages"] == [{"id": sent["id"], "threadId": sent["id"]}]
    assert gmail.users().messages().list(userId="me", q="subject:otro").execute() == {
        "resultSizeEstimate": 0}
    assert gmail.users().messages().list(userId="me", q="to:ana@colegio.edu.test in:sent"
                                         ).execute()["resultSizeEstimate"] == 1
    full = gmail.users().messages().get(userId="me", id=sent["id"]).execute()
    parts = full["payload"]["parts"]
    assert full["payload"]["mimeType"] == "multipart/alternative"
    html = base64.urlsafe_b64decode(parts[1]["body"]["data"] + "==").decode()
    assert parts[1]["mimeType"] == "text/html" and html.strip() == "<p>HTML</p>"
    with pytest.raises(HttpError) as caught:
        gmail.users().messages().send(userId="me", body={}).execute()
    assert caught.value.status_code == 400
    send_only = api(sandbox, "gmail", "v1", creds(sandbox, "gmail.send", subject=user))
    with pytest.raises(HttpError) as caught:  # listing needs a read scope
        send_only.users().messages().list(userId="me").execute()
    assert caught.value.status_code == 403


# --- Calendar ------------------------------------------------------------------------------


def event_body(**extra: Any) -> dict[str, Any]:
    return {"summary": "Check-in", "start": {"dateTime": "2026-11-25T10:00:00",
                                             "timeZone": "America/Tijuana"},
            "end": {"dateTime": "2026-11-25T11:00:00", "timeZone": "America/Tijuana"}, **extra}


def test_calendar_insert_rules(sandbox: Sandbox) -> None:
    user = env(sandbox)["GOOGLE_DELEGATED_USER"]
    cal = api(sandbox, "calendar", "v3", creds(sandbox, "calendar.events", subject=user))
    events = cal.events()
    meet = {"createRequest": {"requestId": "r-1",
                              "conferenceSolutionKey": {"type": "hangoutsMeet"}}}
    ignored = events.insert(calendarId="primary", body=event_body(conferenceData=meet)
                            ).execute()
    assert "hangoutLink" not in ignored  # conferenceDataVersion=0 ignores conference data
    made = events.insert(calendarId="primary", conferenceDataVersion=1, body=event_body(
        id="abcdef0123", conferenceData=meet, attendees=[{"email": "ana@x.test"}],
        recurrence=["RRULE:FREQ=MONTHLY;COUNT=3"],
        extendedProperties={"private": {"k": "v"}})).execute()
    assert made["start"]["dateTime"] == "2026-11-25T10:00:00-08:00"
    assert made["conferenceData"]["createRequest"]["status"]["statusCode"] == "success"
    assert made["attendees"] == [{"responseStatus": "needsAction", "email": "ana@x.test"}]
    with pytest.raises(HttpError) as caught:
        events.insert(calendarId="primary", body=event_body(id="abcdef0123")).execute()
    assert caught.value.status_code == 409 and caught.value.error_details[0]["reason"] == (
        "duplicate")
    for bad in (event_body(id="NOT-VALID"),
                event_body(end={"dateTime": "2026-11-25T09:00:00-08:00"}),
                event_body(recurrence=["RRULE:FREQ=DAILY"], start={
                    "dateTime": "2026-11-25T10:00:00-08:00"})):
        with pytest.raises(HttpError) as caught:
            events.insert(calendarId="primary", body=bad).execute()
        assert caught.value.status_code == 400
    listed = events.list(calendarId="primary", privateExtendedProperty="k=v").execute()
    assert [e["id"] for e in listed["items"]] == ["abcdef0123"] and "nextSyncToken" in listed
    patched = events.patch(calendarId="primary", eventId="abcdef0123",
                           body={"attendees": [{"email": "b@x.test"}],
                                 "extendedProperties": {"private": {"k2": "w"}}}).execute()
    assert [a["email"] for a in patched["attendees"]] == ["b@x.test"]  # arrays replaced
    assert patched["extendedProperties"]["private"] == {"k": "v", "k2": "w"}  # objects merge
    assert patched["hangoutLink"] == made["hangoutLink"]
    later = events.list(calendarId="primary", syncToken=listed["nextSyncToken"]).execute()
    assert [e["id"] for e in later["items"]] == ["abcdef0123"]
    window = events.list(calendarId="primary", timeMin="2026-11-25T19:00:00Z",
                         timeMax="2026-11-26T00:00:00Z").execute()
    assert len(window["items"]) == 0  # both events end at 19:00Z: timeMin bounds the end
    with pytest.raises(HttpError) as caught:
        events.get(calendarId="primary", eventId="zzzzzzz").execute()
    assert caught.value.status_code == 404


def test_calendar_attendees_need_delegation(sandbox: Sandbox) -> None:
    cal = api(sandbox, "calendar", "v3", creds(sandbox, "calendar.events"))
    with pytest.raises(HttpError) as caught:
        cal.events().insert(calendarId="primary", body=event_body(
            attendees=[{"email": "ana@x.test"}])).execute()
    assert caught.value.status_code == 403
    assert "Domain-Wide Delegation" in str(caught.value)


def test_inspection_routes(sandbox: Sandbox) -> None:
    google = sandbox.tools["google"]
    form_id = env(sandbox)["GOOGLE_NPS_FORM_ID"]
    made = httpx.post(f"{sandbox.base_url}/_sandbox/google/forms/{form_id}/responses",
                      json={"answers": {"score": 9, "email": "x@y.test"}}, timeout=10)
    assert made.status_code == 201
    assert google.forms.forms[form_id].responses[made.json()["responseId"]]
    quota = httpx.post(f"{sandbox.base_url}/_sandbox/google/quota",
                       json={"bucket": "calendar", "per_minute": 5}, timeout=10).json()
    assert quota["limits"]["calendar"] == 5
    state = httpx.get(f"{sandbox.base_url}/_sandbox/state/google", timeout=10).json()
    assert state["forms"][form_id]["responses"] == len(google.forms.forms[form_id].responses)
    usage = env(sandbox)["GOOGLE_USAGE_SPREADSHEET_ID"]
    sheet = httpx.get(f"{sandbox.base_url}/_sandbox/google/sheets/{usage}/Uso semanal",
                      timeout=10).json()
    assert sheet["values"][0][0] == "cliente_id"
