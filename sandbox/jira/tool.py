"""``JiraTool``: the emulated Jira Cloud site served under ``/jira`` by the sandbox server.

Holds the site's state (seeded from the demo world), serves the REST API (api.py) and the
inspection routes, delivers webhooks, and offers Python helpers for tests: ``issue``,
``issues``, ``comments``, ``remote_links``, ``transition_as`` / ``comment_as`` (what a person
does in Jira, with changelog and webhooks) and ``register_webhook``.
"""

from __future__ import annotations

import math
import threading
import uuid
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from sandbox.jira import hooks
from sandbox.jira.api import JiraApi
from sandbox.jira.render import ISSUE_CHANGELOG_CAP, SEARCH_CHANGELOG_CAP, Renderer
from sandbox.jira.seed import seed_issues
from sandbox.jira.site import (
    DEMO_API_TOKEN,
    DEMO_EMAIL,
    DEMO_WEBHOOK_SECRET,
    INTEGRATION_ACCOUNT_ID,
    User,
    build_site,
)
from sandbox.jira.store import Comment, History, Issue, JiraInputError, JiraStore
from sandbox.webhooks import Delivery

if TYPE_CHECKING:
    from sandbox.server import Sandbox

_DELIVERY_NAMESPACE = uuid.UUID("6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b")
# Jira Cloud's per-user burst budget as observed in response headers (reference §6.1).
RATE_LIMIT_HEADER_LIMIT = "350"


