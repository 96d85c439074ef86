"""Forms API v1: forms.get, forms.responses.list (``timestamp >`` filter, paging) and
forms.responses.get (reference §4)."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbox.google.dispatch import Call, Router
from sandbox.google.errors import GoogleApiError, bad_request, not_found

API = "forms"
READ, EXPENSIVE = ("forms_read", 1), ("forms_expensive", 1)
LISTED_KEPT = 1000
MAX_PAGE_SIZE = 5000  # "If unspecified or zero, at most 5000 responses are returned" (forms.v1)
_FILTER = re.compile(r"^\s*timestamp\s*(>=|>)\s*(\S+)\s*$")
_RFC3339_Z = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z$")
# Which timestamp the filter compares is unspecified; likely lastSubmittedTime [C] (§4.2).
# Configurable per FormsApi instance.
DEFAULT_FILTER_FIELD = "lastSubmittedTime"


def rfc3339(moment: datetime) -> str:
    """UTC-naive datetime -> '2025-01-15T09:31:02.114552Z' (Google's microsecond form)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339_z(text: str) -> tuple[datetime, int]:
    """'…Z' with up to 9 fraction digits -> (second-precision datetime, nanoseconds)."""
    match = _RFC3339_Z.match(text)
    if not match:
        raise ValueError(text)
    base = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S")
    nanos = int((match.group(2) or "0").ljust(9, "0"))
    return base, nanos


@dataclass
class Question:
    key: str  # the sandbox's own name for it (e.g. "score"), used by submit_response
    question_id: str
    item_id: str
    title: str
    kind: str  # scale | text | paragraph
    low: int = 1
    high: int = 5
    required: bool = False

    def item(self) -> dict[str, Any]:
        question: dict[str, Any] = {"questionId": self.question_id}
        if self.required:
            question["required"] = True
        if self.kind == "scale":
            question["scaleQuestion"] = {"low": self.low, "high": self.high}
        elif self.kind == "paragraph":
            question["textQuestion"] = {"paragraph": True}
        else:
            question["textQuestion"] = {}  # proto3 JSON drops false fields (§4.1)
        return {"itemId": self.item_id, "title": self.title,
                "questionItem": {"question": question}}


@dataclass
class Form:
    form_id: str
    title: str
    questions: list[Question]
    editors: set[str]
    revision: int = 1
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)

    def resource(self) -> dict[str, Any]:
        return {
            "formId": self.form_id,
            "info": {"title": self.title, "documentTitle": self.title},
            "revisionId": f"{self.revision:08d}",
            "responderUri": f"https://docs.google.com/forms/d/e/{self.responder_id}/viewform",
            "items": [q.item() for q in self.questions],
        }

    @property
    def responder_id(self) -> str:
        return "1FAIpQLS" + self.form_id[1:37]

    def question(self, key: str) -> Question:
        for question in self.questions:
            if key in (question.key, question.question_id):
                return question
        raise KeyError(f"form {self.form_id} has no question {key!r}")


class FormsApi:
    """The forms the sandbox holds and the handlers that serve them."""

    def __init__(self, filter_field: str = DEFAULT_FILTER_FIELD) -> None:
        self.forms: dict[str, Form] = {}
        self.filter_field = filter_field
        # Responses returned by each responses.list, latest LISTED_KEPT (inspection).
        self.listed: list[int] = []

    def register(self, router: Router) -> None:
        router.add(API, "forms.forms.get", self.get, READ)
        router.add(API, "forms.forms.responses.list", self.list_responses, EXPENSIVE)
        router.add(API, "forms.forms.responses.get", self.get_response, READ)

    def open(self, call: Call) -> Form:
        form = self.forms.get(call.params["formId"])
        if form is None:
            raise not_found()
        if not ({call.principal.user, call.principal.client_email} & form.editors):
            # Responses are visible to the form's editors only [C] (§2.4).
            raise GoogleApiError(403, "The caller does not have permission")
        return form

    def get(self, call: Call) -> dict[str, Any]:
        return self.open(call).resource()

    def get_response(self, call: Call) -> dict[str, Any]:
        form = self.open(call)
        response = form.responses.get(call.params["responseId"])
        if response is None:
            raise not_found()
        return {"formId": form.form_id, **response}

    def list_responses(self, call: Call) -> dict[str, Any]:
        form = self.open(call)
        query = call.arg("filter") or ""
        matches = self._filtered(form, query)
        size = call.integer("pageSize", 0) or MAX_PAGE_SIZE
        if size < 0:
            raise bad_request("Invalid value at 'page_size', must be non-negative.")
        size = min(size, MAX_PAGE_SIZE)
        offset = self._offset(call.arg("pageToken"), form.form_id, query)
        page = matches[offset:offset + size]
        self.listed.append(len(page))
        del self.listed[:-LISTED_KEPT]
        body: dict[str, Any] = {}
        if page:
            body["responses"] = page
        if offset + size < len(matches):
            body["nextPageToken"] = _token(form.form_id, query, offset + size)
        return body

    def _filtered(self, form: Form, query: str) -> list[dict[str, Any]]:
        ordered = sorted(form.responses.values(),
                         key=lambda r: (r[self.filter_field], r["responseId"]))
        if not query:
            return ordered
        match = _FILTER.match(query)
        if not match:
            raise bad_request(f"Invalid filter: {query}. Supported filters are "
                              "'timestamp > N' and 'timestamp >= N'.")
        try:
            bound = parse_rfc3339_z(match.group(2))
        except ValueError:
            raise bad_request(f"Invalid filter: timestamp must be RFC3339 UTC \"Zulu\" format, "
                              f"got {match.group(2)}") from None
        inclusive = match.group(1) == ">="
        out = []
        for response in ordered:
            stamp = parse_rfc3339_z(response[self.filter_field])
            if stamp > bound or (inclusive and stamp == bound):
                out.append(response)
        return out

    @staticmethod
    def _offset(token: str | None, form_id: str, query: str) -> int:
        if not token:
            return 0
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            if data["f"] == form_id and data["q"] == query:
                return int(data["o"])
        except (ValueError, KeyError, TypeError):
            pass
        raise bad_request("Invalid page token: it does not belong to this form and filter.")


def _token(form_id: str, query: str, offset: int) -> str:
    raw = json.dumps({"f": form_id, "q": query, "o": offset}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
