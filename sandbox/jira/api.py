"""The REST endpoints of the emulated Jira Cloud site (``/rest/api/{2|3|latest}/...``, the
admin webhook API and the application-links probe of ``add_remote_link``).

Every handler authenticates (basic auth, email + API token), validates like Jira and answers
Jira's JSON shapes and status codes; errors are ErrorCollections (reference §7).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.jira import hooks, jql
from sandbox.jira.render import Renderer
from sandbox.jira.site import (
    DEMO_EMAIL,
    PRIORITIES,
    RESOLUTIONS,
    User,
)
from sandbox.jira.store import Issue, JiraInputError

if TYPE_CHECKING:
    from sandbox.jira.tool import JiraTool

API_VERSIONS = ("2", "3", "latest")
# Page sizes (reference §2.3): 50 by default; up to 5000 when only ids/keys are asked for;
# about 100 with fields (reported, not documented).
SEARCH_DEFAULT_PAGE = 50
SEARCH_MAX_PAGE_WITH_FIELDS = 100
SEARCH_MAX_PAGE_IDS_ONLY = 5000
PAGE_TOKEN_TTL = timedelta(days=7)  # tokens expire after 7 days (reference §2.3)
CHANGELOG_PAGE = 100
COMMENT_PAGE = 100
# [unsure] Cloud's 401 body is not always JSON (reference §7); this is the common text.
UNAUTHENTICATED_TEXT = "Client must be authenticated to access this resource."
GONE = ("The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
        "A full migration guideline is available at "
        "https://developer.atlassian.com/changelog/#CHANGE-2046")
BAD_PAYLOAD = "Invalid request payload. Refer to the REST API documentation and try again."


@dataclass
class Call:
    """One authenticated request: who, which API version, its query and JSON body."""

    request: Request
    version: str
    user: User | None
    render: Renderer
    body: Any
    now: datetime

    def param(self, name: str, default: str | None = None) -> str | None:
        return self.request.query_params.get(name, default)

    def params(self, name: str) -> list[str] | None:
        """A list parameter, repeated (``a=1&a=2``) or comma separated, or None if absent."""
        raw = self.request.query_params.getlist(name)
        if not raw:
            return None
        return [part.strip() for value in raw for part in value.split(",") if part.strip()]

    @property
    def actor(self) -> str:
        assert self.user is not None
        return self.user.account_id


def error(status: int, messages: list[str] | None = None,
          errors: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errorMessages": messages or [], "errors": errors or {}},
                        status_code=status)


def _unauthenticated() -> Response:
    return Response(UNAUTHENTICATED_TEXT, status_code=401, media_type="text/plain",
                    headers={"X-Seraph-LoginReason": "AUTHENTICATED_FAILED"})


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError as exc:
        raise JiraInputError([f"'{value}' is not a valid number."]) from exc


def wanted_fields(requested: list[str] | None, default_all: bool) -> set[str] | None:
    """The field ids to render (None = all) from a ``fields`` parameter (reference §2.3)."""
    if requested is None:
        return None if default_all else set()
    from sandbox.jira.site import CUSTOM_FIELDS, SYSTEM_FIELDS

    every = {f.id for f in SYSTEM_FIELDS + CUSTOM_FIELDS} | {"creator"}
    chosen: set[str] = set()
    for item in requested:
        if item in ("*all", "*navigable"):
            chosen |= every
        elif not item.startswith("-"):
            chosen.add(item)
    for item in requested:
        if item.startswith("-"):
            chosen.discard(item[1:])
    return chosen - {"id", "key"}


class JiraApi:
    """Route table and handlers; state changes happen under the tool's lock."""

    def __init__(self, tool: JiraTool) -> None:
        self.tool = tool

    def routes(self) -> list[BaseRoute]:
        api = "/rest/api/{version}"
        table: list[tuple[str, Callable[[Call], Response], list[str], bool]] = [
            (f"{api}/serverInfo", self.server_info, ["GET"], False),
            (f"{api}/myself", self.myself, ["GET"], True),
            (f"{api}/user", self.user, ["GET"], True),
            (f"{api}/field", self.fields, ["GET"], True),
            (f"{api}/status", self.statuses, ["GET"], True),
            (f"{api}/priority", self.priorities, ["GET"], True),
            (f"{api}/resolution", self.resolutions, ["GET"], True),
            (f"{api}/project", self.projects, ["GET"], True),
            (f"{api}/project/{{project}}", self.project, ["GET"], True),
            (f"{api}/search", self.search_gone, ["GET", "POST"], True),
            (f"{api}/search/jql", self.search, ["GET", "POST"], True),
            (f"{api}/search/approximate-count", self.approximate_count, ["POST"], True),
            (f"{api}/issue", self.create_issue, ["POST"], True),
            (f"{api}/issue/{{issue}}", self.issue, ["GET", "PUT", "DELETE"], True),
            (f"{api}/issue/{{issue}}/changelog", self.changelog, ["GET"], True),
            (f"{api}/issue/{{issue}}/transitions", self.transitions, ["GET", "POST"], True),
            (f"{api}/issue/{{issue}}/comment", self.comments, ["GET", "POST"], True),
            (f"{api}/issue/{{issue}}/remotelink", self.remote_links, ["GET", "POST"], True),
            (f"{api}/issue/{{issue}}/properties", self.property_keys, ["GET"], True),
            (f"{api}/issue/{{issue}}/properties/{{prop}}", self.property,
             ["GET", "PUT", "DELETE"], True),
            ("/rest/webhooks/1.0/webhook", self.webhooks, ["GET", "POST"], True),
            ("/rest/webhooks/1.0/webhook/{webhook}", self.webhook, ["GET", "DELETE"], True),
            ("/rest/applinks/latest/listApplicationlinks", self.applinks, ["GET"], True),
        ]
        return [Route(path, self._endpoint(handler, auth), methods=methods)
                for path, handler, methods, auth in table]

    # --- plumbing -------------------------------------------------------------------

    def _authenticate(self, request: Request) -> tuple[User | None, bool]:
        """(user, ok): no header is anonymous; a wrong email/token is never ok."""
        header = request.headers.get("authorization")
        if not header:
            return None, True
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None, False
        try:
            email, _, token = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None, False
        if email.lower() == DEMO_EMAIL and token == self.tool.api_token:
            return self.tool.site.integration, True
        return None, False

    def _endpoint(self, handler: Callable[[Call], Response],
                  needs_user: bool) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            version = request.path_params.get("version", "2")
            if version not in API_VERSIONS:
                return error(404, ["null for uri: " + str(request.url)])
            user, ok = self._authenticate(request)
            if not ok or (needs_user and user is None):
                return _unauthenticated()
            body: Any = None
            if request.method in ("POST", "PUT"):
                raw = await request.body()
                if raw.strip():
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        return error(400, [BAD_PAYLOAD])
                request.state.raw_size = len(raw)
            call = Call(request, version if version != "latest" else "2", user,
                        self.tool.renderer(version if version != "latest" else "2"), body,
                        self.tool.now())
            try:
                with self.tool.lock:
                    return handler(call)
            except JiraInputError as exc:
                return error(exc.status, exc.messages, exc.errors)

        return endpoint

    def _issue(self, call: Call) -> Issue:
        return self.tool.store.require(call.request.path_params["issue"])

    # --- site metadata --------------------------------------------------------------

    def server_info(self, call: Call) -> Response:
        return JSONResponse({
            "baseUrl": self.tool.base, "displayUrl": self.tool.base,
            "version": "1001.0.0-SNAPSHOT", "versionNumbers": [1001, 0, 0],
            "deploymentType": "Cloud", "buildNumber": 100300,
            "buildDate": "2026-10-01T00:00:00.000+0000",
            "serverTime": call.render.ts(call.now), "scmInfo": "5a3c1d9",
            "serverTitle": "Saeko Jira", "defaultLocale": {"locale": "es_MX"}})

    def myself(self, call: Call) -> Response:
        body = call.render.user(call.actor) or {}
        body.update({"locale": "es_MX", "groups": {"size": 2, "items": []},
                     "applicationRoles": {"size": 1, "items": []}})
        return JSONResponse(body)

    def user(self, call: Call) -> Response:
        account = call.param("accountId")
        if not account:
            raise JiraInputError(["The accountId query parameter needs to be provided."])
        body = call.render.user(account)
        if body is None:
            raise JiraInputError(["Specified user does not exist or you do not have required "
                                  "permissions"], status=404)
        return JSONResponse(body)

    def fields(self, call: Call) -> Response:
        return JSONResponse([
            {"id": f.id, "key": f.id, "name": f.name, "untranslatedName": f.name,
             "custom": f.custom, "orderable": f.id not in ("issuekey", "status"),
             "navigable": True, "searchable": True, "clauseNames": list(f.clause_names),
             "schema": f.schema} for f in self.tool.site.fields])

    def statuses(self, call: Call) -> Response:
        return JSONResponse([call.render.status(s) for s in self.tool.site.statuses.values()])

    def priorities(self, call: Call) -> Response:
        return JSONResponse([call.render.priority(name) for name in PRIORITIES.values()])

    def resolutions(self, call: Call) -> Response:
        return JSONResponse([call.render.resolution(name) for name in RESOLUTIONS.values()])

    def projects(self, call: Call) -> Response:
        return JSONResponse([call.render.project(key) for key in self.tool.site.projects])

    def project(self, call: Call) -> Response:
        ref = call.request.path_params["project"]
        project = self.tool.site.project(ref)
        if project is None:
            raise JiraInputError([f"No project could be found with key '{ref}'."], status=404)
        return JSONResponse(call.render.project(project.key, full=True))

    # --- search ---------------------------------------------------------------------

    def search_gone(self, _call: Call) -> Response:
        return error(410, [GONE])

    def _search_args(self, call: Call) -> dict[str, Any]:
        if call.request.method == "POST":
            body = call.body if isinstance(call.body, dict) else {}
            fields = body.get("fields")
            expand = body.get("expand")
            return {"jql": body.get("jql") or "", "fields": fields,
                    "expand": set(expand.split(",")) if isinstance(expand, str) else set(expand or []),
                    "max": body.get("maxResults"), "token": body.get("nextPageToken"),
                    "properties": body.get("properties")}
        return {"jql": call.param("jql") or "", "fields": call.params("fields"),
                "expand": set(call.params("expand") or []),
                "max": call.param("maxResults"), "token": call.param("nextPageToken"),
                "properties": call.params("properties")}

    def search(self, call: Call) -> Response:
        args = self._search_args(call)
        wanted = wanted_fields(args["fields"], default_all=False)
        matched, parser, order = jql.run(args["jql"], list(self.tool.store.issues.values()),
                                         self.tool.site, self.tool.user_time_zone, call.now)
        cap = SEARCH_MAX_PAGE_WITH_FIELDS if wanted or args["expand"] else SEARCH_MAX_PAGE_IDS_ONLY
        size = max(1, min(_int(None if args["max"] is None else str(args["max"]),
                              SEARCH_DEFAULT_PAGE), cap))
        keys = jql.sort_keys(parser, order)
        compare = jql.compare_keys(order)
        start = 0
        query_hash = hashlib.sha256(args["jql"].encode()).hexdigest()[:16]
        if args["token"]:
            last = self._decode_token(args["token"], query_hash, call.now)
            start = next((i for i, issue in enumerate(matched)
                          if compare(keys(issue), last) > 0), len(matched))
        page = matched[start:start + size]
        body: dict[str, Any] = {"issues": [
            call.render.issue(issue, wanted, expand=args["expand"],
                              changelog_cap=self.tool.search_changelog_cap,
                              newest_first=self.tool.changelog_newest_first,
                              properties=args["properties"])
            for issue in page]}
        more = start + size < len(matched)
        if more:
            body["nextPageToken"] = self._encode_token(keys(page[-1]), query_hash, call.now)
        body["isLast"] = not more
        return JSONResponse(body)

    @staticmethod
    def _encode_token(last: list[Any], query_hash: str, now: datetime) -> str:
        # Search-after semantics: the token holds the sort values of the last issue served,
        # so issues updated while a client pages are neither skipped nor repeated.
        raw = json.dumps({"q": query_hash, "k": last, "t": now.isoformat()}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def _decode_token(token: str, query_hash: str, now: datetime) -> list[Any]:
        invalid = JiraInputError(["The provided next page token is invalid or expired."])
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            issued = datetime.fromisoformat(data["t"])
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise invalid from exc
        if data.get("q") != query_hash or now - issued > PAGE_TOKEN_TTL:
            raise invalid
        return list(data["k"])

    def approximate_count(self, call: Call) -> Response:
        body = call.body if isinstance(call.body, dict) else {}
        matched, _parser, _order = jql.run(str(body.get("jql") or ""),
                                           list(self.tool.store.issues.values()),
                                           self.tool.site, self.tool.user_time_zone, call.now)
        return JSONResponse({"count": len(matched)})

    # --- issues ---------------------------------------------------------------------

    def create_issue(self, call: Call) -> Response:
        body = call.body if isinstance(call.body, dict) else None
        if body is None or not isinstance(body.get("fields"), dict):
            raise JiraInputError([BAD_PAYLOAD])
        issue = self.tool.store.create(body["fields"], call.actor, call.now,
                                       api_version=call.version)
        self.tool.issue_event(hooks.ISSUE_CREATED, issue, call.actor)
        return JSONResponse({"id": str(issue.id), "key": issue.key,
                             "self": f"{call.render.api}/issue/{issue.id}"}, status_code=201)

    def issue(self, call: Call) -> Response:
        issue = self._issue(call)
        if call.request.method == "DELETE":
            flag = (call.param("deleteSubtasks") or "false").lower()
            if flag not in ("true", "false"):
                return error(400, [f"deleteSubtasks takes true or false, not {flag!r}"])
            self.tool.delete_issue(issue, call.actor, delete_subtasks=flag == "true")
            return Response(status_code=204)
        if call.request.method == "PUT":
            body = call.body if isinstance(call.body, dict) else {}
            history = self.tool.store.edit(issue, body.get("fields") or {},
                                           body.get("update") or {}, call.actor, call.now,
                                           api_version=call.version)
            if history is not None:
                self.tool.issue_event(hooks.ISSUE_UPDATED, issue, call.actor, history=history)
            if (call.param("returnIssue") or "").lower() == "true":
                return JSONResponse(self._render_issue(call, issue))
            return Response(status_code=204)
        return JSONResponse(self._render_issue(call, issue))

    def _render_issue(self, call: Call, issue: Issue) -> dict[str, Any]:
        return call.render.issue(issue, wanted_fields(call.params("fields"), default_all=True),
                                 expand=set(call.params("expand") or []),
                                 changelog_cap=self.tool.issue_changelog_cap,
                                 newest_first=self.tool.changelog_newest_first,
                                 properties=call.params("properties"))

    def changelog(self, call: Call) -> Response:
        issue = self._issue(call)
        start = max(0, _int(call.param("startAt"), 0))
        size = max(1, min(_int(call.param("maxResults"), CHANGELOG_PAGE), CHANGELOG_PAGE))
        ordered = sorted(issue.histories, key=lambda h: (h.created, h.id))
        page = ordered[start:start + size]
        return JSONResponse({
            "self": str(call.request.url), "maxResults": size, "startAt": start,
            "total": len(ordered), "isLast": start + size >= len(ordered),
            "values": [call.render.history(h) for h in page]})

    def transitions(self, call: Call) -> Response:
        issue = self._issue(call)
        if call.request.method == "GET":
            wanted = call.param("transitionId")
            return JSONResponse({"expand": "transitions", "transitions": [
                {"id": t.id, "name": t.name, "hasScreen": False, "isGlobal": t.sources is None,
                 "isInitial": False, "isAvailable": True, "isConditional": False,
                 "isLooped": False, "to": call.render.status(t.to)}
                for t in issue.project.available(issue.status) if wanted in (None, t.id)]})
        body = call.body if isinstance(call.body, dict) else {}
        ref = body.get("transition")
        if not isinstance(ref, dict) or ref.get("id") in (None, ""):
            raise JiraInputError(["Missing 'transition' identifier"])
        history = self.tool.store.transition(issue, str(ref["id"]), body.get("fields") or {},
                                             call.actor, call.now)
        self.tool.issue_event(hooks.ISSUE_UPDATED, issue, call.actor, history=history)
        for operation in (body.get("update") or {}).get("comment", []):
            text = (operation.get("add") or {}).get("body")
            if text:
                comment = self.tool.store.comment(issue, text, call.actor, call.now,
                                                  api_version=call.version)
                self.tool.comment_events(issue, comment, call.actor)
        return Response(status_code=204)

    def comments(self, call: Call) -> Response:
        issue = self._issue(call)
        if call.request.method == "POST":
            body = call.body if isinstance(call.body, dict) else {}
            comment = self.tool.store.comment(issue, body.get("body"), call.actor, call.now,
                                              api_version=call.version)
            self.tool.comment_events(issue, comment, call.actor)
            return JSONResponse(call.render.comment(issue, comment), status_code=201)
        start = max(0, _int(call.param("startAt"), 0))
        size = max(1, min(_int(call.param("maxResults"), COMMENT_PAGE), COMMENT_PAGE))
        ordered = sorted(issue.comments, key=lambda c: (c.created, c.id),
                         reverse=(call.param("orderBy") or "").startswith("-"))
        return JSONResponse({"startAt": start, "maxResults": size, "total": len(ordered),
                             "comments": [call.render.comment(issue, c)
                                          for c in ordered[start:start + size]]})

    def remote_links(self, call: Call) -> Response:
        issue = self._issue(call)
        if call.request.method == "POST":
            body = call.body if isinstance(call.body, dict) else {}
            link, created = self.tool.store.remote_link(issue, body)
            return JSONResponse({"id": link.id,
                                 "self": f"{call.render.api}/issue/{issue.key}/remotelink/{link.id}"},
                                status_code=201 if created else 200)
        wanted = call.param("globalId")
        return JSONResponse([call.render.remote_link(issue, link) for link in issue.remote_links
                             if wanted in (None, link.global_id)])

    def property_keys(self, call: Call) -> Response:
        issue = self._issue(call)
        return JSONResponse({"keys": [
            {"key": key, "self": f"{call.render.api}/issue/{issue.id}/properties/{key}"}
            for key in sorted(issue.properties)]})

    def property(self, call: Call) -> Response:
        issue = self._issue(call)
        key = call.request.path_params["prop"]
        if call.request.method == "PUT":
            created = self.tool.store.set_property(issue, key, call.body,
                                                   getattr(call.request.state, "raw_size", 0))
            return Response(status_code=201 if created else 200)
        if key not in issue.properties:
            raise JiraInputError([f"The property with key '{key}' does not exist."], status=404)
        if call.request.method == "DELETE":
            del issue.properties[key]
            return Response(status_code=204)
        return JSONResponse({"key": key, "value": issue.properties[key]})

    # --- admin webhooks and application links ---------------------------------------

    def webhooks(self, call: Call) -> Response:
        if call.request.method == "GET":
            return JSONResponse([w.public(self.tool.base) for w in self.tool.webhooks.values()])
        body = call.body if isinstance(call.body, dict) else {}
        if not body.get("url") or not body.get("name"):
            raise JiraInputError(errors={k: f"'{k}' is required" for k in ("name", "url")
                                         if not body.get(k)})
        webhook_id = self.tool.register_webhook(
            str(body["url"]), list(body.get("events") or []), secret=body.get("secret"),
            jql=(body.get("filters") or {}).get(hooks.JQL_FILTER_KEY) or None,
            name=str(body["name"]))
        webhook = self.tool.webhooks[webhook_id]
        webhook.exclude_body = bool(body.get("excludeBody", False))
        return JSONResponse(webhook.public(self.tool.base), status_code=201)

    def webhook(self, call: Call) -> Response:
        webhook_id = _int(call.request.path_params["webhook"], 0)
        webhook = self.tool.webhooks.get(webhook_id)
        if webhook is None:
            raise JiraInputError([f"Webhook {webhook_id} does not exist."], status=404)
        if call.request.method == "DELETE":
            del self.tool.webhooks[webhook_id]
            return Response(status_code=204)
        return JSONResponse(webhook.public(self.tool.base))

    def applinks(self, _call: Call) -> Response:
        # The site has no application links configured; the library only uses this list to
        # build globalIds for Jira-to-Jira links.
        return JSONResponse({"list": []})