class JiraTool:
    """The emulated Jira site. Public attributes below are switches tests may flip."""

    name = "jira"

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.lock = threading.RLock()
        self.site = build_site(sandbox.world.staff)
        self.store = JiraStore(self.site)
        self.api_token = DEMO_API_TOKEN
        self.webhook_secret = DEMO_WEBHOOK_SECRET
        self.webhooks: dict[int, hooks.Webhook] = {}
        self._next_webhook = hooks.FIRST_WEBHOOK_ID
        self._deliveries = 0
        # Truncation of embedded changelogs (reference §2.3/§2.5; the exact caps are unsure).
        self.search_changelog_cap = SEARCH_CHANGELOG_CAP
        self.issue_changelog_cap = ISSUE_CHANGELOG_CAP
        # The spec says expand=changelog lists histories newest first [unsure]: configurable.
        self.changelog_newest_first = True
        seed_issues(self.store, self.site, sandbox.world)

    # --- configuration --------------------------------------------------------------

    @property
    def base(self) -> str:
        """The site URL (what JIRA_URL points at)."""
        return self.sandbox.url("jira")

    @property
    def user_time_zone(self) -> str:
        """The API user's profile time zone: JQL dates are read, timestamps written, in it."""
        assert self.site.integration is not None
        return self.site.integration.time_zone

    @user_time_zone.setter
    def user_time_zone(self, value: str) -> None:
        current = self.site.integration
        assert current is not None
        self.site.integration = User(current.account_id, current.name, current.email, value)
        self.site.users[current.account_id] = self.site.integration

    def renderer(self, version: str = "2") -> Renderer:
        return Renderer(self.site, self.base, version, self.user_time_zone)

    def now(self) -> Any:
        return self.sandbox.clock.now()

    def account(self, ref: str) -> str:
        """An account id from an account id, a staff key or an email."""
        if ref in self.site.users:
            return ref
        for member in self.sandbox.world.staff:
            if ref in (member.key, member.email):
                return member.jira_account_id
        raise KeyError(f"no Jira user {ref!r}")

    # --- helpers for tests and the inspection API -----------------------------------

    def issues(self) -> list[str]:
        """Every issue key, in creation order."""
        with self.lock:
            return [issue.key for issue in sorted(self.store.issues.values(), key=lambda i: i.id)]

    def issue(self, key: str) -> dict[str, Any]:
        """The issue as API v2 shows it, with its full changelog (oldest first), remote
        links and properties."""
        with self.lock:
            issue = self.store.require(key)
            render = self.renderer()
            body = render.issue(issue, None, expand={"changelog"}, changelog_cap=10**9,
                                newest_first=False)
            body["remotelinks"] = [render.remote_link(issue, link) for link in issue.remote_links]
            body["properties"] = dict(issue.properties)
            return body

    def comments(self, key: str) -> list[dict[str, Any]]:
        with self.lock:
            issue = self.store.require(key)
            return [self.renderer().comment(issue, c) for c in issue.comments]

    def remote_links(self, key: str) -> list[dict[str, Any]]:
        with self.lock:
            issue = self.store.require(key)
            return [self.renderer().remote_link(issue, link) for link in issue.remote_links]

    def transition_as(self, account: str, key: str, to_status: str,
                      resolution: str | None = None) -> dict[str, Any]:
        """A person moves an issue to ``to_status`` through the workflow (like the UI:
        one available transition), producing changelog and webhooks. Returns the history."""
        actor = self.account(account)
        with self.lock:
            issue = self.store.require(key)
            options = [t for t in issue.project.available(issue.status)
                       if t.to.name.lower() == to_status.lower()]
            if not options:
                names = [t.to.name for t in issue.project.available(issue.status)]
                raise ValueError(f"{key} is {issue.status.name!r}; it can move to {names}")
            fields = {"resolution": {"name": resolution}} if resolution else {}
            history = self.store.transition(issue, options[0].id, fields, actor, self.now())
            self.issue_event(hooks.ISSUE_UPDATED, issue, actor, history=history)
            return self.renderer().history(history)

    def comment_as(self, account: str, key: str, body: str) -> dict[str, Any]:
        """A person comments on an issue (webhooks included)."""
        actor = self.account(account)
        with self.lock:
            issue = self.store.require(key)
            comment = self.store.comment(issue, body, actor, self.now(), api_version="2")
            self.comment_events(issue, comment, actor)
            return self.renderer().comment(issue, comment)

    def register_webhook(self, url: str, events: list[str] | None = None, *,
                         secret: str | None = DEMO_WEBHOOK_SECRET, jql: str | None = None,
                         name: str = "saeko-sync") -> int:
        """Register an admin webhook (what POST /rest/webhooks/1.0/webhook does)."""
        chosen = list(events or [hooks.ISSUE_CREATED, hooks.ISSUE_UPDATED, hooks.COMMENT_CREATED])
        unknown = [e for e in chosen if e not in hooks.SUPPORTED_EVENTS]
        if unknown:
            raise JiraInputError([f"Unknown webhook events: {', '.join(unknown)}"])
        if jql:
            from sandbox.jira import jql as jql_module

            jql_module.Parser(jql, self.site, self.user_time_zone, self.now()).parse()
        with self.lock:
            webhook = hooks.Webhook(self._next_webhook, name, url, chosen, jql, secret or None)
            self._next_webhook += 1
            self.webhooks[webhook.id] = webhook
            return webhook.id

    def delete_issue(self, issue: Issue, actor: str | None, *,
                     delete_subtasks: bool = False) -> None:
        """Delete an issue (and its sub-tasks when asked), one ``jira:issue_deleted`` each;
        the caller holds the lock."""
        payloads = {i.id: i for i in self.store.subtasks(issue)} | {issue.id: issue}
        for gone in self.store.delete(issue, delete_subtasks):
            self.issue_event(hooks.ISSUE_DELETED, payloads[gone.id], actor,
                             type_name="issue_deleted")

    def delete_issue_as(self, account: str, key: str, *, delete_subtasks: bool = False
                        ) -> None:
        """A person deletes an issue in Jira."""
        with self.lock:
            self.delete_issue(self.store.require(key), self.account(account),
                              delete_subtasks=delete_subtasks)

    def make_subtask(self, key: str, parent_key: str) -> None:
        """Make an issue a sub-task of another (test set-up)."""
        with self.lock:
            self.store.require(key).parent = self.store.require(parent_key).id

    # --- webhook deliveries ---------------------------------------------------------

    def issue_event(self, event: str, issue: Issue, actor: str | None, *,
                    history: History | None = None, type_name: str | None = None,
                    comment: Comment | None = None) -> None:
        """Deliver an issue event to every matching webhook."""
        if not self.webhooks:
            return
        render = self.renderer("2")
        payload: dict[str, Any] = {
            "timestamp": hooks.epoch_ms(self.now()), "webhookEvent": event,
            "issue_event_type_name": type_name or (
                "issue_created" if event == hooks.ISSUE_CREATED else "issue_generic"),
            "user": render.user(actor),
            "issue": render.issue(issue, None, expand=set(), changelog_cap=0,
                                  newest_first=True),
        }
        if history is not None:
            payload["changelog"] = {"id": str(history.id), "items": history.items}
        if comment is not None:
            payload["comment"] = render.comment(issue, comment)
        self._deliver(event, issue, payload)

    def comment_events(self, issue: Issue, comment: Comment, actor: str | None) -> None:
        """comment_created plus the jira:issue_updated (issue_commented) Jira also sends."""
        if not self.webhooks:
            return
        render = self.renderer("2")
        slim = {"id": str(issue.id), "key": issue.key, "self": f"{render.api}/issue/{issue.id}",
                "fields": {"summary": issue.summary, "status": render.status(issue.status),
                           "issuetype": render.issue_type(issue.issue_type),
                           "priority": render.priority(issue.priority)}}
        self._deliver(hooks.COMMENT_CREATED, issue, {
            "timestamp": hooks.epoch_ms(self.now()), "webhookEvent": hooks.COMMENT_CREATED,
            "comment": render.comment(issue, comment), "issue": slim})
        self.issue_event(hooks.ISSUE_UPDATED, issue, actor, type_name="issue_commented",
                         comment=comment)

    def _deliver(self, event: str, issue: Issue, payload: dict[str, Any]) -> None:
        from sandbox.jira import jql as jql_module

        for webhook in list(self.webhooks.values()):
            if not webhook.enabled or event not in webhook.events:
                continue
            if webhook.jql and not jql_module.matches(webhook.jql, issue, self.site,
                                                      self.user_time_zone, self.now()):
                continue
            body = hooks.encode({} if webhook.exclude_body else payload)
            self._deliveries += 1
            identifier = str(uuid.uuid5(_DELIVERY_NAMESPACE, f"{webhook.id}:{self._deliveries}"))
            headers = {"Content-Type": "application/json; charset=utf-8",
                       "X-Atlassian-Webhook-Identifier": identifier,
                       "X-Atlassian-Webhook-Flow": "Primary",
                       "User-Agent": "Atlassian Webhook HTTP Client"}
            if webhook.secret:
                headers["X-Hub-Signature"] = hooks.signature(webhook.secret, body)
            self.sandbox.webhooks.enqueue(Delivery(
                tool="jira", url=webhook.url, body=body, headers=headers,
                meta={"event": event, "issue": issue.key, "webhook": webhook.id,
                      "identifier": identifier}))

    # --- the Tool protocol ----------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return JiraApi(self).routes()

    def inspection_routes(self) -> list[BaseRoute]:
        return [
            Route("/issues", self._inspect_issues, methods=["GET"]),
            Route("/issues/{key}", self._inspect_issue, methods=["GET"]),
            Route("/issues/{key}/transition", self._inspect_transition, methods=["POST"]),
            Route("/issues/{key}/comment", self._inspect_comment, methods=["POST"]),
            Route("/webhooks", self._inspect_webhooks, methods=["GET", "POST"]),
            Route("/user", self._inspect_user, methods=["GET", "POST"]),
        ]

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            render = self.renderer()
            return {
                "user_time_zone": self.user_time_zone,
                "issues": [{"id": i.id, "key": i.key, "status": i.status.name,
                            "category": i.status.category, "resolution": i.resolution,
                            "summary": i.summary, "labels": i.labels, "custom": i.custom,
                            "updated": render.ts(i.updated), "comments": len(i.comments),
                            "remote_links": len(i.remote_links),
                            "properties": sorted(i.properties)}
                           for i in sorted(self.store.issues.values(), key=lambda x: x.id)],
                "webhooks": [w.public(self.base) for w in self.webhooks.values()],
            }

    def error_body(self, status: int, path: str, retry_after: float | None
                   ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """Bodies and headers of injected failures, as Jira Cloud sends them (reference §6-7)."""
        headers: list[tuple[bytes, bytes]] = []
        if retry_after is not None or status == 429:
            # The library calls int() on Retry-After: always whole seconds (reference §1.5).
            seconds = max(0, math.ceil(retry_after if retry_after is not None else 1))
            headers.append((b"retry-after", str(seconds).encode()))
        if status == 429:
            headers += [(b"x-ratelimit-limit", RATE_LIMIT_HEADER_LIMIT.encode()),
                        (b"x-ratelimit-remaining", b"0"),
                        (b"ratelimit-reason", b"jira-burst-based")]
            message = "Rate limit exceeded."
        elif status == 503:
            message = "Service unavailable. Please try again later."
        else:
            message = "Internal server error"
        return hooks.encode({"errorMessages": [message], "errors": {}}), headers

    def env(self) -> dict[str, str]:
        return {"JIRA_URL": self.base, "JIRA_EMAIL": DEMO_EMAIL,
                "JIRA_API_TOKEN": self.api_token, "JIRA_WEBHOOK_SECRET": self.webhook_secret,
                "JIRA_PROJECTS": ",".join(self.site.projects)}

    # --- inspection handlers ---------------------------------------------------------

    async def _inspect_issues(self, _request: Request) -> JSONResponse:
        return JSONResponse(self.snapshot()["issues"])

    async def _inspect_issue(self, request: Request) -> JSONResponse:
        try:
            return JSONResponse(self.issue(request.path_params["key"]))
        except JiraInputError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)

    async def _inspect_transition(self, request: Request) -> JSONResponse:
        body = await request.json()
        try:
            history = self.transition_as(body.get("account", INTEGRATION_ACCOUNT_ID),
                                         request.path_params["key"], body["to"],
                                         body.get("resolution"))
        except (KeyError, ValueError, JiraInputError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(history)

    async def _inspect_comment(self, request: Request) -> JSONResponse:
        body = await request.json()
        try:
            comment = self.comment_as(body.get("account", INTEGRATION_ACCOUNT_ID),
                                      request.path_params["key"], body["body"])
        except (KeyError, ValueError, JiraInputError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(comment, status_code=201)

    async def _inspect_webhooks(self, request: Request) -> JSONResponse:
        if request.method == "POST":
            body = await request.json()
            try:
                webhook_id = self.register_webhook(
                    body["url"], body.get("events"), secret=body.get("secret", self.webhook_secret),
                    jql=body.get("jql"))
            except (KeyError, JiraInputError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            return JSONResponse(self.webhooks[webhook_id].public(self.base), status_code=201)
        return JSONResponse([w.public(self.base) for w in self.webhooks.values()])

    async def _inspect_user(self, request: Request) -> JSONResponse:
        if request.method == "POST":
            body = await request.json()
            if "time_zone" in body:
                self.user_time_zone = str(body["time_zone"])
        return JSONResponse({"time_zone": self.user_time_zone})
