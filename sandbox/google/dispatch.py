"""Routing driven by the discovery documents google-api-python-client ships.

Every emulated method takes its HTTP method, path template and accepted scopes from
``googleapiclient/discovery_cache/documents/*.json`` (the authoritative schemas), so paths
and scope checks cannot drift from what the real client sends. Matching runs on the *raw*
path (reference §1.1): literal suffixes such as ``:append`` stay raw while path variables are
percent-encoded, so ``'My:Sheet'!A1`` cannot be mistaken for a suffix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import googleapiclient
from starlette.datastructures import QueryParams

from sandbox.google.errors import GoogleApiError, bad_request

DISCOVERY_DIR = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"
DISCOVERY_DOCS = {"sheets": "sheets.v4", "forms": "forms.v1", "gmail": "gmail.v1",
                  "calendar": "calendar.v3"}
# Ids never contain ':' (it starts a custom verb such as ':batchUpdate').
_ID_PARAMS = {"spreadsheetId", "formId", "responseId", "calendarId", "eventId", "userId", "id"}


@dataclass(frozen=True)
class ApiMethod:
    """One REST method as the discovery document declares it."""

    api: str
    method_id: str
    http_method: str
    path: str  # template relative to the API root, e.g. /v4/spreadsheets/{spreadsheetId}
    scopes: frozenset[str]
    pattern: re.Pattern[str] = field(compare=False, repr=False)

    @property
    def specificity(self) -> int:
        """Literal characters in the template: the most specific match wins."""
        return len(re.sub(r"\{[^}]+\}", "", self.path))


def _compile(template: str) -> re.Pattern[str]:
    out, pos = [], 0
    for match in re.finditer(r"\{(\+?)([A-Za-z0-9_]+)\}", template):
        out.append(re.escape(template[pos:match.start()]))
        reserved, name = match.groups()
        body = ".+" if reserved else ("[^/:]+" if name in _ID_PARAMS else "[^/]+")
        out.append(f"(?P<{name}>{body})")
        pos = match.end()
    out.append(re.escape(template[pos:]))
    return re.compile("^" + "".join(out) + "$")


def _walk(resource: dict[str, Any]) -> list[dict[str, Any]]:
    methods = list(resource.get("methods", {}).values())
    for child in resource.get("resources", {}).values():
        methods.extend(_walk(child))
    return methods


@cache
def discovery_methods(api: str) -> dict[str, ApiMethod]:
    """method id (e.g. ``sheets.spreadsheets.values.get``) -> ApiMethod."""
    doc = json.loads((DISCOVERY_DIR / f"{DISCOVERY_DOCS[api]}.json").read_text("utf-8"))
    prefix = "/" + doc["servicePath"]
    methods = {}
    for raw in _walk(doc):
        template = (prefix + raw["path"]).replace("//", "/")
        methods[raw["id"]] = ApiMethod(api=api, method_id=raw["id"],
                                       http_method=raw["httpMethod"], path=template,
                                       scopes=frozenset(raw.get("scopes", [])),
                                       pattern=_compile(template))
    return methods


@cache
def discovery_schema_names(api: str, schema: str) -> frozenset[str]:
    """Property names of one schema (e.g. the kinds of a Sheets batchUpdate request)."""
    doc = json.loads((DISCOVERY_DIR / f"{DISCOVERY_DOCS[api]}.json").read_text("utf-8"))
    return frozenset(doc["schemas"][schema]["properties"])


@dataclass
class Principal:
    """Who a valid access token speaks for."""

    client_email: str
    subject: str | None
    scopes: frozenset[str]

    @property
    def user(self) -> str:
        """The identity quotas and file access count against (the DWD user if any)."""
        return self.subject or self.client_email


@dataclass
class Call:
    """One API request, after routing and authentication."""

    method: ApiMethod
    params: dict[str, str]
    query: QueryParams
    body: Any
    principal: Principal

    def arg(self, name: str, default: str | None = None) -> str | None:
        return self.query.get(name, default)

    def args(self, name: str) -> list[str]:
        return self.query.getlist(name)

    def flag(self, name: str, default: bool = False) -> bool:
        """Booleans arrive as true/false (googleapiclient) or True/False (requests)."""
        value = self.query.get(name)
        if value is None:
            return default
        if value.lower() not in ("true", "false"):
            raise bad_request(f"Invalid value at '{name}' (TYPE_BOOL), \"{value}\"")
        return value.lower() == "true"

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.query.get(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise bad_request(f"Invalid value at '{name}' (TYPE_INT32), \"{value}\"") from None

    def json_body(self) -> dict[str, Any]:
        if not isinstance(self.body, dict):
            raise bad_request("Invalid JSON payload received. Expected an object.")
        # gspread sends explicit nulls for unset fields: treat them as absent (§1.2).
        return {k: v for k, v in self.body.items() if v is not None}


Handler = Callable[[Call], Any]


@dataclass
class Endpoint:
    method: ApiMethod
    handler: Handler
    quota: tuple[str, int] | None  # (bucket, cost)


class Router:
    """Matches (HTTP method, raw path) to the emulated discovery method."""

    def __init__(self) -> None:
        self._endpoints: list[Endpoint] = []

    def add(self, api: str, method_id: str, handler: Handler,
            quota: tuple[str, int] | None = None) -> None:
        self._endpoints.append(Endpoint(discovery_methods(api)[method_id], handler, quota))

    def match(self, http_method: str, raw_path: str) -> tuple[Endpoint, dict[str, str]]:
        """The most specific endpoint for the path, or a Google-shaped 404."""
        found: list[tuple[Endpoint, dict[str, str]]] = []
        for endpoint in self._endpoints:
            if endpoint.method.http_method != http_method:
                continue
            matched = endpoint.method.pattern.match(raw_path)
            if matched:
                params = {k: unquote(v) for k, v in matched.groupdict().items()}
                found.append((endpoint, params))
        if not found:
            raise GoogleApiError(404, f"The requested URL {raw_path} was not found on this "
                                      "server.", reason="notFound")
        return max(found, key=lambda pair: pair[0].method.specificity)
