"""The emulated Google: service-account token endpoint, Sheets v4, Forms v1, Gmail v1 and
Calendar v3 under the ``/google`` prefix of the sandbox server (docs/sandbox.md).

Every API request is routed from the discovery documents, authenticated with a bearer token
the token endpoint issued, checked against the method's scopes and the per-minute quotas,
then served under one lock (test helpers take the same lock).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import weakref
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.google.auth import ServiceAccount, TokenError, TokenIssuer
from sandbox.google.calendar import CalendarApi
from sandbox.google.dispatch import Call, Endpoint, Router
from sandbox.google.errors import (
    GoogleApiError,
    api_of_path,
    bad_request,
    fault_body,
    insufficient_scopes,
    quota_exceeded,
    unauthenticated,
)
from sandbox.google.forms import FormsApi
from sandbox.google.gmail import GmailApi
from sandbox.google.quotas import QuotaBook
from sandbox.google.seed import (
    KPI_FIRST_TAB,
    USAGE_TAB,
    build_forms,
    build_spreadsheets,
    file_id,
    response_id,
    response_record,
)
from sandbox.google.sheets import SheetsApi

if TYPE_CHECKING:
    from sandbox.server import Sandbox

PREFIX = "/google"
DOMAIN = "saeko.test"
DELEGATED_USER = f"postventa@{DOMAIN}"  # the service mailbox saeko-sync sends as
SCOPE = "https://www.googleapis.com/auth/"
# What the Admin console authorised for domain-wide delegation (reference §2.3).
DEFAULT_DELEGATED_SCOPES = {SCOPE + "gmail.send", SCOPE + "gmail.readonly",
                            SCOPE + "calendar.events"}
KEY_FILE_NAME = "google-service-account.json"


class _CountedRoute:
    """Stands in for the matched route so the call counter records the API template."""

    def __init__(self, path: str) -> None:
        self.path = path


class GoogleTool:
    """The Google tool of the sandbox (the ``Tool`` protocol of sandbox/server.py)."""

    name = "google"

    def __init__(self, sandbox: Sandbox, key_dir: Path | None = None) -> None:
        self.sandbox = sandbox
        self.lock = threading.RLock()
        seed = sandbox.world.seed
        self.account = ServiceAccount(
            email="saeko-sync@saeko-sandbox.iam.gserviceaccount.com",
            client_id=str(100_000_000_000_000_000_000 + seed),
            project_id="saeko-sandbox", key_id=file_id(seed, "key").encode().hex()[:40])
        self.delegated_user = DELEGATED_USER
        self.delegation = {self.account.client_id: set(DEFAULT_DELEGATED_SCOPES)}
        self.tokens = TokenIssuer(self.account, DOMAIN, self.delegation)
        self.quotas = QuotaBook()
        # Google documents no Retry-After on quota 429s [C]; switchable for experiments.
        self.quota_retry_after = False
        editors = {self.account.email, DELEGATED_USER}
        self.sheets = SheetsApi()
        self.sheets.spreadsheets = build_spreadsheets(sandbox.world, editors)
        self.forms = FormsApi()
        # How a prefilled link's entry.N maps to questions (see ``respond_via_link``).
        self.prefill_entries = "question_id"
        self.forms.forms = build_forms(sandbox.world, editors)
        self.gmail = GmailApi(sandbox.clock.now)
        self.calendar = CalendarApi(sandbox.clock.now)
        self.calendar.calendars[DELEGATED_USER] = {}
        self.router = Router()
        for api in (self.sheets, self.forms, self.gmail, self.calendar):
            api.register(self.router)
        self.ids = {"usage": file_id(seed, "usage"), "kpi": file_id(seed, "kpi"),
                    "csat": file_id(seed, "csat"), "nps": file_id(seed, "nps"),
                    "micro": file_id(seed, "micro")}
        self.key_dir = key_dir
        self._submitted = 0

    # --- the Tool protocol ---------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/token", self._token, methods=["POST"]),
            Route("/v1/projects/-/serviceAccounts/{email}/allowedLocations",
                  self._allowed_locations, methods=["GET"]),
            Route("/{path:path}", self._dispatch,
                  methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ]

    def inspection_routes(self) -> list[BaseRoute]:
        return [
            Route("/messages", self._inspect_messages, methods=["GET"]),
            Route("/events/{calendar_id}", self._inspect_events, methods=["GET"]),
            Route("/sheets/{spreadsheet_id}/{tab}", self._inspect_sheet, methods=["GET"]),
            Route("/forms/{form_id}/responses", self._inspect_submit, methods=["POST"]),
            Route("/quota", self._inspect_quota, methods=["GET", "POST"]),
            Route("/tokens/expire", self._inspect_expire, methods=["POST"]),
        ]

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "service_account": self.account.email,
                "delegated_user": self.delegated_user,
                "spreadsheets": {
                    sid: {"title": book.title, "tabs": {
                        s.title: {"rows": s.rows, "columns": s.cols,
                                  "filled_rows": s.last_row()} for s in book.sheets}}
                    for sid, book in self.sheets.spreadsheets.items()},
                "forms": {fid: {"title": f.title, "responses": len(f.responses)}
                          for fid, f in self.forms.forms.items()},
                "messages": [self._message_view(m) for m in self._all_messages()],
                "calendars": {cid: len(events)
                              for cid, events in self.calendar.calendars.items()},
                "tokens_issued": self.tokens.issued,
                "quota_limits": dict(self.quotas.limits),
                "quota_usage": self.quotas.usage(),
                "quota_exceeded": dict(self.quotas.exceeded),
            }

    def error_body(self, status: int, path: str, retry_after: float | None
                   ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        return fault_body(status, path, retry_after)

    def env(self) -> dict[str, str]:
        return {
            "GOOGLE_API_ROOT": self.sandbox.url("google") + "/",
            "GOOGLE_SERVICE_ACCOUNT_FILE": str(self.write_key_file()),
            "GOOGLE_DELEGATED_USER": self.delegated_user,
            "GOOGLE_KPI_SPREADSHEET_ID": self.ids["kpi"],
            "GOOGLE_USAGE_SPREADSHEET_ID": self.ids["usage"],
            "GOOGLE_CSAT_FORM_ID": self.ids["csat"],
            "GOOGLE_NPS_FORM_ID": self.ids["nps"],
            "GOOGLE_MICRO_FORM_ID": self.ids["micro"],
            "GOOGLE_CALENDAR_ID": "primary",
        }

    def write_key_file(self, path: Path | None = None) -> Path:
        """Write the service-account key file (token_uri -> this sandbox); returns its path."""
        if path is None:
            if self.key_dir is None:
                # The key only works with this process's sandbox: removed with the tool.
                self.key_dir = Path(tempfile.mkdtemp(prefix="saeko-google-"))
                weakref.finalize(self, shutil.rmtree, self.key_dir, ignore_errors=True)
            path = self.key_dir / KEY_FILE_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        info = self.account.key_info(self.sandbox.url("google") + "/token")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(info, handle, indent=2)
        return path

    # --- serving -------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        try:
            with self.lock:
                return JSONResponse(self.tokens.token(form))
        except TokenError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)

    async def _allowed_locations(self, _request: Request) -> Response:
        # google-auth's regional access boundary lookup (§2.2), routed here by the client;
        # "0x0" is taken to mean "no restriction" [C].
        return JSONResponse({"locations": [], "encodedLocations": "0x0"})

    async def _dispatch(self, request: Request) -> Response:
        raw = request.scope.get("raw_path") or request.url.path.encode()
        raw_path = raw.decode("latin-1").split("?", 1)[0]
        raw_path = raw_path[len(PREFIX):] if raw_path.startswith(PREFIX) else raw_path
        api = api_of_path(raw_path)
        try:
            call, endpoint = await self._call(request, raw_path)
            with self.lock:
                result = endpoint.handler(call)
        except GoogleApiError as exc:
            return JSONResponse(exc.body(api), status_code=exc.code, headers=exc.headers)
        if result is None:  # e.g. events.delete: 204 No Content, empty body
            return Response(status_code=204)
        return JSONResponse(result)

    async def _call(self, request: Request, raw_path: str) -> tuple[Call, Endpoint]:
        method = request.method
        body_bytes = await request.body()
        query = request.query_params
        override = request.headers.get("x-http-method-override")
        if method == "POST" and override:
            # Long GET URLs arrive as POST + override with a form-encoded query (§1.1).
            method = override.upper()
            query = QueryParams(list(query.multi_items())
                                + parse_qsl(body_bytes.decode("utf-8", "replace")))
            body_bytes = b""
        endpoint, params = self.router.match(method, raw_path)
        request.scope["route"] = _CountedRoute(endpoint.method.path)
        principal = self.tokens.principal(request.headers.get("authorization"))
        if principal is None:
            raise unauthenticated()
        if not principal.scopes & endpoint.method.scopes:
            raise insufficient_scopes(endpoint.method.api, endpoint.method.method_id)
        if endpoint.quota is not None:
            bucket, cost = endpoint.quota
            wait = self.quotas.take(bucket, principal.user, cost)
            if wait is not None:
                raise quota_exceeded(endpoint.method.api, bucket, self.quotas.limits[bucket],
                                     wait if self.quota_retry_after else None)
        body: Any = {}
        if body_bytes.strip():
            try:
                body = json.loads(body_bytes)
            except ValueError:
                raise bad_request("Invalid JSON payload received.") from None
        return Call(method=endpoint.method, params=params, query=query, body=body,
                    principal=principal), endpoint

    # --- helpers for tests and the inspection API ----------------------------------

    def submit_response(self, form_id: str, answers: dict[str, Any],
                        when: datetime | None = None) -> str:
        """Submit an answer to a form; ``answers`` keys are question keys or ids."""
        with self.lock:
            form = self.forms.forms[form_id]
            self._submitted += 1
            rid = response_id(self.sandbox.world.seed + 1_000_003 * self._submitted, form_id,
                              len(form.responses) + 1)
            form.responses[rid] = response_record(form, answers,
                                                  when or self.sandbox.clock.now(), rid)
            return rid

    def respond_via_link(self, link: str, answers: dict[str, Any], *,
                         respondent_email: str | None = None) -> str:
        """A person opens a prefilled link, adds ``answers`` and submits. The prefilled
        ``entry.N=value`` pairs are taken only when ``prefill_entries`` is "question_id"
        (N = int(questionId, 16), the unverified assumption, docs/fidelidad.md); with
        "opaque" the form's own entry numbers differ and the prefilled values are lost.
        ``respondent_email``: the address the form collects itself (respondentEmail)."""
        from urllib.parse import parse_qsl, urlparse

        parsed = urlparse(link)
        with self.lock:
            form = next(f for f in self.forms.forms.values()
                        if f.responder_id in parsed.path)
            given: dict[str, Any] = {}
            if self.prefill_entries == "question_id":
                by_entry = {str(int(q.question_id, 16)): q.question_id for q in form.questions}
                for key, value in parse_qsl(parsed.query):
                    entry = key.removeprefix("entry.")
                    if entry in by_entry:
                        given[by_entry[entry]] = value
        rid = self.submit_response(form.form_id, {**given, **answers})
        if respondent_email:
            with self.lock:
                form.responses[rid]["respondentEmail"] = respondent_email
        return rid

    def edit_response(self, form_id: str, rid: str, answers: dict[str, Any],
                      when: datetime | None = None) -> None:
        """A respondent edits an answer: new values and a new lastSubmittedTime."""
        with self.lock:
            form = self.forms.forms[form_id]
            created = form.responses[rid]["createTime"]
            record = response_record(form, answers, when or self.sandbox.clock.now(), rid)
            record["createTime"] = created
            form.responses[rid] = record

    def set_cells(self, spreadsheet_id: str, range_a1: str, rows: list[list[Any]]) -> None:
        """Write values as a person typing them would (USER_ENTERED)."""
        with self.lock:
            book = self.sheets.spreadsheets[spreadsheet_id]
            self.sheets.plan_write(book, range_a1, rows, "ROWS", "USER_ENTERED").apply()

    def sheet_values(self, spreadsheet_id: str, tab: str,
                     render: str = "UNFORMATTED_VALUE") -> list[list[Any]]:
        """A tab's values as values.get renders them (dates and date-times as ISO text)."""
        from sandbox.google.sheets_model import value_range

        with self.lock:
            book = self.sheets.spreadsheets[spreadsheet_id]
            sheet = book.sheet_by_title(tab, tab)
            body = value_range(sheet, (0, sheet.rows, 0, sheet.cols), "ROWS", render,
                               "FORMATTED_STRING")
            return list(body.get("values", []))

    def sheet_properties(self, spreadsheet_id: str, tab: str) -> dict[str, Any]:
        with self.lock:
            book = self.sheets.spreadsheets[spreadsheet_id]
            return book.sheet_by_title(tab, tab).properties()

    def cell_format(self, spreadsheet_id: str, tab: str, row: int, col: int) -> str | None:
        """The number format of a cell (DATE, DATE_TIME, PERCENT, TEXT or None)."""
        with self.lock:
            sheet = self.sheets.spreadsheets[spreadsheet_id].sheet_by_title(tab, tab)
            cell = sheet.cells.get(row, {}).get(col)
            return cell.fmt if cell else None

    def message_part(self, message_id: str, name: str) -> bytes:
        """The decoded bytes of a sent message's part by file name or Content-ID (an
        attachment, an inline image), as a mail client would save it."""
        with self.lock:
            stored = next(m for m in self._all_messages() if m["id"] == message_id)
            for part in stored["message"].walk():
                cid = str(part.get("Content-ID", "")).strip("<>")
                if name in (part.get_filename(), cid):
                    payload = part.get_payload(decode=True)
                    assert isinstance(payload, bytes)
                    return payload
        raise KeyError(f"the message {message_id} has no part {name!r}")

    def sent_messages(self) -> list[dict[str, Any]]:
        """Every message sent through Gmail, oldest first."""
        with self.lock:
            return [self._message_view(m) for m in self._all_messages()]

    def events(self, calendar_id: str = "primary") -> list[dict[str, Any]]:
        """The events of a calendar ('primary' = the delegated user's)."""
        from sandbox.google.calendar import _public

        with self.lock:
            cid = self.delegated_user if calendar_id == "primary" else calendar_id
            return [_public(e) for e in self.calendar.calendars.get(cid, {}).values()]

    def set_quota(self, bucket: str, per_minute: int) -> None:
        """Change a per-minute quota (buckets: sheets_read, sheets_write, forms_read,
        forms_expensive, gmail_units, calendar)."""
        self.quotas.set_limit(bucket, per_minute)

    def reset_quotas(self) -> None:
        self.quotas.reset()

    def expire_tokens(self) -> None:
        self.tokens.expire_all()

    def set_delegated_scopes(self, scopes: set[str]) -> None:
        """What the Admin console authorises for domain-wide delegation."""
        with self.lock:
            self.delegation[self.account.client_id] = set(scopes)

    def unshare(self, file_id_: str, email: str) -> None:
        """Remove someone's access to a spreadsheet or form."""
        with self.lock:
            target = self.sheets.spreadsheets.get(file_id_) or self.forms.forms[file_id_]
            target.editors.discard(email)

    @property
    def usage_tab(self) -> str:
        return USAGE_TAB

    @property
    def kpi_first_tab(self) -> str:
        return KPI_FIRST_TAB

    def _all_messages(self) -> list[dict[str, Any]]:
        messages = [m for box in self.gmail.mailboxes.values() for m in box]
        return sorted(messages, key=lambda m: (m["sent_at"], m["id"]))

    @staticmethod
    def _message_view(stored: dict[str, Any]) -> dict[str, Any]:
        return {"id": stored["id"], "threadId": stored["threadId"],
                "subject": stored["subject"], "from": stored["from"], "to": stored["to"],
                "cc": stored["cc"], "bcc": stored["bcc"], "html": stored["html"],
                "text": stored["text"], "message_id": stored["message_id"],
                "headers": {k: str(v) for k, v in stored["message"].items()},
                "sent_at": stored["sent_at"].isoformat(),
                "parts": _parts(stored["message"])}

    # --- inspection routes ---------------------------------------------------------

    async def _inspect_messages(self, _request: Request) -> Response:
        return JSONResponse(self.sent_messages())

    async def _inspect_events(self, request: Request) -> Response:
        return JSONResponse(self.events(request.path_params["calendar_id"]))

    async def _inspect_sheet(self, request: Request) -> Response:
        try:
            values = self.sheet_values(request.path_params["spreadsheet_id"],
                                       request.path_params["tab"])
        except (KeyError, GoogleApiError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse({"values": values})

    async def _inspect_submit(self, request: Request) -> Response:
        body = await request.json()
        when = datetime.fromisoformat(body["when"]) if body.get("when") else None
        try:
            rid = self.submit_response(request.path_params["form_id"], body["answers"], when)
        except KeyError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse({"responseId": rid}, status_code=201)

    async def _inspect_quota(self, request: Request) -> Response:
        if request.method == "POST":
            body = await request.json()
            try:
                self.set_quota(str(body["bucket"]), int(body["per_minute"]))
            except (KeyError, ValueError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"limits": self.quotas.limits, "usage": self.quotas.usage()})

    async def _inspect_expire(self, _request: Request) -> Response:
        self.expire_tokens()
        return JSONResponse({"ok": True})



def _parts(message: Any) -> list[dict[str, Any]]:
    """Every MIME part of a message in order (multipart containers too): type, disposition,
    file name, Content-ID and decoded size — what a mail client shows as the body, the
    inline images and the attachments."""
    out = []
    for part in message.walk():
        payload = None if part.is_multipart() else part.get_payload(decode=True)
        out.append({"mimeType": part.get_content_type(),
                    "disposition": part.get_content_disposition(),
                    "filename": part.get_filename(),
                    "contentId": str(part.get("Content-ID", "")).strip("<>") or None,
                    "size": len(payload) if isinstance(payload, bytes) else 0})
    return out
